"""The latent bottleneck modules (VQ and Gaussian behind one interface), the one encoder-output
schema of DAVAM and its ablations, the criterion choosing its term by the model's declared
regularizer, and the state-dict names of checkpoints written before the bottleneck was a module."""

from pathlib import Path

import pytest
import torch

from davam_plugin.criterions.davam import DavamCriterion
from davam_plugin.metrics import gaussian_kl
from davam_plugin.models.davam import DAVAM_Q, ENCODER_OUT_KEYS, GAVAM, VAE_ATTN
from davam_plugin.modules.latent_bottleneck import LATENT_KEYS, GaussianBottleneck, VQBottleneck
from helpers import TinyTask, make_batch, make_dictionary, tiny_model

SENTENCES = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15]]
MASK = torch.tensor([[False, False, False], [False, True, True]])
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "compat"


def test_vq_bottleneck_codes_latents_and_commitment_by_hand():
    torch.manual_seed(0)
    b = VQBottleneck(5, 3, 4).double().eval()  # eval: no EMA update of the codebook
    h = torch.randn(2, 3, 5, dtype=torch.float64)
    out = b(h, MASK)
    assert tuple(out) == LATENT_KEYS and out["mu"] is None and out["logvar"] is None and out["kl"] is None
    u = h @ b.to_code.weight.t()
    book = b.quantizer.codebook.double()
    want = ((u.unsqueeze(2) - book) ** 2).sum(-1).argmin(-1).masked_fill(MASK, -1)
    assert torch.equal(out["codes"], want)
    real = ~MASK
    assert torch.equal(out["latents"][real], book[want[real]]) and not out["latents"][MASK].any()
    assert torch.allclose(out["commitment"], ((u[real] - book[want[real]]) ** 2).sum().float())
    assert torch.equal(out["code_counts"], torch.bincount(want[real], minlength=4).float())
    assert b.discrete and b.regularizer == "commitment" and b.num_codes == 4
    again = b.from_codes(want.clamp_min(0), MASK)
    assert torch.equal(again["codes"], want) and torch.equal(again["latents"], out["latents"].float())
    with pytest.raises(ValueError, match=r"code indices must be in \[0, 4\)"):
        b.from_codes(torch.full((2, 3), 4), MASK)
    with pytest.raises(ValueError, match="discrete codes"):
        b.from_latents(torch.zeros(2, 3, 3), MASK)
    with pytest.raises(ValueError, match="stage two"):
        b.sample_prior(torch.tensor([2, 3]))


def test_gaussian_bottleneck_sample_and_kl_by_hand(monkeypatch):
    torch.manual_seed(0)
    b = GaussianBottleneck(5, 3).double()
    h = torch.randn(2, 3, 5, dtype=torch.float64)
    eps = torch.randn(2, 3, 3, dtype=torch.float64)
    monkeypatch.setattr(b, "sample_noise", lambda mu: eps)
    out = b(h, MASK)
    assert tuple(out) == LATENT_KEYS and out["codes"] is None and out["code_counts"] is None
    params = h @ b.to_posterior.weight.t() + b.to_posterior.bias
    mu, logvar = params[..., :3], params[..., 3:]
    real = ~MASK
    assert torch.allclose(out["latents"][real], (mu + torch.exp(0.5 * logvar) * eps)[real])
    assert not out["latents"][MASK].any() and not out["mu"][MASK].any()
    kl = gaussian_kl(mu, logvar).masked_fill(MASK, 0.0).sum(1)
    assert torch.allclose(out["kl"], kl) and float(out["commitment"]) == 0.0
    b.use_posterior_mean = True
    assert torch.equal(b(h, MASK)["latents"], out["mu"])
    assert not b.discrete and b.regularizer == "kl"
    z = b.sample_prior(torch.tensor([1, 3]), temperature=0.5)
    assert z.shape == (2, 3, 3) and not z[0, 1:].any() and z[1].abs().sum() > 0
    with pytest.raises(ValueError, match="no codes"):
        b.from_codes(torch.zeros(2, 3, dtype=torch.long), MASK)


@pytest.mark.parametrize("ablation", [{}, DAVAM_Q, GAVAM, VAE_ATTN], ids=["davam", "davam_q", "gavam", "vae_attn"])
def test_one_encoder_output_schema(ablation):
    """Every encoder output (from tokens, codes or latents) has the same keys, each a list with
    one tensor or empty where the bottleneck has no such value."""
    model, d = tiny_model(**ablation) if not ablation.get("latent_type") else _gaussian(ablation)
    model.eval()
    batch = make_batch(d, SENTENCES)
    enc = model.encoder(**batch["net_input"])
    outs = [enc]
    lengths = torch.tensor([2, 1, 3])
    if model.encoder.bottleneck.discrete:
        outs.append(model.encoder(None, src_codes=torch.zeros(3, 3, dtype=torch.long), src_code_lengths=lengths))
        present = {"codes", "commitment", "code_counts"}
    else:
        outs.append(model.encoder(None, src_latents=torch.zeros(3, 3, 4), src_code_lengths=lengths))
        present = {"mu", "logvar", "commitment", "kl"}
    for out in outs:
        assert tuple(out) == ENCODER_OUT_KEYS
        assert all(isinstance(v, list) and len(v) <= 1 for v in out.values())
        assert all(len(out[k]) == 1 for k in ("latents", "encoder_padding_mask", "src_lengths"))
    assert {k for k in LATENT_KEYS[1:] if enc[k]} == present
    order = torch.tensor([2, 0, 1])
    reordered = model.encoder.reorder_encoder_out(enc, order)
    assert tuple(reordered) == ENCODER_OUT_KEYS and torch.equal(reordered["latents"][0], enc["latents"][0][order])


def _gaussian(ablation):
    torch.manual_seed(0)
    from davam_plugin.models.davam import DavamModel
    from helpers import tiny_config

    d = make_dictionary()
    return DavamModel.build_model(tiny_config(**ablation), TinyTask(d)), d


def test_criterion_follows_the_models_regularizer_not_the_keys_it_sees(monkeypatch):
    """A VQ model's output that also carries a "kl" entry is still trained on the commitment."""
    model, d = tiny_model()
    model.eval()  # the same codebook for both calls
    batch = make_batch(d, SENTENCES)
    crit = DavamCriterion(TinyTask(d), 2.0, 2.0, 0)
    torch.manual_seed(1)
    loss, _, log = crit(model, batch)
    forward = model.forward

    def with_kl(*args, **kwargs):
        x, extra = forward(*args, **kwargs)
        extra["kl"] = torch.full((len(SENTENCES),), 100.0)
        return x, extra

    monkeypatch.setattr(model, "forward", with_kl)
    torch.manual_seed(1)
    loss2, _, log2 = crit(model, batch)
    assert torch.equal(loss, loss2) and "kl" not in log2 and torch.equal(log["commitment"], log2["commitment"])
    monkeypatch.setattr(type(model), "latent_regularizer", property(lambda self: "entropy"))
    with pytest.raises(ValueError, match="unknown latent regularizer 'entropy'"):
        crit(model, batch)


@pytest.mark.parametrize("name", ["davam_tiny", "gavam_tiny"])
def test_state_dict_names_before_the_bottleneck_module_load(name):
    """encoder.quantizer.* / encoder.to_code.* / encoder.to_posterior.* / encoder.gaussian_prior.*
    (checkpoints up to commit baa2cae) map to encoder.bottleneck.*; fairseq's loader applies it."""
    state = torch.load(FIXTURE / f"{name}.pt", map_location="cpu", weights_only=False)["model"]
    old = {k for k in state if k.startswith("encoder.")}
    assert any(k.startswith(("encoder.quantizer.", "encoder.to_posterior.")) for k in old)
    from davam_plugin.models.davam import DavamEncoder

    upgraded = DavamEncoder.upgrade_state_dict_named(None, dict(state), "encoder")
    moved = {k for k in upgraded if k.startswith("encoder.bottleneck.")}
    assert moved and not any(k.startswith(("encoder.quantizer.", "encoder.to_code.", "encoder.to_posterior.",
                                            "encoder.gaussian_prior.")) for k in upgraded)  # fmt: skip
    assert len(upgraded) == len(state)
    for key in moved:
        old_key = key.replace("encoder.bottleneck.prior.", "encoder.gaussian_prior.").replace("bottleneck.", "")
        assert torch.equal(upgraded[key], state[old_key])


def test_stage_two_refuses_a_gaussian_stage_one_model():
    from davam_plugin.tasks.davam_prior import DavamPriorTask, DavamPriorTaskConfig

    cfg = DavamPriorTaskConfig(data=str(FIXTURE / "data"), davam_path=str(FIXTURE / "gavam_tiny.pt"))
    cfg.bf16 = cfg.fp16 = False
    with pytest.raises(SystemExit, match="has Gaussian latents .* fitted to discrete codes only"):
        DavamPriorTask.setup_task(cfg)
