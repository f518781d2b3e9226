#!/usr/bin/env python3
"""Render an AWD adversary's word-dropout choices as an HTML page (the paper's Table 2).

    python scripts/adversary_view.py DATA --path AWD.pt --sentence "the cat sat on the mat ." \\
        [--sentence ...] [--input sentences.txt] [--num-samples 1000] [--seed 1] --out adversary.html

For each sentence x_1..x_n (tokenized as the training data) the adversary of a checkpoint
trained with ``--word-dropout-mode adversarial`` gives score distributions
N(mu_i, sigma_i^2) to the decoder's word inputs (<s> x_1..x_n with the authors' <s> step, <s>
shown first; x_1..x_n for ``--decoder-no-bos-step``); exactly K = round(R T) of the T inputs,
those with the lowest scores, are dropped. The page
colours every word by its drop probability P(i is among the K lowest), estimated from
``--num-samples`` score draws, and marks (struck through, bold) the words dropped in one
seeded draw, i.e. what a training step would drop. Probabilities are also written to the
page's tooltips and to ``--json`` if given.
"""

import argparse
import html
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _script_setup import atomic_open, write_json  # noqa: E402  (import path, logging)


def drop_probabilities(model, dictionary, sentence, num_samples, generator):
    """(words, drop probability per word, dropped-in-one-draw flags, K) for one sentence."""
    import torch

    from davam_plugin.modules.relaxed_topk import k_per_sentence

    adversary = model.decoder.adversary
    words = sentence.split()
    tokens = dictionary.encode_line(sentence, add_if_not_exist=False, append_eos=False).long().unsqueeze(0)
    # the decoder's word inputs: <s> (fairseq's BOS, the EOS id) x_1..x_n with the <s> step
    tokens = model.decoder.word_inputs(torch.cat([tokens.new_full((1, 1), dictionary.eos()), tokens], 1))
    if tokens.size(1) > len(words):
        words = ["<s>"] + words
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    n = tokens.size(1)
    with torch.no_grad():
        params = adversary.to_score(adversary.lstm(adversary.embed_tokens(tokens))[0])[0]
        mu = params[:, 0].double().cpu()
        logvar = params[:, 1].double().cpu() if adversary.learned_variance else torch.zeros_like(mu)
    k = int(k_per_sentence(torch.tensor([n]), model.decoder.rate)[0])
    eps = torch.randn(num_samples + 1, n, generator=generator, dtype=torch.float64)
    scores = mu + torch.exp(0.5 * logvar) * eps
    ranks = scores.argsort(dim=1, stable=True).argsort(dim=1)
    dropped = ranks < k
    return words, dropped[1:].double().mean(0).tolist(), dropped[0].tolist(), k, mu.tolist()


def render(rows, rate):
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AWD adversary</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}span.w{padding:2px 3px;margin:1px;"
        "border-radius:3px;display:inline-block}span.d{text-decoration:line-through;font-weight:bold}"
        "p{line-height:2.2em}</style></head><body>",
        f"<h1>Adversarial word dropout</h1><p>Background: probability that the adversary drops the word "
        f"(K = round({rate} &times; n) lowest scores per sentence). <span class='w d'>struck through</span>: "
        "dropped in one sampled draw.</p>",
    ]
    for words, probs, dropped, k, mu in rows:
        spans = []
        for w, p, d, m in zip(words, probs, dropped, mu):
            style = f"background:rgba(220,30,30,{p:.3f})"
            cls = "w d" if d else "w"
            spans.append(f"<span class='{cls}' style='{style}' title='P(drop)={p:.3f}, score mean={m:.3f}'>{html.escape(w)}</span>")
        parts.append(f"<p>{' '.join(spans)} <small>(n={len(words)}, K={k})</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description="HTML view of an AWD adversary's drop probabilities")
    p.add_argument("data", help="the data directory the model was trained on (its dict.txt)")
    p.add_argument("--path", required=True, help="AWD checkpoint trained with --word-dropout-mode adversarial")
    p.add_argument("--sentence", action="append", default=[], help="a sentence to show (repeatable)")
    p.add_argument("--input", default=None, help="a file with one sentence per line")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--json", default=None, help="also write the probabilities here")
    p.add_argument("--cpu", action="store_true")
    args = p.parse_args(argv)
    import torch

    import davam_plugin  # noqa: F401
    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel

    sentences = list(args.sentence)
    if args.input:
        if not os.path.isfile(args.input):
            sys.exit(f"error: --input {args.input}: no such file")
        sentences += [line.strip() for line in open(args.input, encoding="utf-8") if line.strip()]
    if not sentences:
        sys.exit("error: give --sentence or --input")
    if args.num_samples < 1:
        sys.exit(f"error: --num-samples must be >= 1, got {args.num_samples}")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    task, model = load_sentence_model(args.path, args.data, "--path", device, expect=(AwdModel,),
                                      expect_text="AWD (--arch awd*)")  # fmt: skip
    if model.decoder.adversary is None:
        sys.exit(f"error: --path {args.path} was trained with --word-dropout-mode {model.decoder.mode}: it has no adversary")
    gen = torch.Generator().manual_seed(args.seed)
    rows = [drop_probabilities(model, task.source_dictionary, s, args.num_samples, gen) for s in sentences]
    with atomic_open(args.out) as f:
        f.write(render(rows, model.decoder.rate))
    write_json(args.json, [{"words": w, "p_drop": pr, "dropped": d, "k": k, "score_mean": m} for w, pr, d, k, m in rows])
    print(f"wrote {args.out} ({len(rows)} sentences)")
    return rows


if __name__ == "__main__":
    main()
