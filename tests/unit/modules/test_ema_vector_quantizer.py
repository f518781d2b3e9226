"""EMAVectorQuantizer: nearest code, straight-through gradient, masked EMA update."""

import pytest
import torch

from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer


def make_quantizer(**kw):
    q = EMAVectorQuantizer(num_codes=3, code_dim=2, decay=0.5, eps=0.1, **kw)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    q.cluster_sum.copy_(q.codebook)
    q.cluster_size.zero_()
    return q


# two sentences, the second one padded at t=1 (its pad vector is far from every code)
INPUTS = torch.tensor([[[0.1, 0.0], [0.9, 0.2]], [[0.2, 0.1], [5.0, 5.0]]])
MASK = torch.tensor([[False, False], [False, True]])


def test_nearest_code_matches_brute_force():
    torch.manual_seed(0)
    q = EMAVectorQuantizer(num_codes=17, code_dim=5).eval()
    x = torch.randn(4, 6, 5)
    out = q(x)
    brute = torch.cdist(x.reshape(-1, 5), q.codebook).argmin(1).view(4, 6)
    assert torch.equal(out["codes"], brute)
    assert torch.equal(out["quantized"], q.codebook[brute])  # forward value is exactly the code


def test_straight_through_gradient_is_identity_on_real_tokens():
    q = make_quantizer().train()
    x = INPUTS.clone().requires_grad_(True)
    w = torch.randn_like(x)
    (q(x, MASK)["quantized"] * w).sum().backward()
    expected = w.masked_fill(MASK.unsqueeze(-1), 0.0)
    assert torch.allclose(x.grad, expected)


def test_commitment_gradient_pulls_towards_code():
    q = make_quantizer().eval()
    x = INPUTS.clone().requires_grad_(True)
    q(x, MASK)["commitment"].backward()
    e = q.codebook[torch.tensor([[0, 1], [0, 0]])]
    expected = (2 * (INPUTS - e)).masked_fill(MASK.unsqueeze(-1), 0.0)
    assert torch.allclose(x.grad, expected)


def test_ema_update_matches_hand_computation():
    q = make_quantizer().train()
    out = q(INPUTS, MASK)
    # codes: (0.1,0)->0, (0.9,0.2)->1, (0.2,0.1)->0, pad ignored
    assert out["codes"].tolist() == [[0, 1], [0, -1]]
    assert out["code_counts"].tolist() == [2.0, 1.0, 0.0]
    # commitment uses the codebook before the update: 0.1^2 + (0.1^2+0.2^2) + (0.2^2+0.1^2)
    assert out["commitment"].item() == pytest.approx(0.11, abs=1e-6)
    # n = 0.5*[2,1,0] = [1, .5, 0]; sums = .5*codebook + .5*[[.3,.1],[.9,.2],[0,0]]
    # smoothed n = (n + .1) / (1.5 + .3) * 1.5 = [.916667, .5, .083333]
    assert q.cluster_size.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert q.cluster_sum.flatten().tolist() == pytest.approx([0.15, 0.05, 0.95, 0.1, 0.0, 0.5])
    expected = [0.15 / (1.1 / 1.2), 0.05 / (1.1 / 1.2), 1.9, 0.2, 0.0, 6.0]
    assert q.codebook.flatten().tolist() == pytest.approx(expected, rel=1e-5)
    # the decoder saw the pre-update codes
    assert out["quantized"][0, 1].tolist() == [1.0, 0.0]
    assert out["quantized"][1, 1].tolist() == [0.0, 0.0]  # pad position


def test_padding_never_changes_results():
    a, b = make_quantizer().train(), make_quantizer().train()
    out_a = a(INPUTS, MASK)
    padded = torch.cat([INPUTS, torch.full((2, 3, 2), 7.0)], dim=1)
    mask = torch.cat([MASK, torch.ones(2, 3, dtype=torch.bool)], dim=1)
    out_b = b(padded, mask)
    assert torch.equal(out_a["codes"], out_b["codes"][:, :2])
    assert torch.equal(out_a["code_counts"], out_b["code_counts"])
    assert out_a["commitment"].item() == out_b["commitment"].item()
    for name in ("codebook", "cluster_size", "cluster_sum"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_eval_mode_never_updates():
    q = make_quantizer().eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(INPUTS, MASK)
    for k, v in q.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_non_contributing_batch_does_not_update_single_process():
    q = make_quantizer().train()
    q.contribute_statistics = False
    before = q.codebook.clone()
    q(INPUTS, MASK)
    assert torch.equal(q.codebook, before)
    assert torch.equal(q.cluster_size, torch.zeros(3))


def test_statistics_stay_float32_under_half():
    q = make_quantizer()
    q.half()
    for name in ("codebook", "cluster_size", "cluster_sum"):
        assert getattr(q, name).dtype == torch.float32, name
    assert q.codebook[1].tolist() == [1.0, 0.0]
    q.train()
    out = q(INPUTS.half(), MASK)
    assert out["quantized"].dtype == torch.float16
    assert q.codebook.dtype == torch.float32
    # the update is the same as in float32 (inputs are exactly representable up to fp16 rounding)
    ref = make_quantizer().train()
    ref(INPUTS.half().float(), MASK)
    assert torch.allclose(q.codebook, ref.codebook)


def test_kmeans_init_finds_separated_clusters():
    torch.manual_seed(0)
    centers = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    x = (centers[torch.randint(0, 3, (3, 40))] + 0.01 * torch.randn(3, 40, 2))
    q = EMAVectorQuantizer(num_codes=3, code_dim=2, kmeans_init=True, kmeans_iters=20).train()
    q(x)
    assert int(q.initialized) == 1
    # k-means++ seeding: every true centre gets a code
    d = torch.cdist(centers, q.codebook).min(1).values
    assert (d < 0.5).all(), q.codebook


def test_dead_code_restart_moves_unused_codes_to_data():
    torch.manual_seed(0)
    q = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=0.5, dead_code_threshold=0.5).train()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
    q.cluster_sum.copy_(q.codebook)
    x = 0.1 * torch.randn(2, 8, 2)
    q(x)
    # codes 1..3 were never used: restarted near data points (|x| small + noise)
    assert q.codebook[1:].abs().max() < 1.0
    assert (q.cluster_size >= 0.5).all()
