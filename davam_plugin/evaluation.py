"""Per-sentence DAVAM evaluation: reconstruction, prior KL and the likelihood bound.

For every sentence x (tokens words + EOS) of a split, with the deterministic (one-hot)
posterior codes z(x) = z_1..z_T (one per encoder position):

    rec(x)    = sum_i -log p(x_i | x_<i, z(x))                 (decoder, eval mode)
    kl(x)     = -log p(z_1..z_T EOC) = sum_{t=1..T+1} -log p(s_t | s_<t)   (prior)

and NLL(x) <= rec(x) + kl(x). Corpus numbers under both KL conventions are computed by
:func:`davam_plugin.metrics.davam_bound_summary`.
"""

import torch
from fairseq.data.data_utils import collate_tokens

from davam_plugin.metrics import (
    active_units,
    code_perplexity,
    code_usage,
    davam_bound_summary,
    gaussian_kl,
    iw_log_likelihood,
    log_normal_diag,
    mutual_information,
    mutual_information_minibatch,
    perplexity,
)


# rows of the output layer scored at a time: bounds the (rows, vocabulary) logits held at once
OUTPUT_CHUNK_ROWS = 4096


def _reconstruction(model, src_tokens, encoder_out, chunk_rows=None):
    """-log p(x | latents) per sentence (B,), float64, for right-padded x (words + EOS).

    The decoder's features are computed for the padded batch, but the output layer only at
    the real positions, ``chunk_rows`` at a time: -log p(x_i | ...) = logsumexp(W h_i + b) -
    (W h_i + b)[x_i]. With PTB's lengths, batches of 64 are less than half real tokens, and
    the output layer (a vocabulary-sized product and softmax per position) is most of the
    cost of an importance-weighted evaluation; the logits held at once stay bounded too
    (``chunk_rows``, default ``OUTPUT_CHUNK_ROWS``)."""
    chunk_rows = chunk_rows or OUTPUT_CHUNK_ROWS
    pad, eos = model.encoder.padding_idx, model.decoder.dictionary.eos()
    real = src_tokens.ne(pad)
    prev = torch.cat([src_tokens.new_full((src_tokens.size(0), 1), eos), src_tokens[:, :-1]], dim=1)
    prev = prev.masked_fill(~real, pad)
    features, _ = model.decoder(prev, encoder_out=encoder_out, features_only=True)
    features, target = features[real], src_tokens[real]
    nll = torch.empty(target.numel(), dtype=torch.float64, device=target.device)
    for r0 in range(0, target.numel(), chunk_rows):
        logits = model.decoder.output_layer(features[r0 : r0 + chunk_rows]).float()
        picked = logits.gather(-1, target[r0 : r0 + chunk_rows].unsqueeze(-1)).squeeze(-1)
        nll[r0 : r0 + chunk_rows] = (torch.logsumexp(logits, dim=-1) - picked).double()
    per_token = torch.zeros(real.shape, dtype=torch.float64, device=target.device)
    per_token[real] = nll
    return per_token.sum(1)


@torch.no_grad()
def score_batch(davam, prior, src_tokens):
    """Per-sentence (rec, kl_sum, n_predictions, n_tokens, codes list) for right-padded tokens.

    The latent sequence is the encoder's (one code per token for DAVAM, one code for DAVAM-q);
    the prior scores it followed by the end-of-codes symbol."""
    lengths = src_tokens.ne(davam.encoder.padding_idx).sum(1)
    encoder_out = davam.encoder(src_tokens)
    rec = _reconstruction(davam, src_tokens, encoder_out)
    codes = encoder_out["codes"][0]
    latent_lengths = encoder_out["src_lengths"][0]
    real = torch.arange(codes.size(1), device=codes.device).unsqueeze(0) < latent_lengths.unsqueeze(1)
    # prior input: z_1..z_T EOC, padded with prior.pad
    seq = torch.full((codes.size(0), codes.size(1) + 1), prior.pad, dtype=torch.long, device=codes.device)
    seq[:, : codes.size(1)] = codes.masked_fill(~real, prior.pad)
    seq[torch.arange(codes.size(0), device=codes.device), latent_lengths] = prior.eoc
    kl_sum = -prior.log_probs(seq).sum(1).double()
    code_list = [codes[i, : latent_lengths[i]].cpu() for i in range(codes.size(0))]
    return rec.cpu(), kl_sum.cpu(), (latent_lengths + 1).cpu(), lengths.cpu(), code_list


@torch.no_grad()
def evaluate_split(davam, prior, sentences, batch_size=64, device="cpu"):
    """Corpus summary (dict) plus per-sentence arrays for a dataset of token tensors."""
    davam.eval()
    prior.eval()
    pad = davam.encoder.padding_idx
    rec, kl, npred, ntok, hist = [], [], [], [], torch.zeros(davam.encoder.bottleneck.num_codes, dtype=torch.float64)
    for start in range(0, len(sentences), batch_size):
        items = [sentences[i] for i in range(start, min(start + batch_size, len(sentences)))]
        src = collate_tokens(items, pad, left_pad=False)
        r, k, p, n, codes = score_batch(davam, prior, src.to(device))
        rec.append(r), kl.append(k), npred.append(p), ntok.append(n)
        for c in codes:
            hist += torch.bincount(c, minlength=hist.numel()).double()
    rec, kl, npred, ntok = (torch.cat(v) for v in (rec, kl, npred, ntok))
    summary = davam_bound_summary(rec, kl, npred, ntok)
    summary["code_usage"] = code_usage(hist)
    summary["num_codes"] = hist.numel()
    summary["code_ppl"] = float(code_perplexity(hist))
    return summary, {"rec": rec, "kl": kl, "n_predictions": npred, "n_tokens": ntok}


# --------------------------------------------------------------------------- Gaussian VAEs (awd)
@torch.no_grad()
def sentence_log_likelihood(model, src_tokens, z):
    """log p(x | z) per sentence (B,) for right-padded x (words + EOS) and z (B, Z); eval mode."""
    return -_reconstruction(model, src_tokens, {"z": [z]})


# sentences decoded together in the importance-weighted pass (sorted by length within a batch)
IW_GROUP_SENTENCES = 16


@torch.no_grad()
def iw_sentence_log_likelihoods(model, src, z):
    """log p(x_b | z_{s,b}) (S, B), float64, for right-padded sentences ``src`` (B, L) and
    samples ``z`` (S, B, Z): the B sentences are decoded in groups of about
    ``IW_GROUP_SENTENCES`` of similar length (sorted), each group cut to its own longest
    sentence, so the recurrence runs over far fewer padding positions than one (S * B, L)
    batch would (PTB test, batches of 64: 78% real positions instead of 45%). The S samples
    of a group are decoded in one call; the caller bounds S."""
    S, B, Z = z.shape
    lengths = src.ne(model.encoder.padding_idx).sum(1)
    lpx = torch.empty(S, B, dtype=torch.float64, device=src.device)
    order = torch.argsort(lengths, stable=True)
    for g0 in range(0, B, IW_GROUP_SENTENCES):
        idx = order[g0 : g0 + IW_GROUP_SENTENCES]
        group = src[idx, : int(lengths[idx].max())]
        rep = group.unsqueeze(0).expand(S, -1, -1).reshape(S * idx.numel(), -1)
        lpx[:, idx] = sentence_log_likelihood(model, rep, z[:, idx].reshape(-1, Z).float()).view(S, idx.numel())
    return lpx


class EvaluationState:
    """Where :func:`evaluate_gaussian_split` is resumed from (``None``: from the start) and
    where it reports each finished batch. ``load()`` returns the dict last given to
    ``save(state)`` or ``None``; the dict holds the per-sentence results so far, the next
    sentence and both generators' states, so a resumed evaluation gives the numbers of an
    uninterrupted one. The base class keeps nothing (no resuming)."""

    def load(self):
        return None

    def save(self, state):
        pass


@torch.no_grad()
def evaluate_gaussian_split(model, sentences, iw_samples=500, iw_chunk=50, batch_size=32, seed=1,
                            mi_batch_size=None, device="cpu", iw_max_sentences=None, resume=None):  # fmt: skip
    """-ELBO, KL, IW-NLL, PPLs, MI (whole set and per minibatch) and active units of a
    Gaussian sentence VAE with prior N(0, I), in nats (tokens = words + EOS).

    * rec: -log p(x|z) with one z ~ q(z|x); kl: analytic KL(q(z|x) || N(0, I));
      neg_elbo = rec + kl (single-sample estimate of the negative ELBO).
    * iw_nll: -log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x), z_s ~ q(z|x), S = ``iw_samples``
      decoded ``iw_chunk`` at a time (metrics.iw_log_likelihood), over the first
      ``iw_max_sentences`` sentences (all by default; S decoder passes per sentence are the
      expensive part on a CPU). ``neg_elbo_iw_subset`` is the -ELBO over the same sentences.
    * ppl_iw = exp(sum iw_nll / tokens) over those sentences, ppl_elbo = exp(sum neg_elbo / tokens).
    * mi: aggregate posterior over the whole evaluation set; mi_minibatch: the same estimator
      inside consecutive minibatches of ``mi_batch_size`` (jxhe's convention, <= log batch).
    * active_units: dimensions whose posterior mean varies (variance > 0.01) over the data.

    Noise is drawn sentence by sentence from generators seeded with ``seed`` (one for the
    ELBO sample, one for the importance samples), so ``batch_size``, ``iw_chunk`` and
    ``iw_max_sentences`` never change any sentence's numbers. ``resume`` (an
    :class:`EvaluationState`) continues an interrupted evaluation from its last finished
    batch and is told of each new one.
    """
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    iw_gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    pad = model.encoder.padding_idx
    n_iw = len(sentences) if iw_max_sentences is None else min(iw_max_sentences, len(sentences))
    names = ("rec", "kl", "iw", "ntok", "mus", "logvars")
    lists = {name: [] for name in names}
    first = 0
    state = resume.load() if resume is not None else None
    if state is not None:
        lists = {name: [state[name]] for name in names}
        first = state["next_sentence"]
        gen.set_state(state["gen"])
        iw_gen.set_state(state["iw_gen"])
    rec, kl, iw, ntok, mus, logvars = (lists[name] for name in names)
    for start in range(first, len(sentences), batch_size):
        items = [sentences[i] for i in range(start, min(start + batch_size, len(sentences)))]
        src = collate_tokens(items, pad, left_pad=False).to(device)
        mu, logvar = model.encoder.posterior(src)
        mu, logvar = mu.double(), logvar.double()
        std = torch.exp(0.5 * logvar)
        B, Z = mu.shape
        eps1 = torch.stack([torch.randn(Z, generator=gen, dtype=torch.float64) for _ in range(B)])
        z1 = mu + std * eps1.to(device)
        rec.append(-sentence_log_likelihood(model, src, z1.float()).cpu())
        kl.append(gaussian_kl(mu, logvar).cpu())
        ntok.append(src.ne(pad).sum(1).cpu())
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
        b_iw = max(0, min(B, n_iw - start))  # rows of this batch inside the IW subset
        if b_iw > 0:
            eps = torch.stack(
                [torch.randn((iw_samples, Z), generator=iw_gen, dtype=torch.float64) for _ in range(b_iw)], 1
            ).to(device)  # (S, b, Z)
            mu_i, logvar_i, std_i, src_i = mu[:b_iw], logvar[:b_iw], std[:b_iw], src[:b_iw]
            z = mu_i + std_i * eps  # (S, b, Z)
            lpx = torch.cat([
                iw_sentence_log_likelihoods(model, src_i, z[s0 : s0 + iw_chunk])
                for s0 in range(0, iw_samples, iw_chunk)
            ])  # fmt: skip
            lpz = log_normal_diag(z, torch.zeros_like(mu_i), torch.zeros_like(logvar_i))
            lqz = log_normal_diag(z, mu_i, logvar_i)
            iw.append(-iw_log_likelihood(lpx, lpz, lqz).cpu())
        if resume is not None:  # the state is built only for a caller that keeps it
            resume.save({
                **{name: torch.cat(lists[name]) if lists[name] else torch.empty(0) for name in names},
                "next_sentence": start + B, "gen": gen.get_state(), "iw_gen": iw_gen.get_state(),
            })  # fmt: skip
    rec, kl, iw, ntok = (torch.cat(v) for v in (rec, kl, iw, ntok))
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    tokens = float(ntok.sum())
    iw_tokens = float(ntok[:n_iw].sum())
    n = rec.numel()
    mi_batch = mi_batch_size or batch_size
    return {
        "sentences": n,
        "tokens": int(tokens),
        "words": int(tokens) - n,
        "rec": float(rec.mean()),
        "kl": float(kl.mean()),
        "neg_elbo": float((rec + kl).mean()),
        "iw_nll": float(iw.mean()),
        "iw_samples": iw_samples,
        "iw_sentences": n_iw,
        "iw_tokens": int(iw_tokens),
        "neg_elbo_iw_subset": float((rec + kl)[:n_iw].mean()),
        "ppl_elbo": perplexity_from(float((rec + kl).sum()), tokens),
        "ppl_iw": perplexity_from(float(iw.sum()), iw_tokens),
        "mi": mutual_information(mu, logvar, generator=gen),
        "mi_minibatch": mutual_information_minibatch(mu, logvar, mi_batch, generator=gen),
        "mi_minibatch_size": mi_batch,
        "active_units": active_units(mu),
        "latent_dim": mu.size(1),
    }


def perplexity_from(nll_sum, tokens):
    return perplexity(nll_sum, tokens)


@torch.no_grad()
def evaluate_gaussian_sequence_split(model, sentences, batch_size=64, seed=1, device="cpu"):
    """GAVAM / VAE+Attn (Gaussian latent sequences, prior trained jointly or N(0, I)).

    Per sentence, with one z ~ q(z|x) (seeded): rec = -log p(x|z) and the model's own KL
    sum_t KL(q(z_t|x) || p(z_t|z_<t)) (or || N(0, I)); ``kl_paper`` averages it over the T
    latent positions (the paper's convention); ``nll_bound`` = rec + kl is the negative ELBO,
    ``ppl_bound`` its perplexity (:func:`davam_plugin.metrics.davam_bound_summary`)."""
    model.eval()
    model.set_posterior_mean(False)
    torch.manual_seed(seed)
    pad = model.encoder.padding_idx
    rec, kl, npos, ntok = [], [], [], []
    for start in range(0, len(sentences), batch_size):
        items = [sentences[i] for i in range(start, min(start + batch_size, len(sentences)))]
        src = collate_tokens(items, pad, left_pad=False).to(device)
        encoder_out = model.encoder(src)
        rec.append(_reconstruction(model, src, encoder_out).cpu())
        kl.append(encoder_out["kl"][0].double().cpu())
        npos.append(encoder_out["src_lengths"][0].cpu())
        ntok.append(src.ne(pad).sum(1).cpu())
    npos = torch.cat(npos)
    summary = davam_bound_summary(torch.cat(rec), torch.cat(kl), npos, torch.cat(ntok))
    summary.pop("prior_predictions")
    summary["latent_positions"] = int(npos.sum())  # no end symbol: the length is not modelled
    return summary
