"""``davam-adversary-view``: render an AWD adversary's word-dropout choices as an HTML page (the paper's Table 2).

    davam-adversary-view DATA --path AWD.pt "The cat sat on the mat." ["A dog ran." ...] \\
        [--sentence ...] [--input sentences.txt] [--num-samples 1000] [--seed 1] --out adversary.html

Sentences come as positional arguments, ``--sentence`` (repeatable) and ``--input FILE`` (one
per line, empty lines skipped; ``-`` reads stdin), in that order. They are raw text: when DATA
was made by ``davam-prepare-corpus`` they get the preparation of the training data (as stored
in ``DATA/preprocessing.json``: Moses tokenization, lower-casing, sentencepiece), unless
``--no-preprocess``; words not in the dictionary are named in a warning (read as ``<unk>``).

For each prepared sentence x_1..x_n the adversary of a checkpoint trained with
``--word-dropout-mode adversarial`` gives score distributions N(mu_i, sigma_i^2) to the
decoder's word inputs (<s> x_1..x_n with the authors' <s> step, <s> shown first; x_1..x_n for
``--decoder-no-bos-step``); exactly K = round(R T) of the T inputs, those with the lowest
scores, are dropped. The page colours every word by its drop probability P(i is among the K
lowest), estimated from ``--num-samples`` score draws, and marks (struck through, bold) the
words dropped in one seeded draw, i.e. what a training step would drop. A legend at the top
shows the colour scale and the mark. Probabilities are also written to the page's tooltips
and to ``--json`` if given.
"""

import argparse
import html
import os
import sys

from davam_plugin.cli.common import (
    atomic_write_text, device_for, sentence_preparer, setup_logging, warn_unknown_words, write_json,
)  # fmt: skip

PROG = "davam-adversary-view"
#: the colour of a word dropped with probability p: this red at opacity p
DROP_RGB = (220, 30, 30)
LEGEND_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def drop_probabilities(model, dictionary, sentence, num_samples, generator):
    """(words, drop probability per word, dropped-in-one-draw flags, K, score means) for one
    prepared sentence."""
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


def colour(p):
    """CSS background of a word dropped with probability ``p``."""
    r, g, b = DROP_RGB
    return f"rgba({r},{g},{b},{p:.3f})"


def legend_html(num_samples):
    """The legend: the colour scale (P(drop) 0 .. 1) and the mark of the one sampled draw."""
    swatches = " ".join(
        f"<span class='w' style='background:{colour(p)}'>{p:g}</span>" for p in LEGEND_STEPS
    )  # fmt: skip
    return (
        "<div class='legend'><b>Legend</b> "
        f"<span class='scale'>P(drop), from {num_samples} score draws: {swatches}</span> "
        "<span class='w d'>word</span> struck through, bold: dropped in one sampled draw (what a training "
        "step drops). Hover a word for its probability and score mean.</div>"
    )


def render(rows, rate, num_samples=None):
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AWD adversary</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}span.w{padding:2px 3px;margin:1px;"
        "border-radius:3px;display:inline-block}span.d{text-decoration:line-through;font-weight:bold}"
        "p{line-height:2.2em}div.legend{border:1px solid #ccc;border-radius:4px;padding:0.5em 1em;"
        "line-height:2.2em}</style></head><body>",
        f"<h1>Adversarial word dropout</h1><p>Background: probability that the adversary drops the word "
        f"(K = round({rate} &times; n) lowest scores per sentence). <span class='w d'>struck through</span>: "
        "dropped in one sampled draw.</p>",
    ]
    if num_samples is not None:
        parts.append(legend_html(num_samples))
    for words, probs, dropped, k, mu in rows:
        spans = []
        for w, p, d, m in zip(words, probs, dropped, mu, strict=True):
            cls = "w d" if d else "w"
            spans.append(f"<span class='{cls}' style='background:{colour(p)}' "
                         f"title='P(drop)={p:.3f}, score mean={m:.3f}'>{html.escape(w)}</span>")  # fmt: skip
        parts.append(f"<p>{' '.join(spans)} <small>(n={len(words)}, K={k})</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="HTML view of an AWD adversary's drop probabilities")
    p.add_argument("data", help="the data directory the model was trained on (its dict.txt)")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to show (raw text)")
    p.add_argument("--path", required=True, help="AWD checkpoint trained with --word-dropout-mode adversarial")
    p.add_argument("--sentence", action="append", default=[], help="a sentence to show (repeatable)")
    p.add_argument("--input", default=None, metavar="FILE", help="a file with one sentence per line ('-': stdin)")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--json", default=None, help="also write the probabilities here")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--no-preprocess", action="store_true",
                   help="the sentences are already prepared as the training data: do not apply DATA/preprocessing.json")
    return p


def read_input(path):
    """Non-empty lines of ``path`` (stdin for ``-``), stripped."""
    if path == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    if not os.path.isfile(path):
        sys.exit(f"error: --input {path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        sys.exit(f"error: --input {path} is not valid UTF-8 ({e.reason} at byte {e.start})")


def run(args):
    """Write the page (and JSON); return the rows."""
    import torch

    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel

    sentences = list(args.sentences) + list(args.sentence)
    if args.input:
        sentences += read_input(args.input)
    if not sentences:
        sys.exit("error: give sentences (arguments, --sentence or --input FILE)")
    if args.num_samples < 1:
        sys.exit(f"error: --num-samples must be >= 1, got {args.num_samples}")
    device = device_for(args.cpu)
    task, model = load_sentence_model(args.path, args.data, "--path", device, expect=(AwdModel,),
                                      expect_text="AWD (--arch awd*)")  # fmt: skip
    if model.decoder.adversary is None:
        sys.exit(f"error: --path {args.path} was trained with --word-dropout-mode {model.decoder.mode}: it has no adversary")
    prepare = sentence_preparer(args.data, args.no_preprocess)
    dictionary = task.source_dictionary
    prepared = []
    for i, sentence in enumerate(sentences):
        line = prepare(sentence)
        if not line:
            sys.exit(f"error: sentence {i + 1} has no words after preparation: {sentence!r}")
        warn_unknown_words(dictionary, f"sentence {i + 1}", line)
        prepared.append(line)
    gen = torch.Generator().manual_seed(args.seed)
    rows = [drop_probabilities(model, dictionary, s, args.num_samples, gen) for s in prepared]
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    page = render(rows, model.decoder.rate, args.num_samples)
    atomic_write_text(args.out, lambda f: f.write(page))
    write_json(args.json, [{"words": w, "p_drop": pr, "dropped": d, "k": k, "score_mean": m} for w, pr, d, k, m in rows])
    print(f"wrote {args.out} ({len(rows)} sentences)")
    return rows


def main(argv=None):
    """Console script ``davam-adversary-view``: 0, or an error line and a non-zero status."""
    # sentences may come before and after the options: parse them intermixed
    args = build_parser().parse_intermixed_args(argv)
    setup_logging()
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
