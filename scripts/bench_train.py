#!/usr/bin/env python3
"""Training throughput of ``davam_ptb`` through the plugin's model and criterion, against a
minimal plain-PyTorch loop of the same layers.

Throughput = target tokens (words + EOS) per second of full training steps (forward,
backward, gradient clipping at 5, SGD update), median over the measured steps after warm-up.
Batches are PTB-shaped: 32 sentences whose lengths come from fairseq's size-sorted batching
of a length sample matching PTB's training set (mean 21.1 words, sd 10; or the real lengths
with ``--data DATA-BIN``), vocabulary 10k. Each variant runs in its own process so that the
reported peak resident memory (or peak CUDA memory) is its own.

    python scripts/bench_train.py                      # both variants, 2 threads, CPU
    python scripts/bench_train.py --steps 60 --json out.json

It also counts the matrix-product FLOPs per target token of each variant (torch's flop
counter, forward + backward) and prints the throughput those FLOPs allow at the measured
GEMM rate.
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


# ----------------------------------------------------------------------------- batches
def ptb_like_lengths(n, rng):
    """Word counts with PTB train's shape (mean 21.1, sd ~10, 1..82)."""
    return np.clip(np.round(rng.gamma(4.4, 4.8, size=n)), 1, 82).astype(int)


def make_batches(args, rng):
    if args.data:
        from fairseq.data import data_utils, Dictionary

        d = Dictionary.load(os.path.join(args.data, "dict.txt"))
        ds = data_utils.load_indexed_dataset(os.path.join(args.data, "train"), d)
        sentences = [ds[i] for i in rng.choice(len(ds), size=args.batch_size * 400, replace=False)]
        vocab = len(d)
    else:
        lengths = ptb_like_lengths(args.batch_size * 400, rng)
        vocab = VOCAB
        sentences = [
            torch.cat([torch.from_numpy(rng.integers(4, vocab, size=n)), torch.tensor([EOS])]) for n in lengths
        ]
    # fairseq orders by size and cuts consecutive batches of --batch-size
    sentences.sort(key=len)
    chunks = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]
    picked = [chunks[i] for i in rng.choice(len(chunks), size=args.warmup + args.steps, replace=True)]
    return [collate(c) for c in picked], vocab


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
def build_plugin(vocab, device):
    from fairseq.data import Dictionary

    import davam_plugin  # noqa: F401  (registers everything)
    from davam_plugin.criterions.davam import DavamCriterion
    from davam_plugin.models.davam import DavamConfig, DavamModel

    d = Dictionary()
    for i in range(vocab - len(d)):
        d.add_symbol(f"w{i}")

    class Task:
        source_dictionary = target_dictionary = d

    model = DavamModel.build_model(DavamConfig(), Task()).to(device)  # davam_ptb == the defaults
    criterion = DavamCriterion(Task(), beta_start=0.15, beta_max=5.0, beta_warmup_updates=13150)

    def step(sample):
        loss, sample_size, _ = criterion(model, sample)
        (loss / sample_size).backward()
        return model

    return model, step


def build_plain(vocab, device):
    model = PlainDavam(vocab).to(device)

    def step(sample):
        n = sample["net_input"]
        loss = model(n["src_tokens"], n["prev_output_tokens"], sample["target"])
        (loss / sample["nsentences"]).backward()
        return model

    return model, step


def to_device(sample, device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device) if device.type == "cuda" else sample


def run_variant(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    device = torch.device(args.device)
    batches, vocab = make_batches(args, rng)
    model, step = (build_plugin if args.variant == "plugin" else build_plain)(vocab, device)
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
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(sample["ntokens"])
    tps = [n / t for n, t in zip(tokens, times)]
    mflop = count_mflop_per_token(step, model, batches[: min(10, len(batches))], device)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "variant": args.variant,
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


def output_layer_ceiling(args, tokens=768, features=512, vocab=VOCAB):
    """fp32 GEMM rate on the output layer's shape here, and the throughput the output layer
    alone would allow (forward + two backward GEMMs per token, everything else free)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = torch.randn(tokens, features, device=device)
    w = torch.randn(vocab, features, device=device)
    for _ in range(3):
        x @ w.t()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        x @ w.t()
    if device.type == "cuda":
        torch.cuda.synchronize()
    gflops = 2 * tokens * features * vocab * 10 / (time.perf_counter() - t0) / 1e9
    return gflops, gflops * 1e9 / (3 * 2 * features * vocab)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="measured steps")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured warm-up steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=None, help="fairseq-preprocess'ed data dir: use its real train sentences")
    p.add_argument("--variant", choices=["plugin", "plain", "both"], default="both")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.variant != "both":
        print(json.dumps(run_variant(args)))
        return
    results = {}
    for variant in ("plugin", "plain"):
        cmd = [sys.executable, __file__, "--variant", variant] + [
            a for a in sys.argv[1:] if not a.startswith("--json") and a != args.json
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    ratio = results["plugin"]["tokens_per_s_median"] / results["plain"]["tokens_per_s_median"]
    print(f"davam_ptb training, batch {args.batch_size}, {args.threads} threads, {args.device}, "
          f"{args.steps} measured steps after {args.warmup} warm-up; tokens = words + EOS")
    for v in ("plugin", "plain"):
        r = results[v]
        print(f"  {v:7s} {r['tokens_per_s_median']:8.0f} tok/s (median)  {r['tokens_per_s_aggregate']:8.0f} tok/s "
              f"(aggregate)  peak {r['peak_memory_mib']:.0f} MiB ({r['peak_memory_kind']})")
    print(f"  ratio plugin/plain: {ratio:.2f}x")
    gflops, ceiling = output_layer_ceiling(args)
    print(f"  fp32 GEMM on the output-layer shape here: {gflops:.0f} GFLOP/s -> the 10k-word output layer "
          f"alone caps training at {ceiling:.0f} tok/s")
    mflop = results["plugin"]["mflop_per_token"]
    model_ceiling = gflops * 1e3 / mflop
    print(f"  matrix-product FLOPs per target token (forward + backward): plugin {mflop:.1f} M, plain "
          f"{results['plain']['mflop_per_token']:.1f} M; at {gflops:.0f} GFLOP/s the plugin's FLOPs cap training at "
          f"{model_ceiling:.0f} tok/s, it runs at {100 * results['plugin']['tokens_per_s_median'] / model_ceiling:.0f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ratio": ratio, "gemm_gflops": gflops,
                       "output_layer_ceiling_tokens_per_s": ceiling,
                       "model_flop_ceiling_tokens_per_s": model_ceiling, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
