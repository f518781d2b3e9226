"""Criterion ``davam``: exact loss values, beta schedule, metric aggregation."""

import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import metrics

from davam_plugin.criterions.davam import DavamCriterion
from davam_plugin.metrics import attention_entropy, linear_warmup
from helpers import SENTENCES, TinyTask, make_batch, tiny_model


def make_criterion(d, **kw):
    kw = {"beta_start": 0.15, "beta_max": 5.0, "beta_warmup_updates": 10, **kw}
    return DavamCriterion(TinyTask(d), **kw)


def reference_loss(model, batch, beta):
    """rec + beta * commitment from first principles: plain LSTMCell decoder and an explicit
    nearest-code search over the encoder states."""
    n = batch["net_input"]
    enc = model.encoder(n["src_tokens"], n["src_lengths"])
    logits = model.decoder.forward_unfused(n["prev_output_tokens"], enc)
    target = batch["target"]
    logp = F.log_softmax(logits.double(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    rec = -logp.masked_fill(target.eq(1), 0.0).sum()  # pad targets have logit -inf
    h, mask = model.encoder.encoder_states(n["src_tokens"])
    commitment = 0.0
    for b in range(h.size(0)):
        for t in range(h.size(1)):
            if not mask[b, t]:
                d2 = ((model.encoder.bottleneck.quantizer.codebook - h[b, t]) ** 2).sum(-1)
                commitment += float(d2.min())
    return float(rec), commitment, float(rec) + beta * commitment


@pytest.mark.parametrize("num_updates", [0, 5, 10, 50])
def test_loss_equals_first_principles_computation(num_updates):
    model, d = tiny_model()
    model.eval()
    model.set_num_updates(num_updates)
    crit = make_criterion(d)
    batch = make_batch(d, SENTENCES)
    beta = 0.15 + (5.0 - 0.15) * min(1.0, num_updates / 10)
    rec, commit, total = reference_loss(model, batch, beta)
    loss, sample_size, log = crit(model, batch)
    assert sample_size == len(SENTENCES)
    assert log["rec"].item() == pytest.approx(rec, rel=1e-5)
    assert log["commitment"].item() == pytest.approx(commit, rel=1e-5)
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert log["beta"] == pytest.approx(beta * len(SENTENCES))
    assert log["ntokens"] == sum(len(s) + 1 for s in SENTENCES)  # words + EOS
    assert log["_code_hist"].sum().item() == log["ntokens"]


def test_initial_reconstruction_is_near_uniform():
    """A freshly initialised decoder (weights ~ U(-0.3, 0.3)) is close to uniform over |V|."""
    model, d = tiny_model()
    model.eval()
    crit = make_criterion(d)
    batch = make_batch(d, SENTENCES)
    rec, commit, _ = reference_loss(model, batch, 0.15)
    # uniform-ish initial decoder: rec is close to ntokens * log(|V|)
    ntok = sum(len(s) + 1 for s in SENTENCES)
    assert abs(rec - ntok * math.log(len(d))) < 0.05 * ntok * math.log(len(d))
    loss, _, _ = crit(model, batch)
    assert loss.item() == pytest.approx(rec + 0.15 * commit, rel=1e-5)


def test_padding_does_not_change_loss():
    model, d = tiny_model()
    model.eval()
    crit = make_criterion(d)
    la, _, _ = crit(model, make_batch(d, SENTENCES))
    lb, _, _ = crit(model, make_batch(d, SENTENCES, extra_pad=7))
    assert la.item() == pytest.approx(lb.item(), rel=1e-6)


def test_beta_schedule():
    assert linear_warmup(0, 0.15, 5.0, 100) == pytest.approx(0.15)
    assert linear_warmup(50, 0.15, 5.0, 100) == pytest.approx(2.575)
    assert linear_warmup(100, 0.15, 5.0, 100) == pytest.approx(5.0)
    assert linear_warmup(10**6, 0.15, 5.0, 100) == pytest.approx(5.0)
    assert linear_warmup(3, 0.15, 5.0, 0) == pytest.approx(5.0)


def test_beta_hold_keeps_the_start_value_then_ramps():
    """--beta-hold-updates H: beta_start for H updates, then the usual ramp (the paper's text)."""
    d = tiny_model()[1]
    crit = make_criterion(d, beta_start=0.1, beta_max=5.0, beta_warmup_updates=100, beta_hold_updates=50)
    assert [crit.beta(u) for u in (0, 49, 50)] == [pytest.approx(0.1)] * 3
    assert crit.beta(100) == pytest.approx(0.1 + 4.9 * 0.5)
    assert crit.beta(150) == crit.beta(10**6) == pytest.approx(5.0)
    step = make_criterion(d, beta_start=0.1, beta_max=5.0, beta_warmup_updates=0, beta_hold_updates=50)
    assert (step.beta(49), step.beta(50)) == (pytest.approx(0.1), pytest.approx(5.0))
    with pytest.raises(SystemExit, match="--beta-hold-updates must be >= 0"):
        make_criterion(d, beta_hold_updates=-1)


def test_reduce_metrics_derives_code_statistics_from_summed_histograms():
    logs = [
        {"loss": 10.0, "rec": 8.0, "commitment": 4.0, "beta": 1.0, "ntokens": 4, "nsentences": 2,
         "sample_size": 2, "_code_hist": torch.tensor([2.0, 0.0, 1.0, 0.0], dtype=torch.double)},
        {"loss": 6.0, "rec": 4.0, "commitment": 2.0, "beta": 1.0, "ntokens": 2, "nsentences": 2,
         "sample_size": 2, "_code_hist": torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.double)},
    ]  # fmt: skip
    with metrics.aggregate() as agg:
        DavamCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    assert values["loss"] == pytest.approx(4.0)
    assert values["rec"] == pytest.approx(3.0)
    assert values["nll_per_token"] == pytest.approx(2.0)
    assert values["rec_ppl"] == pytest.approx(math.exp(2.0), rel=1e-3)
    assert values["code_usage"] == 2  # codes 0 and 2
    assert values["code_ppl"] == pytest.approx(2.0)  # histogram [2, 0, 2, 0]
    assert "_code_hist" not in values


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sixteen_bit_training_step(dtype):
    """What --fp16/--bf16 do to the model (``.half()``/``.bfloat16()``): the loss is computed
    in float32, the codebook statistics stay float32 and are updated, gradients are finite,
    and the loss matches the float32 model's."""
    ref_model, d = tiny_model()
    ref_model.train()
    model, _ = tiny_model()
    model.to(dtype).train()
    crit = make_criterion(d)
    batch = make_batch(d, SENTENCES)
    torch.manual_seed(1)
    ref_loss, _, _ = crit(ref_model, batch)
    torch.manual_seed(1)
    loss, _, log = crit(model, batch)
    loss.backward()
    q = model.encoder.bottleneck.quantizer
    assert loss.dtype == torch.float32
    assert q.codebook.dtype == q.cluster_size.dtype == q.cluster_sum.dtype == torch.float32
    assert q.cluster_size.sum().item() == pytest.approx(0.01 * log["ntokens"])  # one EMA update
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=2e-2)


def test_attention_entropy_exact_values():
    attn = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]],
                         [[0.25, 0.25, 0.5], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]])  # fmt: skip
    keep = torch.tensor([[True, True, False], [True, False, False]])
    entropy, uniform = attention_entropy(attn, keep, torch.tensor([2, 3]))
    expected = math.log(2) + 0.0 + (2 * 0.25 * math.log(4) + 0.5 * math.log(2))
    assert entropy.item() == pytest.approx(expected, rel=1e-12)
    assert uniform.item() == pytest.approx(2 * math.log(2) + math.log(3), rel=1e-12)


def test_criterion_logs_the_decoders_attention_entropy_per_target_token():
    model, d = tiny_model()
    model.eval()
    crit = make_criterion(d)
    batch = make_batch(d, SENTENCES)
    _, _, log = crit(model, batch)
    _, extra = model(**batch["net_input"], features_only=True)
    a = extra["attn"][0].double()
    keep = batch["target"].ne(d.pad())
    lengths = torch.tensor([len(s) + 1 for s in SENTENCES])  # one latent per token (words + EOS)
    expected = sum(-(a[b, i] * a[b, i].clamp_min(1e-300).log()).sum().item()
                   for b in range(a.size(0)) for i in range(a.size(1)) if keep[b, i])  # fmt: skip
    assert log["_attn_entropy"].item() == pytest.approx(expected, rel=1e-6)
    assert log["_attn_entropy_uniform"].item() == pytest.approx(
        sum((len(s) + 1) * math.log(n) for s, n in zip(SENTENCES, lengths.tolist(), strict=True)), rel=1e-9
    )
    assert 0 < log["_attn_entropy"] < log["_attn_entropy_uniform"]
    _, _, padded = crit(model, make_batch(d, SENTENCES, extra_pad=7))
    assert padded["_attn_entropy"].item() == pytest.approx(log["_attn_entropy"].item(), rel=1e-6)
    with metrics.aggregate(new_root=True) as agg:
        DavamCriterion.reduce_metrics([log])
        values = agg.get_smoothed_values()
    ntok = sum(len(s) + 1 for s in SENTENCES)
    assert values["attn_entropy"] == pytest.approx(log["_attn_entropy"].item() / ntok, abs=1e-3)
    assert "_attn_entropy" not in values


def test_criterion_logs_the_attention_score_vector_norm():
    """attn_v_norm is ||v||_2 of the decoder attention's score vector, whatever the batch split."""
    model, d = tiny_model()
    crit = make_criterion(d)
    with torch.no_grad():
        model.decoder.attention.v.copy_(torch.linspace(-0.3, 0.5, model.decoder.attention.v.numel()))
    expected = model.decoder.attention.v.norm().item()
    logs = [crit(model, make_batch(d, SENTENCES[:1]))[2], crit(model, make_batch(d, SENTENCES[1:]))[2]]
    with metrics.aggregate(new_root=True) as agg:
        DavamCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    assert values["attn_v_norm"] == pytest.approx(expected, abs=1e-4) and "_attn_v_norm" not in values
    with torch.no_grad():
        model.decoder.attention.v.zero_()
    assert crit(model, make_batch(d, SENTENCES))[2]["_attn_v_norm"].item() == 0.0
