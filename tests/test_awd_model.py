"""AWD (model ``awd``, criterion ``awd_elbo``) in process: exact loss, word dropout modes,
gradient reversal, the adversary's regulariser and its absence at evaluation."""

import math

import pytest
import torch
import torch.nn.functional as F

import davam_plugin.models.awd as awd_module
from davam_plugin.criterions.awd_elbo import AwdElboCriterion
from davam_plugin.models.awd import AwdConfig, AwdModel

from helpers import SENTENCES, TinyTask, make_batch, make_dictionary


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


def reference_loss(model, sample, eps, score_eps, kl_weight, lam):
    """The paper's equations step by step in float64 with nn.LSTMCell (no fused arrangement)."""
    enc, dec = model.encoder, model.decoder
    total = torch.zeros((), dtype=torch.float64)
    for b in range(sample["target"].size(0)):
        tgt = sample["target"][b][sample["target"][b].ne(1)]
        n = len(tgt) - 1  # word inputs x_1..x_n
        states, _ = enc.lstm(enc.embed_tokens(tgt.unsqueeze(0)))
        mu, logvar = enc.to_posterior(states[0, -1]).chunk(2)
        z = mu + torch.exp(0.5 * logvar) * eps[b]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
        words = tgt[:n]
        keep = torch.ones(n, dtype=torch.float64)
        score_kl = torch.zeros((), dtype=torch.float64)
        if model.decoder.adversary is not None and n > 0:
            adv = dec.adversary
            mu_s = adv.to_score(adv.lstm(adv.embed_tokens(words.unsqueeze(0)))[0])[0, :, 0]
            s = mu_s + score_eps[b, :n]
            k = math.floor(0.3 * n + 0.5)
            keep[torch.argsort(s, stable=True)[:k]] = 0.0
            score_kl = 0.5 * mu_s.pow(2).sum()
        h, c = dec.z_to_state(z), torch.zeros(dec.hidden_dim, dtype=torch.float64)
        rec = -F.log_softmax(dec.output_layer(h), -1)[tgt[0]]
        for i in range(n):
            h, c = dec.predict_cell(z.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))
            x = torch.cat([dec.embed_tokens(words[i]) * keep[i], z]).unsqueeze(0)
            h, c = dec.update_cell(x, (h, c))
            h, c = h[0], c[0]
            rec = rec - F.log_softmax(dec.output_layer(h), -1)[tgt[i + 1]]
        total = total + rec + kl_weight * kl + lam * score_kl
    return total


@pytest.mark.parametrize("mode", ["adversarial", "none"])
def test_loss_equals_the_equations_on_a_fixed_batch(mode, monkeypatch):
    model, d = tiny_awd(mode)
    model = model.double().train()
    sample = make_batch(d, SENTENCES, extra_pad=2)
    B, L = sample["target"].shape
    eps = torch.randn(B, 3, dtype=torch.float64)
    score_eps = torch.randn(B, L, dtype=torch.float64)
    # feed the model the same noise as the reference: z's eps, then the scores' eps
    noise = iter([eps, score_eps[:, : L - 1]])
    monkeypatch.setattr(awd_module.torch, "randn_like", lambda t: next(noise).to(t.dtype).reshape(t.shape))
    crit = criterion(d)
    model.set_num_updates(40)  # kl weight 0.25 + 0.75 * 0.4 = 0.55
    loss, sample_size, log = crit(model, sample)
    monkeypatch.undo()
    expected = reference_loss(model, sample, eps, score_eps, 0.55, 0.5 if mode == "adversarial" else 0.0)
    assert sample_size == B
    assert torch.allclose(loss, expected, rtol=1e-10), (loss.item(), expected.item())
    assert math.isclose(log["kl_weight"] / B, 0.55)


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
    model, d = tiny_awd("uniform", word_dropout_rate=0.3)
    model.train()
    torch.manual_seed(3)
    words = torch.randint(4, 20, (400, 50))
    keep, _ = model.decoder.keep_mask(words)
    assert abs((1 - keep.mean().item()) - 0.3) < 0.01
    none, d = tiny_awd("none")
    none.train()
    keep, stats = none.decoder.keep_mask(words)
    assert keep.min() == 1 and stats == {} and none.decoder.adversary is None


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
    model.encoder.use_posterior_mean = True

    def refuse(*args, **kwargs):
        raise AssertionError("the adversary must not run in eval mode")

    monkeypatch.setattr(model.decoder.adversary, "forward", refuse)
    sample = make_batch(d, SENTENCES)
    a, extra = model(**sample["net_input"])
    b, _ = model(**sample["net_input"])
    assert torch.equal(a, b) and (extra["keep"][extra["valid_inputs"]] == 1).all()


def test_padding_and_incremental_decoding_change_nothing():
    model, d = tiny_awd("adversarial")
    model.eval()
    model.encoder.use_posterior_mean = True
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
