"""Read sentences from a plain text file or from a ``fairseq-generate`` output.

A file with ``H-<id>\\t<score>\\t<text>`` lines is read as fairseq-generate output: the H-
(hypothesis) texts in id order (the first hypothesis per id when ``--nbest`` > 1). Any
other file is one sentence per line (empty lines kept as empty sentences).
"""

import re

_H_LINE = re.compile(r"^H-(\d+)\t[^\t]*\t?(.*)$")


def read_sentences(path: str):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    hyps = {}
    for line in lines:
        m = _H_LINE.match(line)
        if m:
            hyps.setdefault(int(m.group(1)), m.group(2))
    if hyps:
        return [hyps[i] for i in sorted(hyps)]
    return lines
