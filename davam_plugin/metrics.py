"""Pure metric and schedule math (no fairseq imports), shared by criterions and scripts.

Conventions: all values are in nats. Token counts are target tokens, i.e. words + EOS
(fairseq appends one EOS per sentence; it is counted, BOS is not).
"""

import math

import torch
from torch import Tensor


def at_least_fp32(t: Tensor) -> Tensor:
    """float32 for 16-bit tensors; float32 and float64 stay as they are (losses and KLs are
    accumulated in at least single precision, and float64 tests stay exact)."""
    return t.float() if t.element_size() < 4 else t


def code_perplexity(counts: Tensor) -> Tensor:
    """exp(entropy in nats) of a code histogram; 0 for an empty histogram."""
    counts = torch.as_tensor(counts).double()
    total = counts.sum()
    if total <= 0:
        return counts.new_zeros(())
    p = counts / total
    return torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum())


def code_usage(counts: Tensor) -> int:
    """Number of distinct codes that occur in a histogram."""
    return int((torch.as_tensor(counts) > 0).sum())


def attention_entropy(attn: Tensor, keep: Tensor, src_lengths: Tensor) -> tuple:
    """Entropy of attention distributions, summed over the kept query rows.

    ``attn`` (B, L, T): row (b, l) is a distribution over the first ``src_lengths[b]`` of T
    memory positions (zeros beyond); ``keep`` (B, L) selects the rows counted (real target
    tokens). Returns (sum of H(a_bl) = -sum_t a_blt log a_blt, sum of log src_lengths[b]):
    the second is what uniform attention would score, the upper bound of the first. Both in
    nats, float64.
    """
    a = attn.double()
    h = -torch.special.xlogy(a, a).sum(-1)  # (B, L); 0 log 0 = 0
    keep = keep.to(torch.bool)
    uniform = torch.log(src_lengths.double().clamp_min(1)).unsqueeze(1).expand_as(h)
    return h[keep].sum(), uniform[keep].sum()


def linear_warmup(num_updates: int, start: float, end: float, warmup_updates: int) -> float:
    """``start`` at update 0, rising linearly to ``end`` at ``warmup_updates``, then flat."""
    if warmup_updates <= 0:
        return float(end)
    frac = min(1.0, max(0, num_updates) / warmup_updates)
    return float(start + (end - start) * frac)


def perplexity(nll_sum: float, ntokens: float) -> float:
    """exp(nll_sum / ntokens), inf on overflow."""
    try:
        return math.exp(nll_sum / max(ntokens, 1))
    except OverflowError:
        return float("inf")


def davam_bound_summary(rec, kl_sum, n_predictions, n_tokens) -> dict:
    """Corpus numbers of DAVAM from per-sentence values (all in nats).

    rec[i]           -log p(x_i | z(x_i)), summed over the target tokens (words + EOS)
    kl_sum[i]        -log p_prior(z(x_i)) summed over the prior's predictions: the true KL
                     of the one-hot posterior, KL(q(z|x)||p(z)) = -log p(z(x))
    n_predictions[i] prior predictions of sentence i (its T codes + 1 end-of-codes symbol)
    n_tokens[i]      target tokens of sentence i (words + EOS)

    "paper" convention (the authors' code): KL averaged over the latent positions,
    kl_paper[i] = kl_sum[i] / n_predictions[i], and PPL = exp(sum(rec + kl_paper) / tokens).
    That is NOT a likelihood bound. The bound is NLL(x_i) <= rec[i] + kl_sum[i] and
    PPL_bound = exp(sum(rec + kl_sum) / tokens), an upper bound on the model's perplexity.
    """
    rec = torch.as_tensor(rec, dtype=torch.float64)
    kl_sum = torch.as_tensor(kl_sum, dtype=torch.float64)
    n_pred = torch.as_tensor(n_predictions, dtype=torch.float64)
    n_tok = torch.as_tensor(n_tokens, dtype=torch.float64)
    n = rec.numel()
    if n == 0:
        raise ValueError("no sentences")
    kl_paper = kl_sum / n_pred
    tokens = float(n_tok.sum())
    return {
        "sentences": n,
        "tokens": int(tokens),
        "words": int(tokens) - n,
        "latent_positions": int(n_pred.sum()) - n,
        "prior_predictions": int(n_pred.sum()),
        "rec": float(rec.mean()),
        "kl_paper": float(kl_paper.mean()),
        "kl": float(kl_sum.mean()),
        "nll_bound": float((rec + kl_sum).mean()),
        "rec_ppl": perplexity(float(rec.sum()), tokens),
        "ppl_paper": perplexity(float((rec + kl_paper).sum()), tokens),
        "ppl_bound": perplexity(float((rec + kl_sum).sum()), tokens),
    }


def ngram_diversity(sentences) -> dict:
    """Ent, Dist-1, Dist-2 over all sentences (lists of tokens) concatenated.

    Dist-1 = distinct unigrams / unigrams; Dist-2 = distinct bigrams / bigrams (bigrams are
    taken within sentences); Ent = entropy (nats) of the unigram distribution.
    """
    from collections import Counter

    unigrams = Counter()
    bigrams = Counter()
    for tokens in sentences:
        unigrams.update(tokens)
        bigrams.update(zip(tokens[:-1], tokens[1:], strict=True))
    n1, n2 = sum(unigrams.values()), sum(bigrams.values())
    ent = -sum((c / n1) * math.log(c / n1) for c in unigrams.values()) if n1 else 0.0
    return {
        "sentences": len(sentences),
        "tokens": n1,
        "bigrams": n2,
        "ent": ent,
        "dist_1": len(unigrams) / n1 if n1 else 0.0,
        "dist_2": len(bigrams) / n2 if n2 else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Gaussian-VAE metrics (AWD baselines): KL, importance-weighted NLL, mutual information, AU.
# ---------------------------------------------------------------------------------------------

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the last dim (nats).

        KL = 1/2 sum_d (mu_d^2 + exp(logvar_d) - 1 - logvar_d)
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def gaussian_kl_diag(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))), summed over the last dim (nats).

        KL = 1/2 sum_d (logvar_p,d - logvar_q,d - 1 + (exp(logvar_q,d) + (mu_q,d - mu_p,d)^2) / exp(logvar_p,d))

    (the DAVAM paper's Eq. 5 per position); with mu_p = 0, logvar_p = 0 it is :func:`gaussian_kl`.
    """
    return 0.5 * (logvar_p - logvar_q - 1.0 + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p)).sum(dim=-1)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dim (nats; broadcasting).

        log N = -1/2 sum_d (log 2 pi + logvar_d + (z_d - mu_d)^2 / exp(logvar_d))
    """
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def iw_log_likelihood(log_px_given_z: Tensor, log_pz: Tensor, log_qz: Tensor) -> Tensor:
    """Importance-weighted estimate of log p(x) (Burda et al.), per sentence (B,).

    Inputs are (S, B): for S samples z_s ~ q(z|x) of every sentence, log p(x|z_s) (summed over
    the target tokens, words + EOS), log p(z_s) and log q(z_s|x), each a full log density:

        log p(x) ~= log (1/S) sum_s exp(log p(x|z_s) + log p(z_s) - log q(z_s|x))
                  = logsumexp_s(...) - log S

    (a lower bound in expectation that tightens as S grows; exact for every S when q is the
    true posterior). The IW-NLL is the negative; the IW-PPL is exp(sum NLL / sum(words + EOS)).
    Unlike the AWD code, the analytic KL is NOT used in place of log p(z) - log q(z|x).
    """
    log_w = log_px_given_z + log_pz - log_qz
    if log_w.dim() < 1 or log_w.size(0) < 1:
        raise ValueError("expected (S, B) tensors with S >= 1")
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.size(0))


def _log_aggregate_posterior(z: Tensor, mu: Tensor, logvar: Tensor, chunk_size: int | None) -> Tensor:
    """log q(z) = logsumexp_m log N(z; mu_m, var_m) - log M for every row of z (R, D).

    The (R, M) matrix of log densities is built chunk by chunk from the expansion
    sum_d (z_d - mu_md)^2 / var_md = (z^2) . (1/var_m) - 2 z . (mu_m/var_m) + sum_d mu_md^2/var_md,
    so memory is O(chunk * M) instead of O(R * M * D).
    """
    M, D = mu.shape
    prec = torch.exp(-logvar)  # (M, D)
    prec_mu = mu * prec
    const = -0.5 * (D * _LOG_2PI + logvar.sum(dim=1) + (mu * prec_mu).sum(dim=1))  # (M,)
    if chunk_size is None:
        chunk_size = max(1, 4_000_000 // max(M, 1))
    out = []
    for start in range(0, z.size(0), chunk_size):
        zc = z[start : start + chunk_size]
        log_dens = const - 0.5 * (zc.pow(2) @ prec.t()) + zc @ prec_mu.t()  # (chunk, M)
        out.append(torch.logsumexp(log_dens, dim=1) - math.log(M))
    return torch.cat(out)


def mutual_information(
    mu: Tensor,
    logvar: Tensor,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> float:
    """I(x; z) with the aggregate posterior over ALL N rows passed in (AWD / skip-VAE convention).

    Hoffman & Johnson (2016): I(x; z) = E_x[KL(q(z|x)||p(z))] - KL(q(z)||p(z))
    = E_x E_{z~q(z|x)}[log q(z|x) - log q(z)], with q(z) = 1/N sum_n q(z|x_n) over the whole
    evaluation set (mu, logvar: (N, D) posterior parameters, one row per sentence). Estimated as

        MI = 1/(N S) sum_n sum_s [ log q(z_ns|x_n) - log q(z_ns) ],    z_ns ~ q(z|x_n)

    with S = ``n_samples`` reparameterized samples per row drawn with ``generator``. Both log
    densities are evaluated at the same sample, so their noise largely cancels (identical
    posteriors give exactly 0, well-separated ones log N); jxhe's code uses the closed-form
    entropy for the first term instead, which has the same expectation but more variance.
    Bounded above by log N (q(z) contains the term (1/N) q(z|x_n)). Computed in float64; the N x N density matrix
    is processed in row chunks (``chunk_size`` rows of samples at a time; default keeps each
    chunk near 4M entries), so N = 10,000 with D = 32 fits easily. Returns nats.
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError("expected mu and logvar of the same shape (N, D)")
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    mu = mu.detach().double()
    logvar = logvar.detach().double()
    N, D = mu.shape
    eps = torch.randn((n_samples, N, D), generator=generator, dtype=torch.float64, device=mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps  # (S, N, D)
    log_q_cond = log_normal_diag(z, mu, logvar)  # (S, N): log q(z_ns | x_n)
    log_qz = _log_aggregate_posterior(z.reshape(n_samples * N, D), mu, logvar, chunk_size)
    return float(log_q_cond.mean() - log_qz.mean())


def mutual_information_minibatch(
    mu: Tensor,
    logvar: Tensor,
    batch_size: int,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """I(x; z) with a PER-MINIBATCH aggregate posterior (jxhe / bohanli convention).

    The rows are cut into consecutive minibatches of ``batch_size`` (the last one may be
    smaller); :func:`mutual_information` is computed inside each, with q(z) the mixture of
    that minibatch's posteriors only, and the results are averaged weighted by minibatch size
    (sum_b n_b MI_b / N, as jxhe's calc_mi). Every term is at most log n_b, so this value is
    bounded by log(batch_size) and is NOT comparable with the whole-set :func:`mutual_information`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    N = mu.size(0)
    total = 0.0
    for start in range(0, N, batch_size):
        end = min(N, start + batch_size)
        total += (end - start) * mutual_information(
            mu[start:end], logvar[start:end], n_samples=n_samples, generator=generator
        )
    return total / N


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions d with Var_x[mu_d(x)] > threshold (Burda et al., 2016).

    ``mu`` (N, D) holds the posterior means of N sentences. The variance is the population
    variance (divide by N, ``unbiased=False``) computed in float64; jxhe's calc_au divides by
    N - 1, which differs only by a factor N / (N - 1). The comparison is strict.
    """
    if mu.dim() != 2:
        raise ValueError("expected mu of shape (N, D)")
    var = mu.detach().double().var(dim=0, unbiased=False)
    return int((var > threshold).sum())
