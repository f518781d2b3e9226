#!/usr/bin/env python3
"""Time of ``davam-evaluate``'s importance-weighted pass on an AWD checkpoint, and its numbers.

Runs :func:`davam_plugin.evaluation.evaluate_gaussian_split` (what ``davam-evaluate`` runs for
an AWD checkpoint) on ``--num`` consecutive sentences of a split from ``--first`` on, once
per value of ``--groups``: how many sentences of a batch the importance-weighted pass decodes
together after sorting them by length (``IW_GROUP_SENTENCES``; a value >= ``--batch-size``
decodes each batch whole, as before grouping existed). Prints seconds, IW-NLL and -ELBO per
setting; the numbers must agree to float32 rounding.

    OMP_NUM_THREADS=1 python scripts/bench_evaluate.py data-bin/ptb --path CKPT.pt --use-ema \\
        --first 1000 --num 128 --iw-samples 100 --groups 64,16

Measured results: docs/benchmark.md ("The importance-weighted evaluation").
"""

import argparse
import json
import time


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_evaluate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--path", required=True, help="AWD checkpoint")
    p.add_argument("--use-ema", action="store_true")
    p.add_argument("--split", default="test")
    p.add_argument("--first", type=int, default=0, help="first sentence of the slice")
    p.add_argument("--num", type=int, default=128, help="sentences in the slice")
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--iw-chunk", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--groups", default="64,16", help="comma-separated IW_GROUP_SENTENCES values")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)

    import torch

    import davam_plugin.evaluation as evaluation
    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel

    task, model = load_sentence_model(args.path, args.data, "--path", torch.device("cpu"),
                                      use_ema=args.use_ema, expect=(AwdModel,))  # fmt: skip
    split = task.load_sentences(args.split)
    if not 0 <= args.first < args.first + args.num <= len(split):
        p.error(f"--first {args.first} --num {args.num} must lie inside the split's {len(split)} sentences")
    sentences = [split[i] for i in range(args.first, args.first + args.num)]
    rows = []
    for group in (int(g) for g in args.groups.split(",")):
        evaluation.IW_GROUP_SENTENCES = group
        start = time.perf_counter()
        r = evaluation.evaluate_gaussian_split(model, sentences, args.iw_samples, args.iw_chunk, args.batch_size)
        seconds = time.perf_counter() - start
        rows.append({"group": group, "seconds": round(seconds, 1), "iw_nll": r["iw_nll"], "neg_elbo": r["neg_elbo"],
                     "threads": torch.get_num_threads(), "sentences": args.num, "iw_samples": args.iw_samples})
        print(f"group {group:4d}: {seconds:7.1f} s  iw_nll {r['iw_nll']:.6f}  neg_elbo {r['neg_elbo']:.6f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
