#!/usr/bin/env python
"""Does ``--bf16-autocast`` change a training step? Float32 against bfloat16 autocast on the
same weights, the same batches and the same dropout masks.

    python examples/reproduce/precision_check.py ../runs/davam_ptb_k512_fast/stage1/checkpoint_last.pt
    python examples/reproduce/precision_check.py CHECKPOINT --from-init      # a fresh model of its config

For each of ``--batches`` training batches, one forward and backward pass of the checkpoint's
own criterion (at the checkpoint's update count, so beta or the KL weight is where training
had it) runs twice: in float32, and under ``torch.autocast(bfloat16)`` as the tasks'
``--bf16-autocast`` runs it. The random generator is reseeded before each pass (same dropout
masks, same samples of z) and the model's weights and buffers (the EMA codebook) are restored,
so the two passes differ only in precision. Printed per batch:

- the criterion's loss both ways (summed over the batch, as fairseq optimises it);
- DAVAM: the fraction of real tokens whose code (argmin distance) is the same both ways;
- ``cos(g32, g16)``: the cosine between the two whole gradients;
- ``cos(g32, g32 prev)``: the cosine between this batch's float32 gradient and the previous
  batch's, the size of SGD's own noise from batch to batch, for scale.

Then the mean cosine per parameter, with the parameter's share of the float32 gradient norm
(a cosine between two gradients that are both numerically zero, such as the attention's at
initialisation, where all memory positions hold the same code, means nothing).
"""

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(REPO))


def _cos(a, b) -> float:
    a, b = a.double(), b.double()
    den = a.norm() * b.norm()
    return float(a.dot(b) / den) if den > 0 else float("nan")


class _CodeRecorder:
    """The ``codes`` of every module whose forward returns a dict with them (the quantizers)."""

    def __init__(self, model):
        self.codes = []
        for module in model.modules():
            if type(module).__name__ == "EMAVectorQuantizer":
                module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if isinstance(output, dict) and "codes" in output:
            self.codes.append(output["codes"].detach().clone())


def _one_pass(model, criterion, sample, state, bf16: bool, train: bool, seed: int, recorder):
    model.load_state_dict(state)
    model.train(train)
    model.zero_grad(set_to_none=True)
    recorder.codes = []
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _, _ = criterion(model, sample)
    loss.backward()
    grads = {k: p.grad.detach().float().flatten().clone() for k, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, recorder.codes  # the hook's copies; the next pass makes a new list


def precision_check(path, data=None, batches=4, batch_size=32, from_init=False, train=True, seed=1):
    """The figures of the module docstring, as a dict."""
    from davam_plugin.checkpoint_reading import read_checkpoint
    from davam_plugin.tasks.sentence_vae import load_sentence_vae_checkpoint

    task, model = load_sentence_vae_checkpoint(path, data, flag="CHECKPOINT")  # at the checkpoint's update count
    _, cfg = read_checkpoint(path, "CHECKPOINT")  # the criterion's settings
    updates = model.num_updates
    if from_init:
        torch.manual_seed(seed)
        model = task.build_model(cfg.model)
        updates = 0
    model.set_num_updates(updates)
    criterion = task.build_criterion(cfg.criterion)
    if hasattr(criterion, "set_num_updates"):
        criterion.set_num_updates(updates)
    task.load_dataset("train")
    itr = task.get_batch_iterator(task.dataset("train"), max_sentences=batch_size, seed=seed)
    state = copy.deepcopy(model.state_dict())
    recorder = _CodeRecorder(model)
    rows, per_param, norms, previous = [], {}, {}, None
    for i, sample in enumerate(itr.next_epoch_itr(shuffle=True)):
        if i >= batches:
            break
        loss32, g32, codes32 = _one_pass(model, criterion, sample, state, False, train, seed + i, recorder)
        loss16, g16, codes16 = _one_pass(model, criterion, sample, state, True, train, seed + i, recorder)
        flat32 = torch.cat([g32[k] for k in g32])
        flat16 = torch.cat([g16[k] for k in g32])
        row = {"batch": i, "sentences": int(sample["nsentences"]), "loss_fp32": loss32, "loss_bf16": loss16,
               "grad_cos": _cos(flat32, flat16),
               "grad_cos_previous_batch": None if previous is None else _cos(flat32, previous)}  # fmt: skip
        if codes32:
            real = torch.cat([c.flatten() for c in codes32]) >= 0
            same = torch.cat([c.flatten() for c in codes32]) == torch.cat([c.flatten() for c in codes16])
            row["codes_agree"] = float(same[real].float().mean())
        rows.append(row)
        previous = flat32
        total = float(flat32.double().norm())
        for k in g32:
            per_param.setdefault(k, []).append(_cos(g32[k], g16[k]))
            norms.setdefault(k, []).append(float(g32[k].double().norm()) / total if total > 0 else 0.0)
    if not rows:
        raise SystemExit("error: the training split has no batches")
    return {
        "checkpoint": str(path), "num_updates": updates, "from_init": from_init, "mode": "train" if train else "eval",
        "batches": rows,
        "parameters": {k: {"grad_cos": sum(v) / len(v), "grad_norm_share": sum(norms[k]) / len(norms[k])} for k, v in per_param.items()},
    }  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a --task sentence_vae checkpoint (DAVAM, AWD, ...)")
    parser.add_argument("--data", help="data directory (default: the one the checkpoint was trained on)")
    parser.add_argument("--batches", type=int, default=4, help="training batches compared (default 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    parser.add_argument("--from-init", action="store_true", help="a freshly initialised model of the checkpoint's config, at update 0")
    parser.add_argument("--eval-mode", action="store_true", help="no dropout (default: training mode, as a training step)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        raise SystemExit("error: --batches and --batch-size must be at least 1")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = precision_check(args.checkpoint, args.data, args.batches, args.batch_size, args.from_init,
                          not args.eval_mode, args.seed)  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['checkpoint']}: {'fresh model' if out['from_init'] else 'update ' + str(out['num_updates'])}, {out['mode']} mode")
    for r in out["batches"]:
        codes = f" | codes agree {r['codes_agree']:.4f}" if "codes_agree" in r else ""
        prev = "" if r["grad_cos_previous_batch"] is None else f" | cos(g32, g32 prev) {r['grad_cos_previous_batch']:.4f}"
        print(f"batch {r['batch']}: loss fp32 {r['loss_fp32']:.3f} bf16 {r['loss_bf16']:.3f}{codes} | cos(g32, g16) {r['grad_cos']:.5f}{prev}")
    print("mean cosine per parameter (share of the float32 gradient norm):")
    for k, p in out["parameters"].items():
        print(f"  {k:55s} {p['grad_cos']:8.5f}  ({p['grad_norm_share']:.2e})")


if __name__ == "__main__":
    main()
