#!/usr/bin/env python3
"""Summarise a fairseq-validate log (json format) and a fairseq-generate output of DAVAM.

Prints reconstruction per sentence, NLL per token (nats; tokens = words + EOS), code usage,
the exact-match rate of the beam reconstructions and a few source/reconstruction pairs.
"""

import argparse
import json
import re
import sys


def read_validate(path):
    """Metrics of the last json line of ``fairseq-validate --log-format json``; fairseq
    prefixes every key with the subset name (``test_rec``), which is stripped here."""
    for line in reversed(open(path, encoding="utf-8").read().splitlines()):
        brace = line.find("{")
        if brace < 0:
            continue
        metrics = json.loads(line[brace:])
        prefix = next((k[: -len("rec")] for k in metrics if k == "rec" or k.endswith("_rec")), None)
        if prefix is not None:
            return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
    sys.exit(f"demo_summary.py: no validation metrics found in {path} (--validate-log)")


def read_generate(path):
    src, hyp = {}, {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([SH])-(\d+)\t(.*)$", line.rstrip("\n"))
        if m:
            kind, idx, rest = m.group(1), int(m.group(2)), m.group(3)
            if kind == "S":
                src[idx] = rest
            else:
                hyp[idx] = rest.split("\t", 1)[1] if "\t" in rest else ""
    if not hyp:
        sys.exit(f"demo_summary.py: no H- lines in {path} (--generate-output)")
    return src, hyp


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--validate-log", required=True)
    p.add_argument("--generate-output", required=True)
    p.add_argument("--examples", type=int, default=5)
    args = p.parse_args()
    v = read_validate(args.validate_log)
    src, hyp = read_generate(args.generate_output)
    exact = sum(src.get(i) == h for i, h in hyp.items())
    print(f"test sentences           {len(hyp)}")
    print(f"reconstruction (nats)    {float(v['rec']):.2f} per sentence")
    print(f"NLL per token (nats)     {float(v['nll_per_token']):.3f}   (PPL {float(v['rec_ppl']):.2f}; tokens = words + EOS)")
    print(f"code usage               {v['code_usage']} codes used, code perplexity {v['code_ppl']}")
    print(f"exact reconstructions    {exact}/{len(hyp)} (beam search)")
    print("examples (S = source, H = reconstruction):")
    for i in sorted(hyp)[: args.examples]:
        print(f"  S: {src.get(i, '')}\n  H: {hyp[i]}")


if __name__ == "__main__":
    main()
