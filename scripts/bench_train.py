#!/usr/bin/env python3
"""Training throughput of the plugin's models in float32 and with ``--bf16-autocast``, and of
a minimal plain-PyTorch loop of ``davam_ptb``'s layers.

Throughput = target tokens (words + EOS) per second of full training steps (forward,
backward, gradient clipping at 5, SGD update), median over the measured steps after warm-up.
The plugin's steps run its model and criterion exactly as fairseq-train's task does
(``--bf16-autocast``: the forward under ``torch.autocast(device, bfloat16)``, the backward
outside it). Batches are PTB-shaped: 32 sentences whose lengths come from fairseq's
size-sorted batching of a length sample matching PTB's training set (mean 21.1 words, sd
10, vocabulary 10k), or the real sentences and vocabulary with ``--data DATA-BIN``. Each
(model, precision) runs in its own process so that the reported peak resident memory (or
peak CUDA memory) is its own.

    python scripts/bench_train.py                                # davam_ptb, awd_ptb x fp32, bf16; plain loop
    python scripts/bench_train.py --models davam_ptb --precisions fp32 --steps 60 --json out.json
    python scripts/bench_train.py --models davam_prior --steps 6 --warmup 1 --no-plain   # stage two

``davam_prior`` (DAVAM's stage-two PixelCNN prior, K = 512) trains on random code sequences
with the batches' sentence lengths (one code per word and EOS, then the end-of-codes symbol);
its tokens are the prior's predictions (codes + EOC).

It also counts the matrix-product FLOPs per target token of each run (torch's flop counter,
forward + backward), measures the GEMM rate of the output layer's shape in float32 and in
bfloat16, and prints the throughput those FLOPs allow at each rate (the FLOP ceiling).
bfloat16 is fast on GPUs (Ampere on) and on CPUs with AVX512-BF16/AMX; CPUs with AVX2 only
emulate it, and the table then shows it slower than float32.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 10_000
PAD, EOS = 1, 2
BATCHES_PER_SAMPLE = 400
PRIOR_CODES = 512  # davam_prior: K of the PTB recipes


# ----------------------------------------------------------------------------- batches
def ptb_like_lengths(n, rng):
    """Word counts with PTB train's shape (mean 21.1, sd ~10, 1..82)."""
    return np.clip(np.round(rng.gamma(4.4, 4.8, size=n)), 1, 82).astype(int)


def make_batches(args, n_batches, rng):
    """``n_batches`` batches and the vocabulary size (a corpus smaller than
    BATCHES_PER_SAMPLE x batch-size sentences is used whole)."""
    if args.data:
        from fairseq.data import data_utils, Dictionary

        dict_path = os.path.join(args.data, "dict.txt")
        if not os.path.isfile(dict_path):
            raise SystemExit(f"error: --data {args.data}: no dict.txt (a fairseq-preprocess --only-source directory)")
        d = Dictionary.load(dict_path)
        ds = data_utils.load_indexed_dataset(os.path.join(args.data, "train"), d)
        if ds is None or len(ds) == 0:
            raise SystemExit(f"error: --data {args.data}: no train split")
        n = min(len(ds), args.batch_size * BATCHES_PER_SAMPLE)
        sentences = [ds[int(i)] for i in rng.choice(len(ds), size=n, replace=False)]
        vocab = len(d)
    else:
        lengths = ptb_like_lengths(args.batch_size * BATCHES_PER_SAMPLE, rng)
        vocab = VOCAB
        sentences = [
            torch.cat([torch.from_numpy(rng.integers(4, vocab, size=n)), torch.tensor([EOS])]) for n in lengths
        ]
    # fairseq orders by size and cuts consecutive batches of --batch-size
    sentences.sort(key=len)
    chunks = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]
    picked = [chunks[i] for i in rng.choice(len(chunks), size=n_batches, replace=True)]
    return [collate(c) for c in picked], vocab


def prior_batch(sample, rng):
    """The stage-two batch of a sentence batch: one random code per token (words + EOS) of each
    sentence, then EOC, as the davam_prior task's CodeSequenceDataset collates them (ntokens =
    the prior's predictions, codes + EOC)."""
    from davam_plugin.data.code_sequence_dataset import CodeSequenceDataset

    lengths = sample["net_input"]["src_lengths"].tolist()
    codes = [torch.from_numpy(rng.integers(0, PRIOR_CODES, size=n)) for n in lengths]
    dataset = CodeSequenceDataset(codes, PRIOR_CODES, shuffle=False)
    return dataset.collater([dataset[i] for i in range(len(dataset))])


def collate(items):
    from fairseq.data import data_utils

    src = data_utils.collate_tokens(items, PAD, EOS, left_pad=False)
    prev = data_utils.collate_tokens(items, PAD, EOS, left_pad=False, move_eos_to_beginning=True)
    return {
        "id": torch.arange(len(items)),
        "nsentences": len(items),
        "ntokens": int(sum(len(t) for t in items)),
        "net_input": {"src_tokens": src, "src_lengths": torch.tensor([len(t) for t in items]), "prev_output_tokens": prev},
        "target": src.clone(),
    }


# ----------------------------------------------------------------------------- plain loop
class PlainDavam(nn.Module):
    """The same layers written the straightforward way: attention concatenates the repeated
    hidden state with the memory at every step, the LSTMCell gets the concatenated input,
    the output layer runs inside the loop and the loss is taken over the padded tensor."""

    def __init__(self, vocab, E=256, H=256, D=32, K=512):
        super().__init__()
        self.enc_embed = nn.Embedding(vocab, E)
        self.enc = nn.LSTM(E, H, batch_first=True)
        self.to_code = nn.Linear(H, D, bias=False)
        self.register_buffer("codebook", torch.randn(K, D))
        self.register_buffer("cluster_size", torch.zeros(K))
        self.register_buffer("cluster_sum", self.codebook.clone())
        self.dec_embed = nn.Embedding(vocab, E)
        self.to_mem = nn.Linear(D, H, bias=False)
        self.attn = nn.Linear(2 * H, H)
        self.v = nn.Parameter(torch.rand(H))
        self.cell = nn.LSTMCell(E + 2 * H, H)
        self.out = nn.Linear(2 * H, vocab, bias=False)
        self.drop = nn.Dropout(0.5)
        for p in self.parameters():
            p.data.uniform_(-0.01, 0.01)

    def forward(self, src, prev, target, beta=1.0):
        mask = src.eq(PAD)
        h, _ = self.enc(self.enc_embed(src))
        z = self.to_code(h)
        flat = z.reshape(-1, z.size(-1))
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)
        idx = dist.argmin(1)
        e = self.codebook[idx].view_as(z)
        with torch.no_grad():
            real = ~mask.reshape(-1)
            onehot = F.one_hot(idx[real], self.codebook.size(0)).float()
            self.cluster_size.mul_(0.99).add_(onehot.sum(0), alpha=0.01)
            self.cluster_sum.mul_(0.99).add_(onehot.t() @ flat[real].detach(), alpha=0.01)
            n = self.cluster_size.sum()
            cs = (self.cluster_size + 1e-5) / (n + 512e-5) * n
            self.codebook.copy_(self.cluster_sum / cs[:, None])
        commit = ((z - e.detach()) ** 2).sum(-1).masked_fill(mask, 0).sum()
        q = z + (e - z).detach()
        mem = self.to_mem(q)
        lengths = (~mask).sum(1)
        c = mem[torch.arange(mem.size(0)), lengths - 1]
        hx = h0 = torch.tanh(c)
        logits = []
        for i in range(prev.size(1)):
            emb = self.drop(self.dec_embed(prev[:, i]))
            rep = hx.unsqueeze(1).expand(-1, mem.size(1), -1)
            score = torch.tanh(self.attn(torch.cat([rep, mem], -1))) @ self.v
            a = F.softmax(score.masked_fill(mask, float("-inf")), -1)
            ctx = torch.bmm(a.unsqueeze(1), mem).squeeze(1)
            hx, c = self.cell(torch.cat([emb, ctx, h0], -1), (hx, c))
            logits.append(self.out(torch.cat([self.drop(hx), ctx], -1)))
        logits = torch.stack(logits, 1)
        rec = F.cross_entropy(logits.view(-1, logits.size(-1)), target.view(-1), ignore_index=PAD, reduction="sum")
        return rec + beta * commit


# ----------------------------------------------------------------------------- runners
def plugin_dictionary(vocab):
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(vocab - len(d)):
        d.add_symbol(f"w{i}")
    return d


def build_plugin(model_name, vocab, device):
    """The named arch with its criterion, as fairseq-train builds them."""
    from argparse import Namespace

    import davam_plugin  # noqa: F401  (registers everything)
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    d = plugin_dictionary(vocab)

    class Task:
        source_dictionary = target_dictionary = d

        @staticmethod
        def stage_one_codebook():  # davam_prior: a stand-in for the frozen stage-one codebook
            return torch.randn(PRIOR_CODES, 32)

    cfg = Namespace()
    ARCH_CONFIG_REGISTRY[model_name](cfg)
    model_cls = ARCH_MODEL_REGISTRY[model_name]
    config = model_cls.__dataclass(**{k: v for k, v in vars(cfg).items() if k in model_cls.__dataclass.__dataclass_fields__})
    model = model_cls.build_model(config, Task()).to(device)
    if model_name.startswith("awd"):
        from davam_plugin.criterions.awd_elbo import AwdElboCriterion

        criterion = AwdElboCriterion(Task(), kl_weight_start=1.0, kl_weight_max=1.0, kl_warmup_updates=0,
                                     adversary_lambda=1.0)  # fmt: skip
    elif model_name.startswith("davam_prior"):
        from davam_plugin.criterions.davam_prior import DavamPriorCriterion

        criterion = DavamPriorCriterion(Task())
    else:
        from davam_plugin.criterions.davam import DavamCriterion

        criterion = DavamCriterion(Task(), beta_start=0.15, beta_max=5.0, beta_warmup_updates=13150)
    return model, criterion


def build_step(args, vocab, device):
    from davam_plugin.modules.precision import bf16_autocast

    if args.variant == "plain":
        model = PlainDavam(vocab).to(device)

        def step(sample):
            n = sample["net_input"]
            loss = model(n["src_tokens"], n["prev_output_tokens"], sample["target"])
            (loss / sample["nsentences"]).backward()

        return model, step
    model, criterion = build_plugin(args.variant, vocab, device)
    if args.precision == "fp16":
        model.half()  # what fairseq's --fp16 does to the model (its fp32 master copy is not timed)
    enabled = args.precision == "bf16"

    def step(sample):
        with bf16_autocast(enabled, device.type):  # the forward only, as the task does
            loss, sample_size, _ = criterion(model, sample)
        (loss / sample_size).backward()

    return model, step


def to_device(sample, device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device) if device.type == "cuda" else sample


def run_variant(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    device = torch.device(args.device)
    steps, warmup = (args.awd_steps, args.awd_warmup) if args.variant.startswith("awd") else (args.steps, args.warmup)
    batches, vocab = make_batches(args, warmup + steps, rng)
    if args.variant.startswith("davam_prior"):
        batches = [prior_batch(b, rng) for b in batches]
    model, step = build_step(args, vocab, device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    times, tokens = [], []
    for i, sample in enumerate(batches):
        sample = to_device(sample, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step(sample)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(sample["ntokens"])
    tps = [n / t for n, t in zip(tokens, times, strict=True)]
    mflop = count_mflop_per_token(step, model, batches[: min(3, len(batches))], device)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "variant": args.variant,
        "precision": args.precision,
        "vocab": vocab,
        "tokens_per_s_median": statistics.median(tps),
        "tokens_per_s_aggregate": sum(tokens) / sum(times),
        "mean_tokens_per_batch": statistics.mean(tokens),
        "steps": len(times),
        "mflop_per_token": mflop,
        "peak_memory_mib": peak,
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
    }


def count_mflop_per_token(step, model, batches, device):
    """Matrix-product FLOPs (torch's flop counter: mm, addmm, bmm, ...; forward + backward) of
    the training step per target token, over ``batches`` (after the timed steps)."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = tokens = 0
    for sample in batches:
        sample = to_device(sample, device)
        with FlopCounterMode(display=False) as counter:
            step(sample)
        model.zero_grad(set_to_none=True)
        flops += counter.get_total_flops()
        tokens += sample["ntokens"]
    return flops / tokens / 1e6


def gemm_rate(args, dtype, tokens=768, features=512, vocab=VOCAB, reps=10):
    """GEMM rate (GFLOP/s) on the output layer's shape ([tokens x features] x [features x vocab])."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = torch.randn(tokens, features, device=device, dtype=dtype)
    w = torch.randn(vocab, features, device=device, dtype=dtype)
    for _ in range(2):
        x @ w.t()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ w.t()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * tokens * features * vocab * reps / (time.perf_counter() - t0) / 1e9


def run_child(args, variant, precision):
    cmd = [sys.executable, os.path.abspath(__file__), "--variant", variant, "--precision", precision,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--awd-steps", str(args.awd_steps),
           "--awd-warmup", str(args.awd_warmup), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--device", args.device] + (["--data", args.data] if args.data else [])  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise SystemExit(f"error: the {variant} {precision} run failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="measured steps (davam models and the plain loop)")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured warm-up steps")
    p.add_argument("--awd-steps", type=int, default=6, help="measured steps of the awd models (slow on a CPU)")
    p.add_argument("--awd-warmup", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=None, help="fairseq-preprocess'ed data dir: use its real train sentences")
    p.add_argument("--models", default="davam_ptb,awd_ptb", help="comma-separated plugin archs")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="comma-separated: fp32, bf16 (--bf16-autocast), fp16 (the model cast of fairseq's --fp16; GPUs)")
    p.add_argument("--no-plain", action="store_true", help="skip the plain-PyTorch davam_ptb loop")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # one child run
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    precisions = [x for x in args.precisions.split(",") if x]
    for x in precisions:
        if x not in ("fp32", "fp16", "bf16"):
            raise SystemExit(f"error: --precisions takes fp32, fp16 (the model cast of fairseq's --fp16) and bf16 "
                             f"(--bf16-autocast), got '{x}'")
    runs = [(m, x) for m in args.models.split(",") if m for x in precisions]
    if not args.no_plain:
        runs.append(("plain", "fp32"))
    results = [run_child(args, m, x) for m, x in runs]
    rates = {"fp32": gemm_rate(args, torch.float32), "bf16": gemm_rate(args, torch.bfloat16)}
    vocab = results[0]["vocab"]
    print(f"training steps, batch {args.batch_size}, {args.threads} threads, {args.device}, vocabulary {vocab}; "
          f"median over {args.steps} measured steps ({args.awd_steps} for awd) after warm-up; tokens = words + EOS")
    print(f"GEMM rate on the output-layer shape [768 x 512] x [512 x {VOCAB}]: fp32 {rates['fp32']:.0f} GFLOP/s, "
          f"bf16 {rates['bf16']:.0f} GFLOP/s")
    print(f"{'model':10s} {'precision':9s} {'tok/s':>8s} {'peak MiB':>9s} {'MFLOP/tok':>10s} "
          f"{'ceiling@fp32':>13s} {'ceiling@bf16':>13s} {'of own ceiling':>15s}")
    for r in results:
        ceil32 = rates["fp32"] * 1e3 / r["mflop_per_token"]
        ceil16 = rates["bf16"] * 1e3 / r["mflop_per_token"]
        own = ceil32 if r["precision"] == "fp32" else ceil16  # fp16 products run at about the bf16 rate
        r.update(ceiling_fp32_tokens_per_s=ceil32, ceiling_bf16_tokens_per_s=ceil16,
                 fraction_of_ceiling=r["tokens_per_s_median"] / own)  # fmt: skip
        print(f"{r['variant']:10s} {r['precision']:9s} {r['tokens_per_s_median']:8.0f} {r['peak_memory_mib']:9.0f} "
              f"{r['mflop_per_token']:10.1f} {ceil32:13.0f} {ceil16:13.0f} {100 * r['fraction_of_ceiling']:14.0f}%")
    for m in args.models.split(","):
        by = {r["precision"]: r for r in results if r["variant"] == m}
        if "fp32" in by and "bf16" in by:
            print(f"  {m}: bf16/fp32 throughput {by['bf16']['tokens_per_s_median'] / by['fp32']['tokens_per_s_median']:.2f}x")
    by = {(r["variant"], r["precision"]): r for r in results}
    if ("plain", "fp32") in by and ("davam_ptb", "fp32") in by:
        ratio = by[("davam_ptb", "fp32")]["tokens_per_s_median"] / by[("plain", "fp32")]["tokens_per_s_median"]
        print(f"  davam_ptb fp32 / plain loop: {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "gemm_gflops": rates, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
