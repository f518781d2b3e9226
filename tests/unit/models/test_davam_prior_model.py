"""The PixelCNN prior (model ``davam_prior``): causality, cached sampling, length modelling."""

import pytest
import torch
import torch.nn.functional as F

from davam_plugin.models.davam_prior import DavamPriorConfig, DavamPriorModel
from davam_plugin.modules.gated_causal_conv import GatedCausalConv1d

K = 7


def tiny_prior(seed=0, layers=3, kernel=3, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = DavamPriorConfig(prior_embed_dim=6, prior_layers=layers, prior_kernel_size=kernel, prior_head_dim=5)
    model = DavamPriorModel(cfg, torch.randn(K, 4)).to(dtype).eval()
    for p in model.parameters():  # larger weights: every position matters visibly
        p.data.mul_(2.0)
    return model


def random_sequences(n=4, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, K, (n, T), generator=g)
    codes[:, -1] = K  # EOC
    return codes


@pytest.mark.parametrize("layers, kernel", [(1, 2), (3, 3), (4, 5)])
def test_logits_at_t_do_not_depend_on_codes_at_or_after_t(layers, kernel):
    model = tiny_prior(layers=layers, kernel=kernel)
    codes = random_sequences()
    logits = model(codes)
    for t in range(codes.size(1)):
        changed = codes.clone()
        changed[:, t:] = (changed[:, t:] + 1 + torch.arange(codes.size(1) - t)) % K
        assert torch.equal(model(changed)[:, : t + 1], logits[:, : t + 1]), f"position {t} sees the future"
        if t >= 1:  # and it does see the previous code (the test could not pass by ignoring inputs)
            prev = codes.clone()
            prev[:, t - 1] = (prev[:, t - 1] + 1) % K
            assert not torch.allclose(model(prev)[:, t], logits[:, t])


def test_first_layer_is_strictly_causal_and_later_layers_see_the_present():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    strict = GatedCausalConv1d(3, 3, strictly_causal=True, residual=False).double()
    plain = GatedCausalConv1d(3, 3).double()
    x2 = x.clone()
    x2[:, :, 4] += 1.0
    assert torch.equal(strict(x)[:, :, :5], strict(x2)[:, :, :5])  # y_4 ignores x_4
    assert not torch.allclose(strict(x)[:, :, 5], strict(x2)[:, :, 5])
    assert torch.equal(plain(x)[:, :, :4], plain(x2)[:, :, :4])
    assert not torch.allclose(plain(x)[:, :, 4], plain(x2)[:, :, 4])  # y_4 sees x_4
    with pytest.raises(ValueError):
        GatedCausalConv1d(3, 3, strictly_causal=True, residual=True)


@pytest.mark.parametrize("strictly_causal", [True, False])
def test_gated_layer_equals_a_padded_conv1d_with_gates_forward_and_backward(strictly_causal):
    """The layer's gathered-taps products (both layouts) against the textbook computation:
    F.conv1d on the left-padded input, tanh * sigmoid gates, 1x1 conv, residual; values and
    the gradients of the input and of every parameter, in float64."""
    from davam_plugin.modules.gated_causal_conv import pointwise

    torch.manual_seed(3)
    C, k, B, T = 4, 3, 2, 7
    layer = GatedCausalConv1d(C, k, strictly_causal=strictly_causal, residual=not strictly_causal).double()
    x = torch.randn(B, C, T, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(B, C, T, dtype=torch.float64)

    def reference(x):
        s = 1 if strictly_causal else 0
        pre = F.conv1d(F.pad(x, (k - 1 + s, 0))[:, :, :T + k - 1], layer.conv.weight, layer.conv.bias)
        a, b = pre.chunk(2, dim=1)
        y = F.conv1d(torch.tanh(a) * torch.sigmoid(b), layer.out.weight, layer.out.bias)
        return y if strictly_causal else y + x

    def values_and_grads(y):
        grads = torch.autograd.grad((y * upstream).sum(), [x, *layer.parameters()])
        return [y.detach(), *grads]

    expected = values_and_grads(reference(x))
    for got in (values_and_grads(layer(x)),
                values_and_grads(layer.forward_time_major(x.transpose(1, 2)).transpose(1, 2))):  # fmt: skip
        for e, g in zip(expected, got, strict=True):
            assert torch.allclose(g, e, rtol=1e-10, atol=1e-12)
    h = torch.randn(B, T, C, dtype=torch.float64)
    assert torch.allclose(pointwise(layer.out, h), F.conv1d(h.transpose(1, 2), layer.out.weight, layer.out.bias).transpose(1, 2))


@pytest.mark.parametrize("temperature, topk", [(1.0, 0), (0.7, 3)])
def test_cached_sampling_gives_the_logits_of_a_full_forward(temperature, topk):
    model = tiny_prior(layers=4, kernel=3)
    torch.manual_seed(5)
    codes, lengths, step_logits = model.sample(16, max_len=12, temperature=temperature, topk=topk, return_logits=True)
    assert codes.size(0) == 16 and lengths.min() >= 1
    seq = torch.full((16, codes.size(1) + 1), model.pad)
    seq[:, : codes.size(1)] = codes
    seq[torch.arange(16), lengths] = model.eoc
    full = model(seq)
    for i in range(16):
        n = int(lengths[i]) + 1  # the codes and the EOC position
        torch.testing.assert_close(step_logits[i, :n], full[i, :n].float(), rtol=0, atol=1e-12)
        assert (codes[i, : lengths[i]] < K).all() and (codes[i, lengths[i] :] == model.pad).all()
    if topk:
        for i in range(16):
            for t in range(int(lengths[i])):
                allowed = step_logits[i, t].topk(topk).indices
                assert codes[i, t] in allowed


def test_step_cost_does_not_grow_with_the_prefix():
    """Each step touches a fixed-size cache (kernel columns per layer), not the prefix."""
    model = tiny_prior(layers=3, kernel=4)
    state = model.init_state(2)
    prev = None
    for t in range(20):
        model.step(prev, state, t)
        prev = torch.zeros(2, dtype=torch.long)
        assert [tuple(s.shape) for s in state] == [(2, 6, 4)] * 3


def test_length_is_modelled_end_symbol_never_first_and_capped():
    model = tiny_prior()
    logits = model(random_sequences())
    assert torch.isinf(logits[:, 0, K]).all() and torch.isfinite(logits[:, 1:, K]).all()
    torch.manual_seed(0)
    with torch.no_grad():  # make EOC overwhelmingly likely: every sequence has exactly one code
        model.head_out.bias[K] = 1e4
    codes, lengths = model.sample(8, max_len=5)
    assert lengths.tolist() == [1] * 8 and codes.shape == (8, 1)
    with torch.no_grad():  # make EOC impossible: the cap ends every sequence at max_len codes
        model.head_out.bias[K] = -1e4
    codes, lengths = model.sample(8, max_len=5)
    assert lengths.tolist() == [5] * 8 and codes.shape == (8, 5) and (codes < K).all()


def test_log_probs_are_the_cross_entropy_terms():
    model = tiny_prior()
    codes = random_sequences()
    codes[0, 5:] = model.pad
    codes[0, 4] = model.eoc
    lp = model.log_probs(codes)
    logp = F.log_softmax(model(codes), -1)
    assert lp[0, 5:].abs().sum() == 0
    assert torch.allclose(lp[1, 3], logp[1, 3, codes[1, 3]])
    ce = F.cross_entropy(model(codes).reshape(-1, K + 1), codes.reshape(-1), ignore_index=model.pad, reduction="sum")
    assert torch.allclose(-lp.sum(), ce)


def test_codes_outside_allowed_are_never_drawn():
    """``allowed`` removes codes (the stage-one quantizer's never-assigned ones) from sampling,
    even where the prior puts nearly all its mass on them; the end symbol stays possible; all
    allowed is exactly the unmasked sampler."""
    model = tiny_prior()
    with torch.no_grad():
        model.head_out.bias[:3] += 20.0  # codes 0, 1, 2 dominate
    allowed = torch.ones(K, dtype=torch.bool)
    allowed[:3] = False
    torch.manual_seed(5)
    codes, lengths = model.sample(64, 6, allowed=allowed)
    real = codes[torch.arange(codes.size(1)).unsqueeze(0) < lengths.unsqueeze(1)]
    assert real.numel() > 0 and not bool((real < 3).any())
    torch.manual_seed(5)
    unmasked, _ = model.sample(64, 6)
    assert bool((unmasked < 3).float().mean() > 0.9)  # the test would fail without the mask
    torch.manual_seed(5)
    same, same_len = model.sample(64, 6, allowed=torch.ones(K, dtype=torch.bool))
    torch.manual_seed(5)
    ref, ref_len = model.sample(64, 6)
    assert torch.equal(same, ref) and torch.equal(same_len, ref_len)


def test_davam_prior_sampling_leaves_out_never_assigned_codes():
    from helpers import tiny_model

    model, _ = tiny_model()
    q = model.encoder.bottleneck.quantizer
    q.cluster_size.zero_()
    q.cluster_size[[1, 4]] = 0.5
    assert model.live_codes().nonzero().flatten().tolist() == [1, 4]
