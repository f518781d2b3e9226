"""In-process helpers: a small dictionary, a tiny DAVAM and its ablations, a tiny AWD and its
criterion, hand-built batches, an endless batch producer, and a loader for the repository's
scripts (files that are not modules of a package)."""

import importlib.util

import torch
from fairseq.data import Dictionary, data_utils

from davam_plugin.criterions.awd_elbo import AwdElboCriterion
from davam_plugin.models.awd import AwdConfig, AwdModel
from davam_plugin.models.davam import DAVAM_Q, GAVAM, VAE_ATTN, DavamConfig, DavamModel


def load_script(path, name=None):
    """The module defined by the Python file ``path`` (examples/reproduce/*.py, fixtures)."""
    spec = importlib.util.spec_from_file_location(name or f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_dictionary(n_words=20):
    d = Dictionary()
    for i in range(n_words):
        d.add_symbol(f"w{i}")
    return d


class TinyTask:
    def __init__(self, dictionary):
        self.source_dictionary = self.target_dictionary = dictionary


def tiny_config(**overrides):
    base = dict(
        encoder_embed_dim=8, encoder_hidden_dim=12, decoder_embed_dim=8, decoder_hidden_dim=12,
        decoder_attention_dim=10, code_dim=4, num_codes=6, init_scale=0.3, embed_init_scale=0.5,
    )  # fmt: skip
    base.update(overrides)
    return DavamConfig(**base)


def tiny_model(seed=0, dictionary=None, **overrides):
    torch.manual_seed(seed)
    dictionary = dictionary or make_dictionary()
    model = DavamModel.build_model(tiny_config(**overrides), TinyTask(dictionary))
    # spread the codebook over the encoder's range so that several codes are in use
    model.encoder.bottleneck.quantizer.codebook.mul_(0.3)
    model.encoder.bottleneck.quantizer.cluster_sum.copy_(model.encoder.bottleneck.quantizer.codebook)
    return model, dictionary


def make_batch(dictionary, sentences, extra_pad=0):
    """sentences: lists of word ids (EOS appended). Right-padded fairseq sample."""
    items = [torch.tensor(s + [dictionary.eos()]) for s in sentences]
    pad, eos = dictionary.pad(), dictionary.eos()
    width = max(len(t) for t in items) + extra_pad
    src = data_utils.collate_tokens(items, pad, eos, left_pad=False, pad_to_length=width)
    prev = data_utils.collate_tokens(items, pad, eos, left_pad=False, move_eos_to_beginning=True, pad_to_length=width)
    return {
        "id": torch.arange(len(items)),
        "nsentences": len(items),
        "ntokens": sum(len(t) for t in items),
        "net_input": {
            "src_tokens": src,
            "src_lengths": torch.tensor([len(t) for t in items]),
            "prev_output_tokens": prev,
        },
        "target": src.clone(),
    }


SENTENCES = [[4, 5, 6, 7, 8, 9], [10, 11, 12], [13, 4, 15, 16, 17, 18, 19, 20, 5], [6]]


def assert_incremental_matches_full(model, enc, prev, full, order, atol=1e-6):
    """Decoding one token at a time, with a beam-search style reorder of the batch after every
    step, gives the full (teacher-forced) decoder output."""
    inc_state, enc_r, prev_r, full_r = {}, enc, prev, full
    for t in range(prev.size(1)):
        out, _ = model.decoder(prev_r[:, : t + 1], enc_r, incremental_state=inc_state)
        assert torch.allclose(out[:, 0], full_r[:, t], atol=atol), t
        model.decoder.reorder_incremental_state_scripting(inc_state, order)
        enc_r = model.encoder.reorder_encoder_out(enc_r, order)
        prev_r, full_r = prev_r[order], full_r[order]


class EndlessSource:
    """An endless producer of (size, size) tensors that makes and frees a view per row on the
    way, as a collater does (for fairseq's ``BufferedIterator``, which wants a length)."""

    def __init__(self, size=16):
        self.size = size

    def __len__(self):
        return 10**9

    def __iter__(self):
        while True:
            base = torch.zeros(self.size, self.size, requires_grad=True) * 1.0
            for i in range(self.size):
                base[i].sum()  # a view, made and freed
            yield base.detach()


# ----------------------------------------------------------------------------- DAVAM ablations
SMALL_PRIOR = dict(
    gaussian_prior_embed_dim=6, gaussian_prior_layers=3, gaussian_prior_kernel_size=3, gaussian_prior_head_dim=5
)
ABLATIONS = {"gavam": {**GAVAM, **SMALL_PRIOR}, "vae_attn": VAE_ATTN, "davam_q": DAVAM_Q}


# ----------------------------------------------------------------------------- AWD
# the behaviour of models built before the decoder options existed
LEGACY = dict(decoder_no_bos_step=True, separate_decoder_embeddings=True, uniform_dropout_unit="token")


def tiny_awd(mode="adversarial", seed=0, **overrides):
    torch.manual_seed(seed)
    base = dict(embed_dim=8, encoder_hidden_dim=10, decoder_hidden_dim=12, latent_dim=3, adversary_embed_dim=6,
                adversary_hidden_dim=7, word_dropout_mode=mode, word_dropout_rate=0.3, init_scale=0.3,
                embed_init_scale=0.5, decoder_dropout_out=0.0)  # fmt: skip
    base.update(overrides)
    d = make_dictionary()
    return AwdModel.build_model(AwdConfig(**base), TinyTask(d)), d


def criterion(d, **kw):
    args = dict(kl_weight_start=0.25, kl_weight_max=1.0, kl_warmup_updates=100, adversary_lambda=0.5)
    args.update(kw)
    return AwdElboCriterion(TinyTask(d), **args)


OPTION_CASES = {
    "authors": {},
    "legacy": LEGACY,
    "bos-step, separate tables": dict(separate_decoder_embeddings=True),
    "no bos-step, shared table": dict(decoder_no_bos_step=True),
}
