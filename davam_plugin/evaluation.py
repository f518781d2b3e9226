"""Per-sentence DAVAM evaluation: reconstruction, prior KL and the likelihood bound.

For every sentence x (tokens words + EOS) of a split, with the deterministic (one-hot)
posterior codes z(x) = z_1..z_T (one per encoder position):

    rec(x)    = sum_i -log p(x_i | x_<i, z(x))                 (decoder, eval mode)
    kl(x)     = -log p(z_1..z_T EOC) = sum_{t=1..T+1} -log p(s_t | s_<t)   (prior)

and NLL(x) <= rec(x) + kl(x). Corpus numbers under both KL conventions are computed by
:func:`davam_plugin.metrics.davam_bound_summary`.
"""

import torch
import torch.nn.functional as F

from davam_plugin.metrics import code_perplexity, code_usage, davam_bound_summary


@torch.no_grad()
def score_batch(davam, prior, src_tokens):
    """Per-sentence (rec, kl_sum, n_predictions, n_tokens, codes list) for right-padded tokens."""
    pad, eos = davam.encoder.padding_idx, davam.decoder.dictionary.eos()
    real = src_tokens.ne(pad)
    lengths = real.sum(1)
    encoder_out = davam.encoder(src_tokens)
    prev = torch.cat([src_tokens.new_full((src_tokens.size(0), 1), eos), src_tokens[:, :-1]], dim=1)
    prev = prev.masked_fill(~real, pad)
    logits, _ = davam.decoder(prev, encoder_out=encoder_out)
    logp = F.log_softmax(logits.float(), dim=-1)
    tok_lp = logp.gather(-1, src_tokens.unsqueeze(-1)).squeeze(-1).masked_fill(~real, 0.0)
    rec = -tok_lp.sum(1).double()
    codes = encoder_out["codes"][0]
    # prior input: z_1..z_T EOC, padded with prior.pad
    seq = torch.full((codes.size(0), codes.size(1) + 1), prior.pad, dtype=torch.long, device=codes.device)
    seq[:, : codes.size(1)] = codes.masked_fill(~real, prior.pad)
    seq[torch.arange(codes.size(0), device=codes.device), lengths] = prior.eoc
    kl_sum = -prior.log_probs(seq).sum(1).double()
    code_list = [codes[i, : lengths[i]].cpu() for i in range(codes.size(0))]
    return rec.cpu(), kl_sum.cpu(), (lengths + 1).cpu(), lengths.cpu(), code_list


@torch.no_grad()
def evaluate_split(davam, prior, sentences, batch_size=64, device="cpu"):
    """Corpus summary (dict) plus per-sentence arrays for a dataset of token tensors."""
    davam.eval()
    prior.eval()
    pad = davam.encoder.padding_idx
    rec, kl, npred, ntok, hist = [], [], [], [], torch.zeros(davam.encoder.quantizer.num_codes, dtype=torch.float64)
    for start in range(0, len(sentences), batch_size):
        items = [sentences[i] for i in range(start, min(start + batch_size, len(sentences)))]
        width = max(len(t) for t in items)
        src = torch.full((len(items), width), pad, dtype=torch.long)
        for row, t in enumerate(items):
            src[row, : len(t)] = t
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
