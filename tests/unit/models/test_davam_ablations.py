"""The DAVAM paper's ablations under the same model: GAVAM, VAE+Attn, DAVAM-q.

GAVAM's and VAE+Attn's KL against closed forms computed by hand (float64, fixed eps), the
causality of the Gaussian PixelCNN prior, DAVAM-q reading only the last code, its
attention-free decoder (full = incremental = plain LSTMCell), padding invariance, the
criterion's rec + w * KL, configuration errors and the registered architectures.
"""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import metrics

from davam_plugin.criterions.davam import DavamCriterion
from davam_plugin.models import davam as davam_module
from davam_plugin.models.davam import GAVAM, VAE_ATTN, DavamConfig, DavamModel
from davam_plugin.modules.gaussian_conv_prior import GaussianConvPrior
from helpers import (
    ABLATIONS,
    SENTENCES,
    TinyTask,
    assert_incremental_matches_full,
    make_batch,
    make_dictionary,
    tiny_config,
    tiny_model,
)



def ablation_model(name, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    d = make_dictionary()
    model = DavamModel.build_model(tiny_config(**ABLATIONS[name]), TinyTask(d))
    if model.encoder.bottleneck.discrete:  # as helpers.tiny_model: several codes in use
        model.encoder.bottleneck.quantizer.codebook.mul_(0.3)
        model.encoder.bottleneck.quantizer.cluster_sum.copy_(model.encoder.bottleneck.quantizer.codebook)
    return model.to(dtype), d


def fixed_noise(mu):
    """A fixed eps that depends on the position and the dimension only (not on the batch row),
    so that a sentence alone and in a batch get the same noise."""
    B, T, D = mu.shape
    t = torch.arange(T, dtype=torch.float64).view(1, T, 1)
    d = torch.arange(D, dtype=torch.float64).view(1, 1, D)
    return torch.sin(1.3 * t + 0.7 * d + 0.1).expand(B, T, D).to(mu.dtype)


def encode(model, batch):
    n = batch["net_input"]
    return model.encoder(n["src_tokens"], n["src_lengths"])


# ----------------------------------------------------------------------------- by hand
def lstm_by_hand(lstm, x):
    """Single-layer batch-first nn.LSTM, step by step from its parameters."""
    W_ih, W_hh, b = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0
    B, T, _ = x.shape
    H = W_hh.size(1)
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    out = []
    for t in range(T):
        i, f, g, o = (x[:, t] @ W_ih.t() + h @ W_hh.t() + b).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, 1)


def posterior_by_hand(model, batch):
    """(mu, logvar, real mask) at every encoder position, from the parameters."""
    src = batch["net_input"]["src_tokens"]
    enc = model.encoder
    states = lstm_by_hand(enc.lstm, enc.embed_tokens.weight[src])
    params = states @ enc.bottleneck.to_posterior.weight.t() + enc.bottleneck.to_posterior.bias
    D = params.size(-1) // 2
    return params[..., :D], params[..., D:], src.ne(model.encoder.padding_idx)


def gated_conv_by_hand(layer, x):
    """GatedCausalConv1d on x (T, C) with explicit taps: pre_t = c + sum_j W_j x_{t - s - j}."""
    T, C = x.shape
    W, bias = layer.conv.weight, layer.conv.bias  # (2C, C, k), tap j reads x_{t - s - j} = W[:, :, k - 1 - j]
    k, s = layer.kernel_size, layer.shift
    out = []
    for t in range(T):
        pre = bias.clone()
        for j in range(k):
            if t - s - j >= 0:
                pre = pre + W[:, :, k - 1 - j] @ x[t - s - j]
        a, b = pre[:C], pre[C:]
        y = layer.out.weight[:, :, 0] @ (torch.tanh(a) * torch.sigmoid(b)) + layer.out.bias
        out.append(y + x[t] if layer.residual else y)
    return torch.stack(out)


def prior_by_hand(prior, z):
    """(mu^, logvar^) (T, D) of the Gaussian PixelCNN prior for one sentence's z (T, D)."""
    x = z @ prior.input_proj.weight.t() + prior.input_proj.bias
    for layer in prior.layers:
        x = gated_conv_by_hand(layer, x)
    hidden = torch.relu(x @ prior.head_hidden.weight[:, :, 0].t() + prior.head_hidden.bias)
    params = hidden @ prior.head_out.weight[:, :, 0].t() + prior.head_out.bias
    D = z.size(-1)
    return params[:, :D], params[:, D:]


# ----------------------------------------------------------------------------- GAVAM
def test_gavam_kl_equals_closed_form(monkeypatch):
    model, d = ablation_model("gavam", dtype=torch.float64)
    model.eval()
    monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", fixed_noise)
    batch = make_batch(d, SENTENCES)
    enc = encode(model, batch)
    mu, logvar, real = posterior_by_hand(model, batch)
    eps = fixed_noise(mu)
    z = (mu + torch.exp(0.5 * logvar) * eps) * real.unsqueeze(-1)
    assert torch.allclose(enc["latents"][0], z, atol=1e-12)
    assert torch.allclose(enc["mu"][0][real], mu[real], atol=1e-12)
    assert torch.allclose(enc["logvar"][0][real], logvar[real], atol=1e-12)
    for b, words in enumerate(SENTENCES):
        T = len(words) + 1
        mu_p, logvar_p = prior_by_hand(model.encoder.bottleneck.prior, z[b, :T])
        var, var_p = logvar[b, :T].exp(), logvar_p.exp()
        # paper Eq. 5: 1/2 (log(sigma^2_hat / sigma^2) - 1 + (sigma^2 + (mu_hat - mu)^2) / sigma^2_hat)
        kl = 0.5 * (torch.log(var_p / var) - 1.0 + (var + (mu_p - mu[b, :T]) ** 2) / var_p)
        assert enc["kl"][0][b].item() == pytest.approx(kl.sum().item(), rel=1e-10, abs=1e-12)
        assert int(enc["src_lengths"][0][b]) == T
    assert bool((enc["kl"][0] > 0).all())
    assert float(enc["commitment"][0]) == 0.0 and enc["codes"] == [] and enc["code_counts"] == []


def test_gaussian_prior_is_causal():
    torch.manual_seed(0)
    prior = GaussianConvPrior(latent_dim=3, embed_dim=5, layers=4, kernel_size=3, head_dim=4).double()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 9, 3, generator=g, dtype=torch.float64)
    mu, logvar = prior(z)
    for t in range(z.size(1)):
        z2 = z.clone()
        z2[:, t:] = torch.randn(2, z.size(1) - t, 3, generator=g, dtype=torch.float64)
        mu2, logvar2 = prior(z2)
        # (mu^_t, logvar^_t) depend on z_<t only: positions <= t are unchanged
        assert torch.equal(mu2[:, : t + 1], mu[:, : t + 1]), t
        assert torch.equal(logvar2[:, : t + 1], logvar[:, : t + 1]), t
        if t + 1 < z.size(1):  # ... and position t + 1 reads z_t
            assert not torch.allclose(mu2[:, t + 1], mu[:, t + 1])
    # right padding never reaches real positions
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 5:] = True
    z3 = z.clone()
    z3[0, 5:] = 100.0
    mu3, _ = prior(z3, mask)
    assert torch.equal(mu3[0, :5], prior(z, mask)[0][0, :5])


def test_gavam_kl_gradient_reaches_posterior_and_prior():
    model, d = ablation_model("gavam")
    model.train()
    crit = DavamCriterion(TinyTask(d), 0.15, 5.0, 10)
    loss, _, _ = crit(model, make_batch(d, SENTENCES))
    loss.backward()
    for name in ("encoder.bottleneck.to_posterior.weight", "encoder.lstm.weight_ih_l0", "encoder.bottleneck.prior.input_proj.weight",
                 "encoder.bottleneck.prior.layers.0.conv.weight", "encoder.bottleneck.prior.head_out.weight",
                 "decoder.cell.weight_ih", "decoder.code_to_memory.weight"):  # fmt: skip
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- VAE+Attn
def test_vae_attn_kl_equals_standard_normal_kl(monkeypatch):
    model, d = ablation_model("vae_attn", dtype=torch.float64)
    model.eval()
    assert model.encoder.bottleneck.prior is None
    batch = make_batch(d, SENTENCES, extra_pad=2)
    mu, logvar, real = posterior_by_hand(model, batch)
    kl = (0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)).sum(-1) * real
    monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", fixed_noise)
    enc = encode(model, batch)
    assert torch.allclose(enc["kl"][0], kl.sum(1), rtol=1e-10, atol=1e-12)
    assert torch.equal(enc["src_lengths"][0], real.sum(1))
    # the N(0, I) KL does not depend on the sample
    monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", lambda m: -3.0 * fixed_noise(m))
    enc2 = encode(model, batch)
    assert not torch.allclose(enc2["latents"][0], enc["latents"][0])
    assert torch.equal(enc2["kl"][0], enc["kl"][0])


def test_gaussian_validation_samples_and_generation_uses_the_mean():
    model, d = ablation_model("vae_attn")
    model.eval()
    batch = make_batch(d, SENTENCES)
    a, b = encode(model, batch), encode(model, batch)
    assert not torch.equal(a["latents"][0], b["latents"][0]), "z is sampled in eval mode too"
    model.set_posterior_mean(True)  # what the task sets for fairseq-generate
    c = encode(model, batch)
    assert torch.equal(c["latents"][0], c["mu"][0])


@pytest.mark.parametrize("name", ["gavam", "vae_attn"])
def test_gaussian_incremental_decoding_with_reordered_encoder_out(name, monkeypatch):
    model, d = ablation_model(name)
    model.eval()
    monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", fixed_noise)
    batch = make_batch(d, SENTENCES)
    enc = encode(model, batch)
    prev = batch["net_input"]["prev_output_tokens"]
    full, _ = model.decoder(prev, enc)
    order = torch.tensor([2, 0, 3, 1])
    reordered = model.encoder.reorder_encoder_out(enc, order)
    for key in ("latents", "mu", "logvar", "kl", "encoder_padding_mask", "src_lengths"):
        assert torch.equal(reordered[key][0], enc[key][0][order]), key
    assert_incremental_matches_full(model, enc, prev, full, order)


# ----------------------------------------------------------------------------- DAVAM-q
def test_davam_q_quantizes_only_the_last_position():
    model, d = ablation_model("davam_q")
    model.eval()
    batch = make_batch(d, SENTENCES, extra_pad=3)
    enc = encode(model, batch)
    h, mask = model.encoder.encoder_states(batch["net_input"]["src_tokens"])
    lengths = (~mask).sum(1)
    h_last = h[torch.arange(len(SENTENCES)), lengths - 1]
    assert enc["latents"][0].shape == (len(SENTENCES), 1, h.size(-1))
    assert torch.equal(enc["codes"][0][:, 0], model.encoder.bottleneck.quantizer.nearest_codes(h_last))
    assert torch.equal(enc["src_lengths"][0], torch.ones(len(SENTENCES), dtype=torch.long))
    assert enc["code_counts"][0].sum().item() == len(SENTENCES)  # one code per sentence
    commitment = ((h_last - model.encoder.bottleneck.quantizer.embed_codes(enc["codes"][0][:, 0])) ** 2).sum()
    assert enc["commitment"][0].item() == pytest.approx(commitment.item(), rel=1e-5)


def test_davam_q_decoder_output_depends_on_the_last_code_only():
    model, d = ablation_model("davam_q")
    model.eval()
    batch = make_batch(d, SENTENCES)
    prev = batch["net_input"]["prev_output_tokens"]
    lengths = batch["net_input"]["src_lengths"]
    K, T = model.encoder.bottleneck.quantizer.num_codes, prev.size(1)
    codes = torch.randint(0, K, (len(SENTENCES), T), generator=torch.Generator().manual_seed(0))
    last = (torch.arange(len(SENTENCES)), lengths - 1)
    others = codes.clone()
    others[torch.ones_like(codes, dtype=torch.bool).index_put_(last, torch.tensor(False))] += 1
    others %= K
    assert torch.equal(others[last], codes[last]) and bool((others != codes).sum() == codes.numel() - len(SENTENCES))
    changed_last = codes.clone()
    changed_last[last] = (codes[last] + 1) % K

    def decode(c, full_memory=False):
        if full_memory:  # the decoder itself, given a memory at every position: reads m_T only
            enc = {
                "latents": [model.encoder.bottleneck.quantizer.embed_codes(c)],
                "encoder_padding_mask": [torch.arange(T)[None] >= lengths[:, None]],
                "src_lengths": [lengths],
            }
        else:
            enc = model.encoder(None, src_codes=c, src_code_lengths=lengths)
            assert enc["codes"][0].shape == (len(SENTENCES), 1)
        return model.decoder(prev, enc)[0]

    for full_memory in (False, True):
        out = decode(codes, full_memory)
        assert torch.equal(decode(others, full_memory), out), "only the last code may matter"
        assert not torch.allclose(decode(changed_last, full_memory), out), "the last code must matter"


def plain_lstmcell_decoder(decoder, prev, c0):
    """The no-attention equations with nn.LSTMCell: input [emb(y_{i-1}); h_0], output W_o h_i."""
    cell = torch.nn.LSTMCell(decoder.lstm.input_size, decoder.lstm.hidden_size).to(c0.dtype)
    cell.weight_ih.data.copy_(decoder.lstm.weight_ih_l0)
    cell.weight_hh.data.copy_(decoder.lstm.weight_hh_l0)
    cell.bias_ih.data.copy_(decoder.lstm.bias_ih_l0)
    cell.bias_hh.data.copy_(decoder.lstm.bias_hh_l0)
    h = h0 = torch.tanh(c0)
    c = c0
    emb = decoder.embed_tokens(prev)
    outs = []
    for i in range(prev.size(1)):
        h, c = cell(torch.cat([emb[:, i], h0], -1), (h, c))
        outs.append(decoder.output_layer(h))
    return torch.stack(outs, 1)


def test_no_attention_decoder_full_incremental_and_plain_lstmcell_agree():
    model, d = ablation_model("davam_q")
    model.eval()
    batch = make_batch(d, SENTENCES)
    enc = encode(model, batch)
    prev = batch["net_input"]["prev_output_tokens"]
    full, extra = model.decoder(prev, enc)
    assert extra["attn"] == [None]
    c0 = model.decoder.code_to_memory(enc["latents"][0][:, 0])
    assert torch.allclose(full, plain_lstmcell_decoder(model.decoder, prev, c0), atol=1e-6)
    order = torch.tensor([2, 0, 3, 1])
    assert_incremental_matches_full(model, enc, prev, full, order)


def test_no_attention_features_feed_the_fused_loss():
    """The criterion's fused output layer + loss equals log_softmax of the output layer."""
    model, d = ablation_model("davam_q")
    model.eval()
    batch = make_batch(d, SENTENCES)
    crit = DavamCriterion(TinyTask(d), 0.15, 5.0, 10)
    _, _, log = crit(model, batch)
    logits, _ = model(**batch["net_input"])
    target = batch["target"]
    lp = F.log_softmax(logits.double(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    assert log["rec"].item() == pytest.approx(-lp[target.ne(d.pad())].sum().item(), rel=1e-5)
    assert "_code_hist" in log and "kl" not in log  # a discrete model: DAVAM's logs


# ----------------------------------------------------------------------------- padding
@pytest.mark.parametrize("name", list(ABLATIONS))
def test_padding_never_changes_results(name, monkeypatch):
    model, d = ablation_model(name)
    model.eval()
    if not model.encoder.bottleneck.discrete:
        monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", fixed_noise)
    crit = DavamCriterion(TinyTask(d), 0.15, 5.0, 10)
    together = make_batch(d, SENTENCES, extra_pad=4)
    out_b, extra_b = model(**together["net_input"])
    loss_b, _, _ = crit(model, together)
    total = 0.0
    for i, sentence in enumerate(SENTENCES):
        alone = make_batch(d, [sentence])
        out_a, extra_a = model(**alone["net_input"])
        L = out_a.size(1)
        assert torch.allclose(out_a[0], out_b[i, :L], atol=1e-6), (name, i)
        if "kl" in extra_a:
            assert extra_a["kl"][0].item() == pytest.approx(extra_b["kl"][i].item(), rel=1e-5, abs=1e-7)
            assert int(extra_a["src_lengths"][0]) == int(extra_b["src_lengths"][i]) == len(sentence) + 1
        else:
            assert torch.equal(extra_a["codes"][0], extra_b["codes"][i])
        total += crit(model, alone)[0].item()
    assert loss_b.item() == pytest.approx(total, rel=1e-5)


# ----------------------------------------------------------------------------- criterion
@pytest.mark.parametrize("num_updates", [0, 5, 20])
@pytest.mark.parametrize("name", ["gavam", "vae_attn"])
def test_criterion_loss_is_rec_plus_weighted_kl(name, num_updates, monkeypatch):
    model, d = ablation_model(name)
    model.eval()
    model.set_num_updates(num_updates)
    monkeypatch.setattr(model.encoder.bottleneck, "sample_noise", fixed_noise)
    crit = DavamCriterion(
        TinyTask(d), 0.15, 5.0, 10, kl_weight_start=0.2, kl_weight_max=1.0, kl_warmup_updates=10
    )
    batch = make_batch(d, SENTENCES, extra_pad=1)
    n = batch["net_input"]
    enc = model.encoder(n["src_tokens"], n["src_lengths"])
    logits, _ = model.decoder(n["prev_output_tokens"], enc)
    target = batch["target"]
    lp = F.log_softmax(logits.double(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    rec = -lp[target.ne(d.pad())].sum().item()
    kl_i = enc["kl"][0].double()
    w = 0.2 + 0.8 * min(1.0, num_updates / 10)
    loss, sample_size, log = crit(model, batch)
    assert sample_size == len(SENTENCES)
    assert log["rec"].item() == pytest.approx(rec, rel=1e-5)
    assert log["kl"].item() == pytest.approx(kl_i.sum().item(), rel=1e-5)
    assert loss.item() == pytest.approx(rec + w * kl_i.sum().item(), rel=1e-5)
    lengths = torch.tensor([len(s) + 1 for s in SENTENCES], dtype=torch.double)
    assert log["kl_paper"].item() == pytest.approx((kl_i / lengths).sum().item(), rel=1e-5)
    assert log["kl_weight"] == pytest.approx(w * len(SENTENCES))
    assert "_code_hist" not in log and "commitment" not in log


def test_default_kl_weight_is_one_and_bad_warmup_is_refused():
    d = make_dictionary()
    crit = DavamCriterion(TinyTask(d), 0.15, 5.0, 10)
    assert crit.kl_weight(0) == crit.kl_weight(10**6) == 1.0
    with pytest.raises(SystemExit, match="--kl-warmup-updates must be >= 0"):
        DavamCriterion(TinyTask(d), 0.15, 5.0, 10, kl_warmup_updates=-1)
    with pytest.raises(SystemExit, match=r"^error: --kl-weight-start must be >= 0, got -0.5$"):
        DavamCriterion(TinyTask(d), 0.15, 5.0, 10, kl_weight_start=-0.5)
    with pytest.raises(SystemExit, match=r"^error: --kl-weight-max must be >= 0, got -1$"):
        DavamCriterion(TinyTask(d), 0.15, 5.0, 10, kl_weight_max=-1)


def test_reduce_metrics_for_gaussian_latents():
    logs = [
        {"loss": 10.0, "rec": 8.0, "kl": 4.0, "kl_paper": 1.0, "kl_weight": 1.0, "ntokens": 4, "nsentences": 2,
         "sample_size": 2},
        {"loss": 6.0, "rec": 4.0, "kl": 2.0, "kl_paper": 0.5, "kl_weight": 1.0, "ntokens": 2, "nsentences": 2,
         "sample_size": 2},
    ]  # fmt: skip
    with metrics.aggregate() as agg:
        DavamCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    assert values["loss"] == pytest.approx(4.0)
    assert values["rec"] == pytest.approx(3.0)
    assert values["kl"] == pytest.approx(1.5)
    assert values["kl_paper"] == pytest.approx(0.375)
    assert values["neg_elbo"] == pytest.approx(4.5)
    assert values["kl_weight"] == pytest.approx(0.5)
    assert values["nll_per_token"] == pytest.approx(2.0)
    assert values["rec_ppl"] == pytest.approx(math.exp(2.0), rel=1e-3)
    for key in ("code_usage", "code_ppl", "commitment", "beta"):
        assert key not in values


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_bfloat16_training_step(name):
    """The model cast like --bf16: the loss is float32, close to the float32 model's, and every
    gradient is finite."""
    ref, d = ablation_model(name)
    model, _ = ablation_model(name, dtype=torch.bfloat16)
    ref.train(), model.train()
    crit = DavamCriterion(TinyTask(d), 0.15, 5.0, 10)
    batch = make_batch(d, SENTENCES)
    torch.manual_seed(1)
    ref_loss, _, _ = crit(ref, batch)
    torch.manual_seed(1)
    loss, _, _ = crit(model, batch)
    loss.backward()
    assert loss.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=5e-2)


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({**VAE_ATTN, "codebook_kmeans_init": True}, "error: --codebook-kmeans-init needs --latent-type discrete"),
        ({**GAVAM, "codebook_dead_code_threshold": 0.5}, "error: --codebook-dead-code-threshold needs --latent-type discrete"),
        ({"gaussian_prior": "normal"}, "error: --gaussian-prior needs --latent-type gaussian"),
        ({**GAVAM, "gaussian_prior_layers": 0}, "error: --gaussian-prior-layers must be >= 1, got 0"),
    ],
)
def test_impossible_combinations_fail_with_one_line_error(overrides, message):
    d = make_dictionary()
    with pytest.raises(SystemExit) as e:
        DavamModel.build_model(tiny_config(**overrides), TinyTask(d))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def arch_config(name):
    ns = argparse.Namespace()
    getattr(davam_module, name)(ns)
    return vars(ns)


def test_architectures():
    ptb, tiny = arch_config("davam_ptb"), arch_config("davam_tiny")
    switches = ("latent_type", "latent_positions", "no_decoder_attention", "gaussian_prior")
    # DAVAM itself: discrete, every position, attention (the new defaults)
    assert [ptb[k] for k in switches] == ["discrete", "all", False, "pixelcnn"]
    prior_sizes = ("gaussian_prior_embed_dim", "gaussian_prior_layers", "gaussian_prior_kernel_size",
                   "gaussian_prior_head_dim")  # fmt: skip
    assert [ptb[k] for k in prior_sizes] == [512, 15, 5, 256]
    expected = {
        "gavam": ["gaussian", "all", False, "pixelcnn"],
        "vae_attn": ["gaussian", "all", False, "normal"],
        "davam_q": ["discrete", "last", True, "pixelcnn"],
    }
    for name, values in expected.items():
        for arch, sizes in ((name, ptb), (name + "_tiny", tiny)):
            cfg = arch_config(arch)
            assert [cfg[k] for k in switches] == values, arch
            others = {k: v for k, v in sizes.items() if k not in switches and k not in prior_sizes}
            assert {k: cfg[k] for k in others} == others, arch
        assert [arch_config(name + "_tiny")[k] for k in prior_sizes] == [64, 3, 3, 64]


def test_config_written_before_the_ablations_builds_the_same_davam():
    """A configuration without the new fields (an older checkpoint's) builds DAVAM as before."""
    d = make_dictionary()
    old = {k: v for k, v in vars(tiny_config()).items() if k in DavamConfig.__dataclass_fields__}
    for key in ("latent_type", "latent_positions", "no_decoder_attention", "gaussian_prior", "gaussian_prior_embed_dim",
                "gaussian_prior_layers", "gaussian_prior_kernel_size", "gaussian_prior_head_dim"):  # fmt: skip
        old.pop(key)
    torch.manual_seed(0)
    model = DavamModel.build_model(argparse.Namespace(**old), TinyTask(d))
    reference, _ = tiny_model()
    model.encoder.bottleneck.quantizer.codebook.mul_(0.3)
    model.encoder.bottleneck.quantizer.cluster_sum.copy_(model.encoder.bottleneck.quantizer.codebook)
    a, b = model.state_dict(), reference.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert model.encoder.bottleneck.discrete and not model.decoder.attention_free


def test_gaussian_prior_sampling_steps_equal_the_full_forward():
    from davam_plugin.modules.gaussian_conv_prior import GaussianConvPrior

    torch.manual_seed(0)
    prior = GaussianConvPrior(latent_dim=3, embed_dim=6, layers=3, kernel_size=3, head_dim=5).double().eval()
    lengths = torch.tensor([4, 7, 1, 5])
    z, mu_steps, logvar_steps = prior.sample(lengths, temperature=0.8, return_params=True)
    assert z.shape == (4, 7, 3) and (z[0, 4:] == 0).all() and (z[2, 1:] == 0).all()
    pad = torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)
    mu, logvar = prior(z, pad)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(mu_steps[b, :n], mu[b, :n], atol=1e-12)
        assert torch.allclose(logvar_steps[b, :n], logvar[b, :n], atol=1e-12)
