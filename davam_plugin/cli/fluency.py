"""``davam-fluency``: fluency of sentences under a fairseq language model, per length bucket (DAVAM Table IV).

    davam-fluency SAMPLES --lm-path LM.pt [--lm-data DATA] \
        [--buckets 10,20,30,40,50] [--json OUT.json] [--batch-size 64] [--cpu]

SAMPLES is a fairseq-generate output (its H- lines) or one sentence per line. LM.pt is any
fairseq language-model checkpoint (``--task language_modeling``, e.g. ``lstm_lm`` or
``transformer_lm``); ``--lm-data`` is the directory holding its dict.txt (default: the one
saved in the checkpoint). The paper used GPT-2; no GPT-2 weights are reachable offline, so
an LM trained on the same corpus is the evaluator here (docs/metrics.md, "Generation metrics").

For each sentence w_1..w_n the LM scores the tokens w_1..w_n EOS (words + EOS; the input
starts with EOS, or BOS if the LM was trained with --add-bos-token):
    nll(s) = (1 / (n + 1)) sum_i -log p(token_i | tokens_<i)        (nats per token)
Reported overall and per bucket of n (words, EOS not counted): the mean of nll(s) over the
bucket's sentences (the paper's number), and PPL = exp(sum of token NLLs / tokens). Bucket
"10" holds n <= 10, "20" holds 10 < n <= 20, ..., and ">50" holds longer ones.
Out-of-vocabulary words are scored as <unk>; their count is reported. A progress bar with
the time left is shown on stderr when stderr is a terminal (``--no-progress`` hides it).
The numbers are printed; ``--json`` also writes them to a file (nothing is written otherwise).
"""

import argparse
import math
import os
import sys

from davam_plugin.cli.common import device_for, progress, setup_logging, write_json

PROG = "davam-fluency"


def bucket_name(n_words, edges):
    for e in edges:
        if n_words <= e:
            return str(e)
    return f">{edges[-1]}"


def load_lm(path, data, device):
    from fairseq import checkpoint_utils

    if not os.path.isfile(path):
        sys.exit(f"error: --lm-path {path}: no such file")
    overrides = {"data": data} if data else {}
    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
    except (FileNotFoundError, OSError) as e:
        sys.exit(f"error: cannot load the language model {path}: {e} (pass --lm-data, the directory with its dict.txt)")
    model = models[0].eval().to(device)
    if not hasattr(task, "target_dictionary") or task.target_dictionary is None:
        sys.exit(f"error: --lm-path {path} is not a language-model checkpoint (its task has no dictionary)")
    return model, task.target_dictionary, bool(getattr(cfg.task, "add_bos_token", False))


def score_sentences(model, dictionary, sentences, add_bos=False, batch_size=64, device="cpu", show_progress=False):
    """Per-sentence (summed NLL in nats, tokens scored = words + EOS, unk count);
    ``show_progress``: a progress bar on stderr (a terminal only)."""
    import torch

    start_symbol = dictionary.bos() if add_bos else dictionary.eos()
    pad = dictionary.pad()
    encoded = [dictionary.encode_line(s, add_if_not_exist=False, append_eos=True).long() for s in sentences]
    results = []
    bar = progress(len(encoded), "scoring", unit="sentences") if show_progress else None
    with torch.no_grad():
        for b in range(0, len(encoded), batch_size):
            batch = encoded[b : b + batch_size]
            width = max(len(t) for t in batch)
            target = torch.full((len(batch), width), pad, dtype=torch.long)
            prev = torch.full((len(batch), width), pad, dtype=torch.long)
            for i, t in enumerate(batch):
                target[i, : len(t)] = t
                prev[i, 0] = start_symbol
                prev[i, 1 : len(t)] = t[:-1]
            prev, target = prev.to(device), target.to(device)
            out = model(prev)
            lprobs = model.get_normalized_probs(out, log_probs=True).float()
            tok = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            tok = tok.masked_fill(target.eq(pad), 0.0)
            for i, t in enumerate(batch):
                results.append((float(tok[i].sum()), len(t), int(t.eq(dictionary.unk()).sum())))
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return results


def summarise(sentences, scores, edges):
    def block(items):
        nll = [s[0] / s[1] for _, s in items]
        tokens = sum(s[1] for _, s in items)
        total = sum(s[0] for _, s in items)
        return {
            "sentences": len(items),
            "tokens": tokens,
            "mean_token_nll": sum(nll) / len(nll),
            "ppl": math.exp(total / tokens),
        }

    pairs = list(zip(sentences, scores, strict=True))
    if not pairs:
        sys.exit("error: no sentences to score (SAMPLES is empty)")
    result = {"overall": block(pairs), "buckets": {}, "unk_tokens": sum(s[2] for s in scores)}
    names = [str(e) for e in edges] + [f">{edges[-1]}"]
    for name in names:
        items = [(x, s) for x, s in pairs if bucket_name(len(x.split()), edges) == name]
        if items:
            result["buckets"][name] = block(items)
    return result


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="mean token NLL of sentences under a fairseq LM, per length bucket")
    p.add_argument("samples", help="fairseq-generate output or one sentence per line")
    p.add_argument("--lm-path", required=True, help="fairseq language-model checkpoint")
    p.add_argument("--lm-data", default=None, help="directory with the LM's dict.txt (default: from the checkpoint)")
    p.add_argument("--buckets", default="10,20,30,40,50", help="upper edges of the length buckets (words)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal only)")
    return p


def main(argv=None):
    """Console script ``davam-fluency``: 0, or an error line and a non-zero status."""
    args = build_parser().parse_args(argv)
    setup_logging()
    run(args)
    return 0


def run(args):
    """Score, print, write the JSON; return the results."""
    try:
        edges = sorted(int(x) for x in args.buckets.split(","))
    except ValueError:
        sys.exit(f"error: --buckets must be comma-separated integers, got {args.buckets!r}")
    if args.batch_size < 1:
        sys.exit(f"error: --batch-size must be >= 1, got {args.batch_size}")
    if not os.path.isfile(args.samples):
        sys.exit(f"error: {args.samples}: no such file (SAMPLES)")
    from davam_plugin.generated_text import read_sentences

    device = device_for(args.cpu)
    sentences = read_sentences(args.samples)
    model, dictionary, add_bos = load_lm(args.lm_path, args.lm_data, device)
    scores = score_sentences(model, dictionary, sentences, add_bos, args.batch_size, device,
                             show_progress=not args.no_progress)
    result = summarise(sentences, scores, edges)
    o = result["overall"]
    print(f"{o['sentences']} sentences, {o['tokens']} tokens (words + EOS), {result['unk_tokens']} <unk>")
    print(f"  overall   mean token NLL {o['mean_token_nll']:.3f}  PPL {o['ppl']:.2f}")
    for name, b in result["buckets"].items():
        print(f"  len {name:>4}  mean token NLL {b['mean_token_nll']:.3f}  PPL {b['ppl']:.2f}  ({b['sentences']} sentences)")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    sys.exit(main())
