"""``davam-diversity``: diversity of generated sentences: Ent, Dist-1, Dist-2 (DAVAM paper, Table V).

    davam-diversity SAMPLES [--json OUT.json]

SAMPLES is a fairseq-generate output (its H- lines are used) or a text file with one
sentence per line. Tokens are whitespace-separated words (no EOS). Over all sentences
concatenated:
    Dist-1 = distinct unigrams / unigrams
    Dist-2 = distinct bigrams / bigrams (bigrams within a sentence)
    Ent    = entropy of the unigram distribution, natural log (nats)
The numbers are printed; ``--json`` also writes them to a file (nothing is written otherwise).
"""

import argparse
import os
import sys

from davam_plugin.cli.common import setup_logging, write_json

PROG = "davam-diversity"


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Ent, Dist-1, Dist-2 of generated sentences")
    p.add_argument("samples", help="fairseq-generate output or one sentence per line")
    p.add_argument("--json", default=None, help="also write the numbers here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging()
    from davam_plugin.generated_text import read_sentences
    from davam_plugin.metrics import ngram_diversity

    if not os.path.isfile(args.samples):
        sys.exit(f"error: {args.samples}: no such file (SAMPLES)")
    sentences = [s.split() for s in read_sentences(args.samples)]
    result = ngram_diversity(sentences)
    print(
        f"{result['sentences']} sentences, {result['tokens']} tokens: Ent {result['ent']:.3f}  "
        f"Dist-1 {result['dist_1']:.3f}  Dist-2 {result['dist_2']:.3f}"
    )
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
