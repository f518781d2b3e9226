"""AWD math: gradient reversal, capped-simplex projection, top-K word dropout, VAE metrics."""

import math

import pytest
import torch

from davam_plugin.metrics import (
    active_units,
    gaussian_kl,
    iw_log_likelihood,
    log_normal_diag,
    mutual_information,
    mutual_information_minibatch,
)
from davam_plugin.modules.gradient_reversal import grad_reverse
from davam_plugin.modules.relaxed_topk import capped_simplex_projection, drop_lowest_k, k_per_sentence

# --------------------------------------------------------------------------- gradient reversal


@pytest.mark.parametrize("scale", [1.0, 0.25, 3.0])
def test_gradient_reversal_identity_forward_negated_scaled_backward(scale):
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = grad_reverse(x, scale)
    assert torch.equal(y, x)
    jac = torch.autograd.functional.jacobian(lambda t: grad_reverse(t, scale), x)
    assert torch.allclose(jac.reshape(12, 12), -scale * torch.eye(12, dtype=torch.float64))
    w = torch.randn(3, 4, dtype=torch.float64)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -scale * w)


def test_gradient_reversal_composes_with_upstream_parameters():
    # a parameter before the reversal moves *up* the loss under a gradient step
    a = torch.tensor(2.0, requires_grad=True)
    loss = grad_reverse(a * 3.0).pow(2)  # d loss / d a = 2 * 6 * 3 = 36, reversed: -36
    loss.backward()
    assert a.grad.item() == pytest.approx(-36.0)


# --------------------------------------------------------------------- capped simplex projection


def brute_force_projection(values, k):
    """Projection of one row by a different method: evaluate f(tau) = sum clamp(v - tau, 0, 1)
    at every breakpoint {v_i, v_i - 1}, find the bracketing pair and interpolate linearly."""
    n = len(values)
    if n == 0:
        return []

    def f(t):
        return sum(min(1.0, max(0.0, v - t)) for v in values)

    points = sorted(set(values) | {v - 1.0 for v in values})
    fs = [f(t) for t in points]  # non-increasing
    tau = None
    for t0, t1, f0, f1 in zip(points, points[1:], fs, fs[1:], strict=True):
        if f0 >= k >= f1:
            tau = t0 if f0 == f1 else t0 + (f0 - k) * (t1 - t0) / (f0 - f1)
            break
    if tau is None:  # k = n (at the lowest breakpoint) or k = 0 (at the highest)
        tau = points[0] if k >= n else points[-1]
    return [min(1.0, max(0.0, v - tau)) for v in values]


def random_problem(seed, B=7, T=10, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(B, T, generator=g, dtype=torch.float64) * scale
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    k = torch.stack([torch.randint(0, int(n) + 1, (1,), generator=g)[0] for n in lengths])
    k[1] = 0
    k[2] = lengths[2]
    return y, k, mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_projection_feasible_and_matches_brute_force(seed, scale):
    y, k, mask = random_problem(seed, scale=scale)
    y = y.masked_fill(~mask, 123.0)  # pad values must not matter
    p = capped_simplex_projection(y, k, mask)
    assert p.dtype == y.dtype and p.shape == y.shape
    assert torch.all(p[~mask] == 0)
    assert torch.all((p >= 0) & (p <= 1))
    assert torch.allclose(p.sum(1), k.double(), atol=1e-12)
    for b in range(y.size(0)):
        vals = y[b][mask[b]].tolist()
        expected = torch.tensor(brute_force_projection(vals, float(k[b])), dtype=torch.float64)
        assert torch.allclose(p[b][mask[b]], expected, atol=1e-10), (b, p[b], expected)


def test_projection_is_closest_feasible_point():
    # optimality check against random feasible points (independent of any formula)
    y, k, mask = random_problem(11, B=3, T=6, scale=0.7)
    mask[:] = True
    k = torch.tensor([1, 2, 4])
    p = capped_simplex_projection(y, k, mask)
    g = torch.Generator().manual_seed(12)
    for b in range(3):
        # 500 random feasible points: projections of random vectors (feasibility is tested above)
        q = capped_simplex_projection(torch.randn(500, 6, generator=g, dtype=torch.float64), k[b].repeat(500))
        assert torch.all((p[b] - y[b]).norm() <= (q - y[b]).norm(dim=1) + 1e-12)


def test_projection_float32_and_default_mask():
    y = torch.tensor([[0.3, -0.2, 0.9, 0.1]], dtype=torch.float32)
    p = capped_simplex_projection(y, torch.tensor([2]))
    expected = brute_force_projection(y[0].tolist(), 2.0)
    assert p.dtype == torch.float32
    assert torch.allclose(p[0], torch.tensor(expected), atol=1e-6)


def test_projection_rejects_infeasible_k():
    y = torch.zeros(1, 4)
    mask = torch.tensor([[True, True, False, False]])
    with pytest.raises(ValueError):
        capped_simplex_projection(y, torch.tensor([3]), mask)


def test_projection_jacobian_matches_finite_differences():
    # small-scale scores so that every row has a non-empty free set (0 < p < 1)
    y, _, _ = random_problem(5, B=5, T=8, scale=0.3)
    mask = torch.arange(8).unsqueeze(0) < torch.tensor([[8], [6], [4], [8], [3]])
    k = torch.tensor([3.0, 2.0, 1.0, 6.0, 1.5], dtype=torch.float64, requires_grad=True)  # 0 < k < n
    y = y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: capped_simplex_projection(a, b, mask), (y, k), eps=1e-6, atol=1e-7)


def test_projection_backward_is_free_set_minus_mean():
    y = torch.tensor([[0.1, 0.5, 2.5, -3.0, 0.3]], dtype=torch.float64, requires_grad=True)
    p = capped_simplex_projection(y, torch.tensor([2]))
    free = (p > 0) & (p < 1)
    assert free.sum() >= 2 and p[0, 2] == 1 and p[0, 3] == 0
    g = torch.tensor([[1.0, -2.0, 5.0, 7.0, 4.0]], dtype=torch.float64)
    p.backward(g)
    expected = torch.where(free, g - g[free].mean(), torch.zeros_like(g))
    assert torch.allclose(y.grad, expected)


# --------------------------------------------------------------------------- top-K word dropout


def test_drop_lowest_k_forward_exact_and_hard():
    g = torch.Generator().manual_seed(0)
    B, T = 6, 9
    scores = (torch.randn(B, T, generator=g) * 0.3).requires_grad_(True)
    lengths = torch.tensor([9, 7, 5, 3, 9, 1])
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    k = torch.tensor([2, 3, 0, 3, 9, 1])
    keep = drop_lowest_k(scores, k, mask, tau=1.0)
    assert set(keep.unique().tolist()) <= {0.0, 1.0}  # forward exactly hard
    assert torch.all(keep[~mask] == 0)  # pads are never kept ...
    dropped = (keep == 0) & mask  # ... and never counted as dropped
    assert torch.equal(dropped.sum(1), k)
    for b in range(B):
        valid = scores[b][mask[b]].detach()
        kept_vals, drop_vals = valid[keep[b][mask[b]] == 1], valid[keep[b][mask[b]] == 0]
        if len(kept_vals) and len(drop_vals):
            assert drop_vals.max() < kept_vals.min()  # the dropped ones are the lowest
        assert torch.equal(torch.sort(drop_vals).values, torch.sort(valid).values[: int(k[b])])


def test_drop_lowest_k_straight_through_gradient():
    g = torch.Generator().manual_seed(1)
    B, T, tau = 4, 8, 0.5
    scores = (torch.randn(B, T, generator=g, dtype=torch.float64) * 0.2).requires_grad_(True)
    mask = torch.arange(T).unsqueeze(0) < torch.tensor([[8], [6], [5], [8]])
    k = torch.tensor([2, 3, 1, 4])
    w = torch.randn(B, T, generator=g, dtype=torch.float64)
    keep = drop_lowest_k(scores, k, mask, tau=tau)
    (keep * w).sum().backward()
    assert scores.grad.abs().sum() > 0
    assert torch.all(scores.grad[~mask] == 0)
    # the gradient is exactly that of the relaxed keep mask 1 - P(-s / tau)
    s2 = scores.detach().clone().requires_grad_(True)
    ((1 - capped_simplex_projection(-s2 / tau, k, mask)) * w).sum().backward()
    assert torch.allclose(scores.grad, s2.grad)


def test_drop_lowest_k_through_gradient_reversal():
    scores = torch.tensor([[0.1, -0.2, 0.3, 0.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, 2.0, -1.0, 0.5]], dtype=torch.float64)
    (drop_lowest_k(scores, torch.tensor([2])) * w).sum().backward()
    plain = scores.grad.clone()
    scores.grad = None
    (grad_reverse(drop_lowest_k(scores, torch.tensor([2]))) * w).sum().backward()
    assert plain.abs().sum() > 0 and torch.allclose(scores.grad, -plain)


def test_k_per_sentence_round_half_up():
    lengths = torch.tensor([0, 1, 2, 3, 5, 7, 10, 12])
    assert k_per_sentence(lengths, 0.0).tolist() == [0] * 8
    assert k_per_sentence(lengths, 1.0).tolist() == lengths.tolist()
    # R * T = 0, .5, 1, 1.5, 2.5, 3.5, 5, 6: halves round up
    assert k_per_sentence(lengths, 0.5).tolist() == [0, 1, 1, 2, 3, 4, 5, 6]
    # 0.3 * 5 = 1.5 (inexact in floating point) -> 2; 0.3 * 7 = 2.1 -> 2; 0.3 * 12 = 3.6 -> 4
    assert k_per_sentence(lengths, 0.3).tolist() == [0, 0, 1, 1, 2, 2, 3, 4]
    assert k_per_sentence(torch.tensor([10]), 0.15).tolist() == [2]  # 1.5 -> 2
    assert k_per_sentence(lengths, 0.2).dtype == torch.long
    with pytest.raises(ValueError):
        k_per_sentence(lengths, 1.5)


# ------------------------------------------------------------------------------------ metrics


def test_gaussian_kl_and_log_normal_match_torch_distributions():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(-1))
    assert torch.allclose(log_normal_diag(z, mu, logvar), q.log_prob(z).sum(-1))
    assert torch.all(gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)) == 0)


# linear-Gaussian model: z ~ N(0, 1), x | z ~ N(a z + b, s^2)  =>  x ~ N(b, a^2 + s^2)
A, B_, S_ = 1.7, -0.4, 0.6
XS = torch.tensor([-2.0, 0.3, 1.1, 2.5], dtype=torch.float64)


def exact_log_px(x):
    return torch.distributions.Normal(B_, math.sqrt(A**2 + S_**2)).log_prob(x)


def true_posterior(x):
    var = 1.0 / (1.0 + A**2 / S_**2)
    return var * A * (x - B_) / S_**2, torch.full_like(x, math.log(var))


def iw_estimate(x, q_mu, q_logvar, n_samples, seed):
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_samples, x.numel(), generator=g, dtype=torch.float64)
    z = q_mu + torch.exp(0.5 * q_logvar) * eps  # (S, B)
    col = lambda t: t.unsqueeze(-1)  # noqa: E731  (1-D latent as the last dim)
    log_px_z = log_normal_diag(col(x.expand_as(z)), col(A * z + B_), col(torch.full_like(z, 2 * math.log(S_))))
    log_pz = log_normal_diag(col(z), torch.zeros(1, dtype=z.dtype), torch.zeros(1, dtype=z.dtype))
    log_qz = log_normal_diag(col(z), col(q_mu.expand_as(z)), col(q_logvar.expand_as(z)))
    return iw_log_likelihood(log_px_z, log_pz, log_qz)


@pytest.mark.parametrize("n_samples", [1, 5])
def test_iw_exact_with_true_posterior(n_samples):
    mu, logvar = true_posterior(XS)
    assert torch.allclose(iw_estimate(XS, mu, logvar, n_samples, seed=0), exact_log_px(XS), atol=1e-10)


def test_iw_converges_with_imperfect_posterior():
    mu, logvar = true_posterior(XS)
    q_mu, q_logvar = mu + 0.3 * torch.exp(0.5 * logvar), logvar + math.log(1.5**2)  # shifted, wider
    many = iw_estimate(XS, q_mu, q_logvar, 20000, seed=1)
    assert torch.allclose(many, exact_log_px(XS), atol=0.02)
    # with S = 1 it is an ELBO sample: on average below log p(x) by KL(q || posterior) ~ 0.27
    reps = 5000
    elbo = iw_estimate(XS.repeat(reps), q_mu.repeat(reps), q_logvar.repeat(reps), 1, seed=2).view(reps, -1).mean(0)
    gap = exact_log_px(XS) - elbo
    assert torch.all(gap > 0.15) and torch.all(gap > (exact_log_px(XS) - many) + 0.1)


def test_iw_is_stable_for_large_log_weights():
    lp = torch.full((3, 2), -1.0e4, dtype=torch.float64)
    out = iw_log_likelihood(lp, torch.zeros_like(lp), torch.zeros_like(lp))
    assert torch.allclose(out, torch.full((2,), -1.0e4, dtype=torch.float64))


def test_mi_zero_for_identical_posteriors():
    mu = torch.tensor([[0.3, -1.0, 2.0]]).repeat(200, 1)
    logvar = torch.tensor([[0.1, -0.5, 0.0]]).repeat(200, 1)
    mi = mutual_information(mu, logvar, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert abs(mi) < 1e-6


def test_mi_log_n_for_separated_posteriors_and_minibatch_bound():
    N, D = 100, 4
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(N, D, generator=g) * 10.0
    logvar = torch.full((N, D), math.log(1e-4))
    mi = mutual_information(mu, logvar, generator=g)
    assert mi == pytest.approx(math.log(N), abs=0.05)
    assert mi <= math.log(N) + 1e-9
    mb = mutual_information_minibatch(mu, logvar, batch_size=16, generator=g)
    assert mb <= math.log(16) + 1e-9
    # 6 batches of 16 and one of 4: weighted mean of log(16) and log(4)
    assert mb == pytest.approx((96 * math.log(16) + 4 * math.log(4)) / 100, abs=0.05)


def test_mi_chunking_matches_brute_force():
    N, D, S = 37, 3, 2
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(N, D, generator=g, dtype=torch.float64)
    logvar = torch.randn(N, D, generator=g, dtype=torch.float64) * 0.5 - 1.0
    chunked = mutual_information(mu, logvar, n_samples=S, generator=torch.Generator().manual_seed(9), chunk_size=5)
    whole = mutual_information(mu, logvar, n_samples=S, generator=torch.Generator().manual_seed(9), chunk_size=10**6)
    # brute force with the same noise: E[log q(z|x_n) - log q(z)] with a (S, N, N, D) broadcast
    eps = torch.randn((S, N, D), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_all = log_normal_diag(z.unsqueeze(2), mu, logvar)  # (S, N, N)
    log_qz = torch.logsumexp(log_all, dim=2) - math.log(N)
    brute = float((torch.diagonal(log_all, dim1=1, dim2=2) - log_qz).mean())
    assert chunked == pytest.approx(whole, abs=1e-10)
    assert chunked == pytest.approx(brute, abs=1e-10)


def test_active_units_population_variance():
    g = torch.Generator().manual_seed(3)
    N = 4000
    stds = torch.tensor([0.05, 0.2, 0.0, 0.5, 0.08, 0.15])  # variances .0025 .04 0 .25 .0064 .0225
    mu = torch.randn(N, 6, generator=g) * stds + torch.arange(6.0)
    assert active_units(mu) == 3
    assert active_units(mu, threshold=0.1) == 1
    # population variance of +-0.5 is exactly 0.25 (N / (N-1) * 0.25 with the unbiased one)
    col = torch.tensor([0.5, -0.5] * 50).unsqueeze(1)
    assert active_units(col, threshold=0.25) == 0
    assert active_units(col, threshold=0.2499) == 1
