#!/usr/bin/env python
"""Is a DAVAM checkpoint's decoder attention alive? Reads the weights only (no data, no model).

    python examples/reproduce/attention_health.py ../runs/davam_ptb_k512_fast/stage1/checkpoint_last.pt

The decoder's Bahdanau attention scores a memory position t by

    score_t = v^T tanh(W_q q + W_m m_t + b),   so   |score_t| <= sum_j |v_j| = ||v||_1,

and any two attention weights differ by a factor of at most exp(2 ||v||_1). When ``v`` shrinks
toward zero the attention is uniform whatever the memory holds, the decoder reads only the mean
of the memory, and the keys' and queries' gradients (proportional to ``v``) vanish with it, so
the attention cannot recover by itself. This happened to the rejected ``davam_ptb_k512_deadcode``
row (docs/results.md): ||v||_2 fell from 0.92 at initialisation (U(+-0.1), 256 dimensions) to
0.0057 by epoch 10. Printed: the update count, ||v||_2, ||v||_1 and the weight-ratio bound, the
norms of W_q and W_m, and the codebook's entries in use and their mean absolute value.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(REPO))

V = "decoder.attention.v"
W_Q = "decoder.attention.query_proj.weight"
W_M = "decoder.attention.memory_proj.weight"
CODEBOOK = "encoder.bottleneck.quantizer.codebook"
CLUSTER_SIZE = "encoder.bottleneck.quantizer.cluster_size"


def attention_health(weights) -> dict:
    """The figures above from a DAVAM state dict (parameter name -> tensor)."""
    if V not in weights:
        raise ValueError(f"no '{V}' in the checkpoint: not a DAVAM model with decoder attention "
                         "(DAVAM-q and the AWD models have none)")
    v = weights[V].float()
    l1 = v.abs().sum().item()
    out = {
        "v_norm": v.norm().item(),
        "v_abs_sum": l1,
        "max_weight_ratio": math.exp(2 * l1),
        "query_proj_norm": weights[W_Q].float().norm().item() if W_Q in weights else None,
        "memory_proj_norm": weights[W_M].float().norm().item() if W_M in weights else None,
    }
    if CODEBOOK in weights:
        codebook = weights[CODEBOOK].float()
        live = weights[CLUSTER_SIZE] > 0 if CLUSTER_SIZE in weights else torch.ones(len(codebook), dtype=torch.bool)
        out["codes_live"] = int(live.sum())
        out["codes"] = len(codebook)
        out["live_code_abs_mean"] = codebook[live].abs().mean().item() if live.any() else None
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a DAVAM stage-one checkpoint (checkpoint_last.pt, checkpoint_best.pt)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = p.parse_args(argv)
    from davam_plugin.checkpoint_reading import checkpoint_num_updates, read_checkpoint

    state, _ = read_checkpoint(args.checkpoint, "CHECKPOINT")
    try:
        health = attention_health(state["model"])
    except ValueError as e:
        raise SystemExit(f"error: {args.checkpoint}: {e}") from None
    health = {"checkpoint": args.checkpoint, "num_updates": checkpoint_num_updates(state), **health}
    if args.json:
        print(json.dumps(health))
        return
    print(f"{args.checkpoint}: {health['num_updates']:,} updates")
    print(f"  attention v: L2 norm {health['v_norm']:.4g}, L1 norm {health['v_abs_sum']:.4g} "
          f"(any two attention weights within a factor {health['max_weight_ratio']:.4g})")
    print(f"  W_q norm {health['query_proj_norm']:.4g}, W_m norm {health['memory_proj_norm']:.4g}")
    if "codes" in health:
        print(f"  codebook: {health['codes_live']} of {health['codes']} codes hold data, "
              f"their entries' mean |value| {health['live_code_abs_mean']:.4g}")


if __name__ == "__main__":
    main()
