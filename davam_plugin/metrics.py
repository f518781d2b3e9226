"""Pure metric and schedule math (no fairseq imports), shared by criterions and scripts.

Conventions: all values are in nats. Token counts are target tokens, i.e. words + EOS
(fairseq appends one EOS per sentence; it is counted, BOS is not).
"""

import math

import torch
from torch import Tensor


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
        bigrams.update(zip(tokens[:-1], tokens[1:]))
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
