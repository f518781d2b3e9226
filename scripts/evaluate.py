#!/usr/bin/env python3
"""Evaluate a DAVAM model with its stage-two prior on one split; print and write JSON.

    python scripts/evaluate.py DATA --path DAVAM.pt --prior-path PRIOR.pt --split test \
        [--json OUT.json] [--batch-size 64] [--cpu]

Reported (nats; tokens = words + EOS, EOS counted, BOS not; one latent code per token):
    rec         reconstruction -log p(x | z(x)) per sentence
    kl_paper    prior KL as the authors compute it: -log p(z(x)) averaged over the latent
                positions (here the T codes + the end-of-codes prediction), per sentence
    kl          the true KL(q(z|x)||p(z)) = -log p(z(x)) summed over positions, per sentence
    nll_bound   rec + kl per sentence: an upper bound on -log p(x)
    ppl_paper   exp(sum(rec + kl_paper) / tokens)  (paper convention, NOT a bound)
    ppl_bound   exp(sum(rec + kl) / tokens)        (upper bound on the true perplexity)
    rec_ppl     exp(sum(rec) / tokens)
    code_usage  distinct codes among the split's posterior codes (of num_codes); code_ppl
"""

import argparse
import json
import os
import sys

import logging

# progress goes to stderr in fairseq's format; results go to stdout
logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
# fairseq logs an INFO line about tensorboardX when its tasks are imported; not ours to show
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="the stage-one data directory (fairseq-preprocess --only-source output)")
    p.add_argument("--path", required=True, help="stage-one DAVAM checkpoint")
    p.add_argument("--prior-path", required=True, help="prior checkpoint (fairseq-train --task davam_prior)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", default=None, help="write the results here (default: <prior dir>/eval_<split>.json)")
    p.add_argument("--cpu", action="store_true", help="do not use a GPU even if there is one")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    import davam_plugin  # noqa: F401  (registers the plugin, safe checkpoint loading)
    from davam_plugin.evaluation import evaluate_split
    from davam_plugin.loading import check_prior_matches, load_davam, load_prior

    if args.batch_size < 1:
        sys.exit(f"error: --batch-size must be >= 1, got {args.batch_size}")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    task, davam = load_davam(args.path, args.data, flag="--path", device=device)
    prior = load_prior(args.prior_path, flag="--prior-path", device=device)
    check_prior_matches(prior, davam, "--prior-path", "--path")
    sentences = task.load_sentences(args.split)
    summary, _ = evaluate_split(davam, prior, sentences, args.batch_size, device)
    result = {
        "split": args.split,
        "davam_path": args.path,
        "prior_path": args.prior_path,
        "conventions": "nats; tokens = words + EOS; kl_paper = per-sentence KL averaged over the T codes + end "
        "symbol (authors' code, not a bound); kl = summed KL; nll_bound = rec + kl",
        **summary,
    }
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(args.prior_path)), f"eval_{args.split}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    s = summary
    print(f"{args.split}: {s['sentences']} sentences, {s['tokens']} tokens (words + EOS)")
    print(f"  rec        {s['rec']:.3f} nats/sentence        rec_ppl   {s['rec_ppl']:.3f}")
    print(f"  kl_paper   {s['kl_paper']:.3f} (mean over positions)  ppl_paper {s['ppl_paper']:.3f}  (paper convention, not a bound)")
    print(f"  kl         {s['kl']:.3f} (sum over positions)")
    print(f"  nll_bound  {s['nll_bound']:.3f} nats/sentence        ppl_bound {s['ppl_bound']:.3f}  (true upper bound)")
    print(f"  codes      {s['code_usage']}/{s['num_codes']} used, code_ppl {s['code_ppl']:.2f}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
