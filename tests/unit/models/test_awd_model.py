"""AWD (model ``awd``, criterion ``awd_elbo``) in process: exact loss, word dropout modes,
gradient reversal, the adversary's regulariser and its absence at evaluation."""

import math

import pytest
import torch
import torch.nn.functional as F

import davam_plugin.models.awd as awd_module
from davam_plugin.models.awd import AwdConfig

from helpers import (
    LEGACY,
    OPTION_CASES,
    SENTENCES,
    TinyTask,
    assert_incremental_matches_full,
    criterion,
    make_batch,
    make_dictionary,
    tiny_awd,
)


def reference_loss(model, sample, eps, score_eps, kl_weight, lam, bos_step, shared, uniform_noise=None,
                   timestep_unit=True, unk=False):  # fmt: skip
    """The paper's equations step by step in float64 with nn.LSTMCell (no fused arrangement).

    Word inputs: <s> x_1..x_n with ``bos_step`` (targets y_1..y_n EOS predicted from the states
    after each input), else x_1..x_n (y_1 from h_0). ``shared``: the decoder reads the encoder's
    table. Uniform word dropout from ``uniform_noise`` (one value per step of the padded batch
    if ``timestep_unit``, else (B, T) per token): dropped where noise < R; dropped inputs are the
    <unk> embedding if ``unk`` else zero."""
    enc, dec = model.encoder, model.decoder
    table = enc.embed_tokens if shared else dec.embed_tokens
    total = torch.zeros((), dtype=torch.float64)
    for b in range(sample["target"].size(0)):
        tgt = sample["target"][b][sample["target"][b].ne(1)]
        n = len(tgt) - 1  # words x_1..x_n
        states, _ = enc.lstm(enc.embed_tokens(tgt.unsqueeze(0)))
        mu, logvar = enc.to_posterior(states[0, -1]).chunk(2)
        z = mu + torch.exp(0.5 * logvar) * eps[b]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
        inputs = torch.cat([torch.tensor([2]), tgt[:n]]) if bos_step else tgt[:n]  # 2 = EOS, fairseq's BOS
        T = len(inputs)
        keep = torch.ones(T, dtype=torch.float64)
        score_kl = torch.zeros((), dtype=torch.float64)
        if model.decoder.adversary is not None and T > 0:
            adv = dec.adversary
            mu_s = adv.to_score(adv.lstm(adv.embed_tokens(inputs.unsqueeze(0)))[0])[0, :, 0]
            s = mu_s + score_eps[b, :T]
            k = math.floor(0.3 * T + 0.5)
            keep[torch.argsort(s, stable=True)[:k]] = 0.0
            score_kl = 0.5 * mu_s.pow(2).sum()
        if uniform_noise is not None:
            noise = uniform_noise[:T] if timestep_unit else uniform_noise[b, :T]
            keep = (noise >= 0.3).double()
        h, c = dec.z_to_state(z), torch.zeros(dec.hidden_dim, dtype=torch.float64)
        rec = torch.zeros((), dtype=torch.float64)
        if not bos_step:
            rec = rec - F.log_softmax(dec.output_layer(h), -1)[tgt[0]]
        for i in range(T):
            h, c = dec.predict_cell(z.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))
            e = table(inputs[i]) * keep[i] + (table.weight[3] * (1 - keep[i]) if unk else 0)  # 3 = <unk>
            h, c = dec.update_cell(torch.cat([e, z]).unsqueeze(0), (h, c))
            h, c = h[0], c[0]
            rec = rec - F.log_softmax(dec.output_layer(h), -1)[tgt[i + 1 if not bos_step else i]]
        total = total + rec + kl_weight * kl + lam * score_kl
    return total




@pytest.mark.parametrize("mode", ["adversarial", "none"])
@pytest.mark.parametrize("case", OPTION_CASES)
def test_loss_and_gradients_equal_the_equations_on_a_fixed_batch(mode, case, monkeypatch):
    model, d = tiny_awd(mode, **OPTION_CASES[case])
    model = model.double().train()
    bos_step = not model.cfg.decoder_no_bos_step
    shared = not model.cfg.separate_decoder_embeddings
    assert model.decoder.bos_step == bos_step
    assert (model.decoder.input_embed is model.encoder.embed_tokens) == shared
    assert ("decoder.embed_tokens.weight" in model.state_dict()) != shared
    sample = make_batch(d, SENTENCES, extra_pad=2)
    B, L = sample["target"].shape
    eps = torch.randn(B, 3, dtype=torch.float64)
    score_eps = torch.randn(B, L, dtype=torch.float64)
    # feed the model the same noise as the reference: z's eps, then the scores' eps
    noise = iter([eps, score_eps[:, : L if bos_step else L - 1]])
    monkeypatch.setattr(awd_module.torch, "randn_like", lambda t: next(noise).to(t.dtype).reshape(t.shape))
    crit = criterion(d)
    model.set_num_updates(40)  # kl weight 0.25 + 0.75 * 0.4 = 0.55
    loss, sample_size, log = crit(model, sample)
    monkeypatch.undo()
    expected = reference_loss(model, sample, eps, score_eps, 0.55, 0.5 if mode == "adversarial" else 0.0,
                              bos_step, shared)  # fmt: skip
    assert sample_size == B
    assert torch.allclose(loss, expected, rtol=1e-10), (loss.item(), expected.item())
    assert math.isclose(log["kl_weight"] / B, 0.55)
    # every VAE gradient too (the adversary's comes through the relaxed top-K, not in the reference)
    params = [(n, p) for n, p in model.named_parameters() if ".adversary." not in n]
    got = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    want = torch.autograd.grad(expected, [p for _, p in params], allow_unused=True)
    for (name, _), g, w in zip(params, got, want, strict=True):
        assert g is not None and w is not None, name
        assert torch.allclose(g, w, rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize(
    "unit, dropped, case", [("timestep", "unk", "authors"), ("token", "zero", "legacy"), ("timestep", "zero", "legacy"),
                            ("token", "unk", "authors")]
)  # fmt: skip
def test_uniform_word_dropout_loss_equals_the_equations(unit, dropped, case, monkeypatch):
    opts = dict(OPTION_CASES[case], uniform_dropout_unit=unit, dropped_input=dropped)
    model, d = tiny_awd("uniform", **opts)
    model = model.double().train()
    bos_step = not model.cfg.decoder_no_bos_step
    sample = make_batch(d, SENTENCES, extra_pad=2)
    B, L = sample["target"].shape
    T = L if bos_step else L - 1
    eps = torch.randn(B, 3, dtype=torch.float64)
    uniform = torch.rand(T if unit == "timestep" else (B, T), dtype=torch.float64)
    monkeypatch.setattr(awd_module.torch, "randn_like", lambda t: eps.to(t.dtype).reshape(t.shape))
    monkeypatch.setattr(awd_module.torch, "rand", lambda *shape, **kw: uniform.to(torch.float32).reshape(*shape))
    loss, _, log = criterion(d)(model, sample)
    monkeypatch.undo()
    expected = reference_loss(model, sample, eps, None, 0.25, 0.0, bos_step, case == "authors",
                              uniform_noise=uniform.to(torch.float32).double(), timestep_unit=unit == "timestep",
                              unk=dropped == "unk")  # fmt: skip
    assert torch.allclose(loss, expected, rtol=1e-10), (loss.item(), expected.item())
    valid = sample["net_input"]["prev_output_tokens"][:, 0 if bos_step else 1 :].ne(1)
    assert log["n_dropped"] == int(((uniform < 0.3).expand(B, T) & valid).sum()) and log["n_inputs"] == int(valid.sum())


def test_exactly_k_inputs_dropped_per_sentence():
    model, d = tiny_awd("adversarial")
    model.train()
    lengths = [1, 2, 3, 5, 7, 10, 13]
    sentences = [[4 + (i + j) % 15 for j in range(n)] for i, n in enumerate(lengths)]
    sample = make_batch(d, sentences, extra_pad=3)
    words = sample["net_input"]["prev_output_tokens"][:, 1:]
    for _ in range(5):
        keep, stats = model.decoder.keep_mask(words)
        dropped = ((keep < 0.5) & words.ne(1)).sum(1)
        assert dropped.tolist() == [math.floor(0.3 * n + 0.5) for n in lengths]
        assert (keep[words.eq(1)] == 0).all() and set(keep.unique().tolist()) <= {0.0, 1.0}
        # the dropped inputs are the lowest-scored ones
        for b, n in enumerate(lengths):
            s = stats["scores"][b, :n]
            k = int(dropped[b])
            if 0 < k < n:
                assert s[keep[b, :n] < 0.5].max() <= s[keep[b, :n] > 0.5].min()


def test_uniform_mode_drops_at_rate_r_and_none_drops_nothing():
    model, d = tiny_awd("uniform", word_dropout_rate=0.3, uniform_dropout_unit="token")
    model.train()
    torch.manual_seed(3)
    words = torch.randint(4, 20, (400, 50))
    words[:, 45:] = 1  # padding is never "kept"
    keep, _ = model.decoder.keep_mask(words)
    assert abs((1 - keep[:, :45].mean().item()) - 0.3) < 0.01 and (keep[:, 45:] == 0).all()
    # the authors' unit: one draw per time step for the whole batch
    model, d = tiny_awd("uniform", word_dropout_rate=0.3)
    model.train()
    words = torch.randint(4, 20, (5, 20000))
    words[0, 10000:] = 1
    keep, _ = model.decoder.keep_mask(words)
    assert (keep[1:] == keep[1]).all() and torch.equal(keep[0, :10000], keep[1, :10000])
    assert (keep[0, 10000:] == 0).all()
    assert abs((1 - keep[1].mean().item()) - 0.3) < 0.01
    none, d = tiny_awd("none")
    none.train()
    keep, stats = none.decoder.keep_mask(words)
    assert torch.equal(keep, words.ne(1).float()) and stats == {} and none.decoder.adversary is None


def test_gradient_into_the_adversary_is_reversed(monkeypatch):
    """With reversal the adversary's gradient is exactly minus the one without; the VAE's is unchanged."""
    d = make_dictionary()
    sample = make_batch(d, SENTENCES)

    def grads(reverse):
        model, _ = tiny_awd("adversarial", seed=4)
        model.train()
        if not reverse:
            monkeypatch.setattr(awd_module, "grad_reverse", lambda x: x)
        torch.manual_seed(11)
        loss, _, _ = criterion(d, adversary_lambda=0.0)(model, sample)
        loss.backward()
        monkeypatch.undo()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    with_rev, without = grads(True), grads(False)
    adversary = [n for n in with_rev if ".adversary." in n]
    assert adversary and any(with_rev[n].abs().sum() > 0 for n in adversary)
    for n in with_rev:
        if ".adversary." in n:
            assert torch.allclose(with_rev[n], -without[n], atol=1e-12), n
        else:
            assert torch.allclose(with_rev[n], without[n], atol=1e-12), n


def test_large_lambda_drives_scores_towards_standard_normal():
    d = make_dictionary()
    sample = make_batch(d, SENTENCES)
    result = {}
    for lam in (0.0, 50.0):
        model, _ = tiny_awd("adversarial", seed=2)
        model.train()
        with torch.no_grad():  # start from a sharply scoring adversary: |mu_s| of order 5
            model.decoder.adversary.to_score.weight.mul_(60.0)
        opt = torch.optim.Adam(model.decoder.adversary.parameters(), lr=0.01)
        crit = criterion(d, adversary_lambda=lam)
        for _ in range(60):
            opt.zero_grad()
            crit(model, sample)[0].backward()
            opt.step()
        words = sample["net_input"]["prev_output_tokens"][:, 1:]
        _, _, mu = model.decoder.adversary(words, words.ne(1).double())
        result[lam] = mu[words.ne(1)].abs().mean().item()
    assert result[50.0] < 0.1 < 1.0 < result[0.0], result


def test_adversary_plays_no_role_at_evaluation(monkeypatch):
    model, d = tiny_awd("adversarial")
    model.eval()
    model.set_posterior_mean(True)

    def refuse(*args, **kwargs):
        raise AssertionError("the adversary must not run in eval mode")

    monkeypatch.setattr(model.decoder.adversary, "forward", refuse)
    sample = make_batch(d, SENTENCES)
    a, extra = model(**sample["net_input"])
    b, _ = model(**sample["net_input"])
    assert torch.equal(a, b) and (extra["keep"][extra["valid_inputs"]] == 1).all()


@pytest.mark.parametrize("case", OPTION_CASES)
def test_padding_and_incremental_decoding_change_nothing(case):
    model, d = tiny_awd("adversarial", **OPTION_CASES[case])
    model.eval()
    model.set_posterior_mean(True)
    batch = make_batch(d, SENTENCES, extra_pad=3)
    full, _ = model(**batch["net_input"])
    for i, s in enumerate(SENTENCES):
        alone = make_batch(d, [s])
        out, _ = model(**alone["net_input"])
        n = len(s) + 1
        assert torch.allclose(out[0, :n], full[i, :n], atol=1e-6)
    # incremental: one token at a time equals the full pass
    s = make_batch(d, [SENTENCES[0]])
    enc = model.encoder(s["net_input"]["src_tokens"])
    prev = s["net_input"]["prev_output_tokens"]
    state = {}
    steps = [model.decoder(prev[:, : t + 1], enc, incremental_state=state)[0][:, -1] for t in range(prev.size(1))]
    assert torch.allclose(torch.stack(steps, 1), full[:1, : prev.size(1)], atol=1e-6)
    # in float64, a batch, reordered after every step as beam search does
    model.double()
    full, _ = model(**batch["net_input"])
    enc = model.encoder(batch["net_input"]["src_tokens"])
    assert_incremental_matches_full(model, enc, batch["net_input"]["prev_output_tokens"], full,
                                    torch.tensor([2, 0, 0, 3]), atol=1e-13)  # fmt: skip


def test_evaluation_is_batch_invariant_and_iw_subset_matches_a_shorter_split():
    from davam_plugin.evaluation import evaluate_gaussian_split

    model, d = tiny_awd("adversarial")
    sents = [torch.tensor(s + [d.eos()]) for s in SENTENCES * 2]
    run = lambda items, **kw: evaluate_gaussian_split(model, items, iw_samples=7, seed=3, **kw)  # noqa: E731
    a = run(sents, iw_chunk=7, batch_size=8)
    b = run(sents, iw_chunk=3, batch_size=3)
    for key in ("rec", "kl", "neg_elbo", "iw_nll", "mi", "active_units"):
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key  # float32 decoding
    # IW over the first 3 sentences only: the same IW numbers as evaluating those 3 sentences
    sub = run(sents, iw_chunk=7, batch_size=2, iw_max_sentences=3)
    short = run(sents[:3], iw_chunk=7, batch_size=8)
    assert sub["iw_sentences"] == 3 and a["iw_sentences"] == len(sents)
    assert sub["iw_nll"] == pytest.approx(short["iw_nll"], rel=1e-6)
    assert sub["ppl_iw"] == pytest.approx(short["ppl_iw"], rel=1e-6)
    assert sub["iw_tokens"] == short["tokens"] == sum(len(s) for s in sents[:3])
    assert sub["neg_elbo_iw_subset"] == pytest.approx(short["neg_elbo"], rel=1e-6)
    assert sub["neg_elbo"] == pytest.approx(a["neg_elbo"], rel=1e-6)  # the rest is computed on all sentences
    assert sub["iw_nll"] != pytest.approx(a["iw_nll"])


def test_evaluation_scores_real_tokens_with_the_full_softmax_and_groups_change_nothing(monkeypatch):
    """log p(x|z) from the output layer at real positions only, a few rows at a time, equals the
    log-softmax of the whole padded batch's logits; and how the importance-weighted pass groups
    the sentences of a batch by length changes no number."""
    import davam_plugin.evaluation as evaluation

    model, d = tiny_awd("adversarial")
    model.eval()
    sents = [torch.tensor(s + [d.eos()]) for s in SENTENCES]
    batch = make_batch(d, SENTENCES)
    src = batch["net_input"]["src_tokens"]
    assert src.ne(d.pad()).sum() < src.numel(), "the batch has padding"
    z = torch.randn(src.size(0), model.encoder.posterior(src)[0].size(1), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = model.decoder(batch["net_input"]["prev_output_tokens"], encoder_out={"z": [z]})
    logp = F.log_softmax(logits.double(), -1).gather(-1, src.unsqueeze(-1)).squeeze(-1)
    expected = logp.masked_fill(src.eq(d.pad()), 0.0).sum(1)
    monkeypatch.setattr(evaluation, "OUTPUT_CHUNK_ROWS", 3)  # several chunks, one cut inside a sentence
    got = evaluation.sentence_log_likelihood(model, src, z)
    assert got.dtype == torch.float64 and torch.allclose(got, expected, rtol=1e-6, atol=1e-5)
    run = lambda: evaluation.evaluate_gaussian_split(model, sents, iw_samples=5, iw_chunk=2, batch_size=8, seed=2)  # noqa: E731
    monkeypatch.setattr(evaluation, "IW_GROUP_SENTENCES", 1)
    one = run()
    monkeypatch.setattr(evaluation, "IW_GROUP_SENTENCES", 64)
    whole = run()
    assert one["iw_nll"] == pytest.approx(whole["iw_nll"], rel=1e-6) and one["iw_nll"] != whole["rec"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"adversary_lambda": -0.1}, "error: --adversary-lambda must be >= 0, got -0.1"),
        ({"kl_weight_start": -1.0}, "error: --kl-weight-start must be >= 0, got -1.0"),
        ({"kl_warmup_updates": -5}, "error: --kl-warmup-updates must be >= 0, got -5"),
    ],
)
def test_negative_criterion_settings_are_refused(kw, message):
    with pytest.raises(SystemExit) as e:
        criterion(make_dictionary(), **kw)
    assert str(e.value) == message


@pytest.mark.parametrize("arch", ["awd", "awd_tiny"])
def test_checkpoint_saved_before_the_options_loads_with_its_old_behaviour(arch):
    """fairseq builds a checkpoint's model from its saved config: for ``_name: awd`` merged
    with today's defaults (the authors' behaviour; the fields the saved config lacks switch it
    back when the weights are loaded), for a named arch after the arch function filled in what
    is missing (it leaves the newer options unset)."""
    from fairseq.models import build_model
    from omegaconf import OmegaConf

    old, d = tiny_awd("uniform", **LEGACY)  # trained before the options existed
    saved = OmegaConf.structured(old.cfg)
    saved = OmegaConf.create({k: v for k, v in OmegaConf.to_container(saved).items() if k not in LEGACY})
    saved["_name"] = arch
    del saved["adversary_embed_init_scale"]
    model = build_model(saved, TinyTask(d), from_checkpoint=True)
    if arch == "awd":  # merged with the defaults
        assert model.decoder.bos_step and model.decoder.input_embed is model.encoder.embed_tokens
    else:
        assert "decoder_no_bos_step" not in saved and not model.decoder.bos_step
    model.load_state_dict(old.state_dict(), strict=True, model_cfg=saved)
    assert not model.decoder.bos_step and model.decoder.dropout_unit == "token"
    assert model.decoder.input_embed is model.decoder.embed_tokens is not model.encoder.embed_tokens
    assert model.state_dict().keys() == old.state_dict().keys()
    sample = make_batch(d, SENTENCES, extra_pad=1)
    for m in (old, model):
        m.eval()
        m.set_posterior_mean(True)
    assert torch.equal(old(**sample["net_input"])[0], model(**sample["net_input"])[0])
    losses = []
    for m in (old, model):
        m.train()
        torch.manual_seed(5)
        losses.append(criterion(d)(m, sample)[0])
    assert torch.equal(losses[0], losses[1])
    # resuming such a checkpoint under today's defaults (the trainer passes its own config) is refused
    new, _ = tiny_awd("uniform")
    with pytest.raises(SystemExit, match="pass --separate-decoder-embeddings"):
        new.load_state_dict(old.state_dict(), strict=True)
    with pytest.raises(SystemExit, match="drop --separate-decoder-embeddings"):
        old.load_state_dict(new.state_dict(), strict=True)
    # a current checkpoint keeps its (authors') behaviour
    again, _ = tiny_awd("uniform", seed=3)
    again.load_state_dict(new.state_dict(), strict=True, model_cfg=OmegaConf.structured(new.cfg))
    assert again.decoder.bos_step and again.decoder.input_embed is again.encoder.embed_tokens
    assert again.decoder.dropout_unit == "timestep"


def test_adversary_embedding_initialisation():
    model, _ = tiny_awd("adversarial")  # authors: U(-0.01, 0.01)
    w = model.decoder.adversary.embed_tokens.weight
    assert 0.009 < w.abs().max() <= 0.01
    model, _ = tiny_awd("adversarial", adversary_embed_init_scale=0.2)
    assert 0.19 < model.decoder.adversary.embed_tokens.weight.abs().max() <= 0.2
    # configs written before the option: like the other embeddings, U(-embed_init_scale, embed_init_scale)
    from argparse import Namespace

    assert awd_module.awd_opt(Namespace(embed_init_scale=0.5), "adversary_embed_init_scale") == 0.5
    assert awd_module.awd_opt(Namespace(embed_init_scale=0.5, adversary_embed_init_scale=None),
                              "adversary_embed_init_scale") == 0.5  # fmt: skip


@pytest.mark.parametrize("case", ["authors", "legacy"])
def test_a_batch_of_empty_lines_trains(case, monkeypatch):
    """Only EOS targets: without the <s> step there is no word input at all (the adversary's
    LSTM used to fail on zero steps), with it the one input <s> (K = round(0.3) = 0)."""
    model, d = tiny_awd("adversarial", **OPTION_CASES[case])
    model = model.double().train()
    bos_step = case == "authors"
    sample = make_batch(d, [[], []])
    eps = torch.randn(2, 3, dtype=torch.float64)
    score_eps = torch.randn(2, 1, dtype=torch.float64)
    noise = iter([eps, score_eps])
    monkeypatch.setattr(awd_module.torch, "randn_like", lambda t: next(noise).to(t.dtype).reshape(t.shape))
    loss, n, log = criterion(d)(model, sample)
    monkeypatch.undo()
    expected = reference_loss(model, sample, eps, score_eps, 0.25, 0.5, bos_step, bos_step)
    assert torch.allclose(loss, expected, rtol=1e-10), (loss.item(), expected.item())
    assert n == 2 and log["n_dropped"] == 0 and log["n_inputs"] == (2 if bos_step else 0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.encoder.to_posterior.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["adversarial", "none"])
def test_training_step_under_bfloat16_autocast(mode):
    """Under CPU bf16 autocast (the LSTMs of encoder and adversary run in float32 outside it:
    oneDNN has no bf16 LSTM here) a training step gives float32 gradients; without the adversary's
    choices in play the loss is within 1% and every gradient within 5% (of its largest entry) of
    the float32 step's."""
    model, d = tiny_awd(mode)
    model.train()
    sample = make_batch(d, SENTENCES)

    def step(autocast):
        model.zero_grad()
        torch.manual_seed(7)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, _, log = criterion(d)(model, sample)
        loss.backward()
        return loss, {k: p.grad for k, p in model.named_parameters() if p.grad is not None}

    loss16, grads16 = step(True)
    loss32, grads32 = step(False)
    assert loss16.dtype == torch.float32 and grads16.keys() == grads32.keys()
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads16.values())
    if mode == "none":
        assert abs(loss16.item() - loss32.item()) < 0.01 * abs(loss32.item())
        for k in grads32:
            assert (grads16[k] - grads32[k]).abs().max() <= 0.05 * grads32[k].abs().max(), k


@pytest.mark.parametrize("mode", ["adversarial", "uniform", "none"])
def test_training_step_with_the_model_cast_to_half_width(mode):
    """fairseq's --fp16 (like model.half() or .bfloat16()) casts the whole model, no autocast:
    the posterior stays in float32 (at_least_fp32) and its sample must enter the cast decoder in
    the weights' dtype (an H200 run of bench_train.py --precisions fp16 failed with
    'float != Half' in z_to_state). bfloat16 stands in for half here: the CPU has its kernels."""
    model, d = tiny_awd(mode)
    model = model.to(torch.bfloat16).train()
    loss, _, log = criterion(d)(model, make_batch(d, SENTENCES))
    loss.backward()
    assert torch.isfinite(loss) and log["nsentences"] == len(SENTENCES)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.bfloat16 and torch.isfinite(g.float()).all() for g in grads)
    assert model.decoder.z_to_state.weight.grad.abs().sum() > 0


def test_named_archs_leave_the_newer_options_to_the_dataclass_defaults():
    """On the command line (a Namespace without the options) a named arch leaves them unset:
    fairseq's conversion to its config then gives them the dataclass defaults, the authors'."""
    from argparse import Namespace

    from fairseq.dataclass.utils import _override_attr

    ns = Namespace(embed_dim=16)
    awd_module.awd_ptb(ns)
    assert ns.embed_dim == 16 and ns.decoder_hidden_dim == 2048 and ns.word_dropout_rate == 0.2
    assert all(not hasattr(ns, name) for name in awd_module.NEWER_OPTIONS)
    overrides = dict(o.split("=", 1) for o in _override_attr("model", AwdConfig, ns))
    assert overrides["model.decoder_no_bos_step"] == "False"
    assert overrides["model.separate_decoder_embeddings"] == "False"
    assert overrides["model.uniform_dropout_unit"] == "'timestep'"
    assert overrides["model.adversary_embed_init_scale"] == "0.01"
    ns = Namespace(decoder_no_bos_step=True)  # given on the command line: kept
    awd_module.awd_tiny(ns)
    assert ns.decoder_no_bos_step is True


def test_gradient_statistics_give_the_adversary_gradient_norm():
    """The task logs model.gradient_statistics() after each backward: for AWD the L2 norm of
    the adversary's gradient (all of its parameters), nothing without an adversary."""
    model, d = tiny_awd("adversarial")
    model.train()
    sample = make_batch(d, SENTENCES)
    loss, _, _ = criterion(d)(model, sample)
    loss.backward()
    grads = [p.grad for p in model.decoder.adversary.parameters()]
    assert all(g is not None for g in grads)
    expected = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
    assert expected > 0
    assert model.gradient_statistics() == {"adversary_grad_norm": pytest.approx(expected, rel=1e-5)}
    none, _ = tiny_awd("none")
    assert none.gradient_statistics() == {}
