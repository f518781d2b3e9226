"""``davam-augment``: DAVAM generation from scratch as data augmentation for small language
models (the DAVAM paper's Fig. 3, SNLI).

    davam-augment --source ../shared/data/snli/valid.txt --test ../shared/data/snli/test.txt \\
        --work-dir augment-snli [--sizes 1000,2000,4000] [--ratios 0.5,1,2,4] [--lm-valid-size 1000] \\
        [--davam-size N] [--seed 1] [--cpu] [--davam-args='...'] [--prior-args='...'] [--sample-args='...'] \\
        [--lm-args='...'] [--out FIG.png] [--json PATH]

For each corpus size N and each ratio r: train DAVAM stage one and its prior on the N
sentences only, sample round(r * N) sentences from scratch (``fairseq-generate
--sample-from-prior``), train a fairseq ``lstm_lm`` on the N sentences plus those samples and
measure its test perplexity; the baseline of size N is the same LM trained on the N sentences
alone.

**One DAVAM for every size** (``--davam-size M``, M at least the largest size): the paper
augments with "a pre-trained DAVAM model" without saying what it was trained on. With this
option one DAVAM and its prior train on the first M sentences of the pool (which hold every
LM's subset) and every size's cells take their samples from that one model, the first
round(r * N) of round(r_max * N_max) samples drawn once. The LMs still train only on their N
real sentences plus samples: the samples carry what the DAVAM learnt from M - N sentences the LM
never sees, which is what a model pre-trained on a larger corpus brings. Default: a DAVAM per
size, trained on that size's subset only.

**Splits.** The SNLI copy in ../shared/data/snli has only ``valid.txt`` and ``test.txt`` (10,000
sentences each; ``train.txt`` is missing, see its README). ``--source`` (SNLI ``valid.txt``)
is shuffled with ``--seed``; its first ``--lm-valid-size`` sentences (default 1,000) are the
validation set of every model (DAVAM's and the prior's checkpoint selection and early stopping,
the LMs' early stopping), the rest is the pool, and the training subset of size N is the first N
sentences of the pool (so the subsets are nested: 1k within 2k within 4k). ``--test`` (SNLI
``test.txt``) is held out: no model trains or selects on it; it only gives the final
perplexities. Empty lines of either file are dropped (SNLI has none).

**One vocabulary.** Perplexities are comparable only over one vocabulary, so every data
directory of the run (DAVAM's, every LM's) is binarized with ``fairseq-preprocess
--srcdict`` against one dictionary, built (``--dict-only``) from the largest training subset,
which contains all the others (with ``--davam-size``, from the DAVAM's corpus, which contains
them all). Validation and test words outside it are ``<unk>``, the same
tokens in every cell. The text must already be tokenized (whitespace tokens; SNLI is tokenized
and lower-cased), so the project's ``prepare_corpus`` (tokenization, a dictionary per corpus)
is not used: calling ``fairseq-preprocess`` directly is what gives the fixed dictionary.

**Perplexity.** ``fairseq-validate --valid-subset test`` of each LM's ``checkpoint_best.pt``
(lowest validation loss); fairseq's ``language_modeling`` with ``--sample-break-mode eos``
predicts every word and the EOS of each sentence, and logs the mean loss per predicted token
in base 2 (3 decimals). Reported: ``nll_per_token`` = that loss x ln 2 (nats per token, tokens =
words + EOS), ``ppl`` = exp(nll_per_token) = 2^loss, and ``nll_per_sentence`` (nats).

**Settings** (each a quoted string of fairseq flags, appended after the defaults below, so
a flag given there overrides the default, e.g. ``--lm-args '--max-epoch 5'``):

* ``--davam-args`` (stage one): ``--arch davam_snli --criterion davam --codebook-kmeans-init
  --init-scale 0.1 --beta-max 1.0 --beta-warmup-updates 500 --optimizer adam --lr 0.003
  --clip-norm 5 --batch-size 32 --max-epoch 30 --patience 5 --best-checkpoint-metric
  rec_plus_commitment`` (the project's short-run recipe, as in docs/usage.md's demo);
* ``--prior-args``: ``--arch davam_prior --criterion davam_prior --optimizer adam --lr 0.001
  --clip-norm 5 --batch-size 32 --max-epoch 30 --patience 5``;
* ``--sample-args``: ``--beam 1 --sampling --batch-size 250`` (ancestral sampling of the codes
  and of the words); the round(r_max * N) samples are drawn once per size and the cell of ratio
  r takes the first round(r * N) of them (the cells of one size share samples);
* ``--lm-args`` (the same for every cell): ``--arch lstm_lm --sample-break-mode eos
  --tokens-per-sample 256 --decoder-embed-dim 256 --decoder-hidden-size 256
  --decoder-out-embed-dim 256 --decoder-layers 1 --dropout 0.3 --optimizer adam --lr 0.002
  --clip-norm 5 --batch-size 32 --max-epoch 40 --patience 3`` (as examples/reproduce/lstm_lm_ptb.sh).

Every training also gets ``--seed``, ``--no-epoch-checkpoints``, ``--num-workers 0`` (and ``--cpu``).

**Resumable.** Every stage writes its output, then a marker (``*.done``, holding its seconds);
a rerun skips finished stages and continues an unfinished training from its
``checkpoint_last.pt``. Rerun with the same options: the markers do not record them.

**Output.** ``--json`` (default ``WORK/augment.json``): the split, the dictionary, which sentences each DAVAM
trained on (``davam``), the settings,
``baseline`` per size, ``cells`` per size and ratio (samples, empty samples, training sentences,
``ppl``, ``nll_per_token``, ``nll_per_sentence``, LM epochs), ``seconds`` per stage; ``--out``
(default ``WORK/augment.png``): test perplexity against the ratio, one line per size, its
baseline dashed in the same colour; and a markdown table on stdout. Problems end the
command with one ``davam-augment: error: ...`` line on stderr and exit status 2.
"""

import argparse
import math
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

from davam_plugin.cli import fairseq_runner as runner
from davam_plugin.cli import training_logs as tl
from davam_plugin.cli.common import exit_status
from davam_plugin.cli.pipeline import (
    PipelineError, fmt, join_dash_values, markdown_table, number_list, read_json, validate_summary, value_label,
    write_json,
)  # fmt: skip

PROG = "davam-augment"

DAVAM_DEFAULTS = (
    "--arch davam_snli --criterion davam --codebook-kmeans-init --init-scale 0.1 --beta-max 1.0 "
    "--beta-warmup-updates 500 --optimizer adam --lr 0.003 --clip-norm 5 --batch-size 32 --max-epoch 30 "
    "--patience 5 --best-checkpoint-metric rec_plus_commitment"
)
PRIOR_DEFAULTS = (
    "--arch davam_prior --criterion davam_prior --optimizer adam --lr 0.001 --clip-norm 5 --batch-size 32 "
    "--max-epoch 30 --patience 5"
)
SAMPLE_DEFAULTS = "--beam 1 --sampling --batch-size 250"
LM_DEFAULTS = (
    "--arch lstm_lm --sample-break-mode eos --tokens-per-sample 256 --decoder-embed-dim 256 "
    "--decoder-hidden-size 256 --decoder-out-embed-dim 256 --decoder-layers 1 --dropout 0.3 --optimizer adam "
    "--lr 0.002 --clip-norm 5 --batch-size 32 --max-epoch 40 --patience 3"
)
_ARG_FLAGS = ("--davam-args", "--prior-args", "--sample-args", "--lm-args")
_RESERVED = ("--save-dir", "--log-format", "--task", "--user-dir", "--davam-path", "--path", "--prior-path",
             "--sample-from-prior", "--gen-subset", "--valid-subset")  # fmt: skip


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="DAVAM generation from scratch as data augmentation: per corpus size, train DAVAM and "
        "its prior on the subset, sample, train an LSTM LM on original + samples, report test perplexity.",
    )
    p.add_argument("--source", required=True, metavar="FILE",
                   help="tokenized sentences, one per line: the LM validation set and the pool of training "
                   "subsets (SNLI: ../shared/data/snli/valid.txt)")  # fmt: skip
    p.add_argument("--test", required=True, metavar="FILE",
                   help="held-out test sentences for the final perplexity (SNLI: ../shared/data/snli/test.txt)")
    p.add_argument("--work-dir", required=True, metavar="DIR", help="everything goes here")
    p.add_argument("--sizes", default="1000,2000,4000", help="training corpus sizes (default: 1000,2000,4000)")
    p.add_argument("--ratios", default="0.5,1,2,4", help="samples per original sentence (default: 0.5,1,2,4)")
    p.add_argument("--lm-valid-size", type=int, default=1000, help="validation sentences taken from --source (default: 1000)")
    p.add_argument("--davam-size", type=int, metavar="M",
                   help="train one DAVAM and its prior on the first M pool sentences (M >= the largest of "
                   "--sizes: they hold every LM's subset) and augment every size with its samples, as a "
                   "'pre-trained DAVAM'; default: a DAVAM per size, trained on that size's subset only")
    p.add_argument("--seed", type=int, default=1, help="shuffle, training and sampling seed (default: 1)")
    p.add_argument("--cpu", action="store_true", help="pass --cpu to every fairseq run")
    for flag, default in zip(_ARG_FLAGS, (DAVAM_DEFAULTS, PRIOR_DEFAULTS, SAMPLE_DEFAULTS, LM_DEFAULTS), strict=True):
        p.add_argument(flag, default="", metavar="'ARGS'", help=f"fairseq flags appended to the defaults: {default}")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the test evaluations (default: 64)")
    p.add_argument("--out", metavar="FIG.png", help="the figure (default: WORK/augment.png)")
    p.add_argument("--json", metavar="PATH", help="the data behind it (default: FIG with .json)")
    return p


def _flags(text, flag):
    try:
        args = shlex.split(text)
    except ValueError as e:
        raise PipelineError(f"{flag} {text!r}: {e}") from None
    for reserved in _RESERVED:
        if any(a == reserved or a.startswith(reserved + "=") for a in args):
            raise PipelineError(f"{flag}: do not pass {reserved}, the pipeline sets it")
    return args


def read_sentences(path, flag):
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{flag} {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{flag} {path}: not UTF-8 text (byte {e.start})") from None
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return [line for line in lines if line]


def write_lines(path, lines):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


class Stage:
    """A resumable step: ``done()`` when its marker exists; ``finish(seconds, **info)`` writes it."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def done(self):
        return self.marker.exists()

    def finish(self, seconds, **info):
        write_json(self.marker, {"seconds": seconds, **info})

    def info(self):
        return read_json(self.marker)


class Pipeline:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work_dir)
        self.sizes = number_list(args.sizes, "--sizes", kind=int, positive=True)
        self.ratios = number_list(args.ratios, "--ratios", positive=True)
        if args.lm_valid_size < 1:
            raise PipelineError(f"--lm-valid-size must be >= 1, got {args.lm_valid_size}")
        if args.batch_size < 1:
            raise PipelineError(f"--batch-size must be >= 1, got {args.batch_size}")
        self.davam_size = args.davam_size
        if self.davam_size is not None and self.davam_size < max(self.sizes):
            raise PipelineError(
                f"--davam-size {self.davam_size}: must be at least the largest of --sizes ({max(self.sizes)}), "
                "so that the shared DAVAM's corpus holds every LM's subset"
            )
        # the sentences any model trains on: the first pool_used of the pool
        self.pool_used = max(max(self.sizes), self.davam_size or 0)
        self.davam_args = _flags(DAVAM_DEFAULTS, "defaults") + _flags(args.davam_args, "--davam-args")
        self.prior_args = _flags(PRIOR_DEFAULTS, "defaults") + _flags(args.prior_args, "--prior-args")
        self.sample_args = _flags(SAMPLE_DEFAULTS, "defaults") + _flags(args.sample_args, "--sample-args")
        self.lm_args = _flags(LM_DEFAULTS, "defaults") + _flags(args.lm_args, "--lm-args")
        common = ["--seed", str(args.seed), "--no-epoch-checkpoints", "--num-workers", "0"]
        self.device = ["--cpu"] if args.cpu else []
        self.train_common = common + self.device
        self.seconds = {}

    # ------------------------------------------------------------------ data
    def split(self):
        source = read_sentences(self.args.source, "--source")
        test = read_sentences(self.args.test, "--test")
        if not test:
            raise PipelineError(f"--test {self.args.test}: no sentences")
        order = list(range(len(source)))
        random.Random(self.args.seed).shuffle(order)
        shuffled = [source[i] for i in order]
        valid, pool = shuffled[: self.args.lm_valid_size], shuffled[self.args.lm_valid_size :]
        if self.pool_used > len(pool):
            flag, value = ("--sizes", self.args.sizes) if self.pool_used == max(self.sizes) else ("--davam-size", self.davam_size)
            raise PipelineError(
                f"{flag} {value}: {self.pool_used} sentences asked for, but --source has "
                f"{len(source)} of which {self.args.lm_valid_size} (--lm-valid-size) are held for validation, "
                f"leaving {len(pool)}"
            )
        raw = self.work / "raw"
        if (raw / "split.json").exists():
            made = read_json(raw / "split.json").get("davam_size")
            if made != self.davam_size:
                def setting(m):
                    return f"--davam-size {m}" if m is not None else "a DAVAM per size (no --davam-size)"

                raise PipelineError(
                    f"--work-dir {self.work}: made with {setting(made)}, not {setting(self.davam_size)}; "
                    "use another --work-dir"
                )
        else:
            write_lines(raw / "valid.txt", valid)
            write_lines(raw / "test.txt", test)
            write_lines(raw / "pool.txt", pool[: self.pool_used])
            write_json(raw / "split.json", {"source_sentences": len(source), "seed": self.args.seed,
                                            "davam_size": self.davam_size})  # fmt: skip
        self.valid, self.test, self.pool = valid, test, pool
        self.split_info = {
            "source": str(self.args.source),
            "test": str(self.args.test),
            "seed": self.args.seed,
            "source_sentences": len(source),
            "lm_valid_sentences": len(valid),
            "pool_sentences": len(pool),
            "test_sentences": len(test),
            "description": (
                f"--source shuffled with seed {self.args.seed}: the first {len(valid)} sentences validate every "
                f"model (checkpoint selection, early stopping); the training subset of size N is the first N of the "
                f"remaining {len(pool)} (nested subsets); --test is held out and only gives the final perplexities"
            ),
        }

    def preprocess(self, dest, train_text, what):
        """Binarize ``train_text`` into ``dest`` against the run's dictionary; copy the shared
        valid/test binaries next to it."""
        stage = Stage(Path(dest) / "preprocess.done")
        if stage.done():
            return
        start = time.monotonic()
        dest = Path(dest)
        if dest.exists():
            shutil.rmtree(dest)
        runner.run_tool(
            "fairseq-preprocess",
            ["--only-source", "--trainpref", train_text, "--srcdict", self.dictionary, "--destdir", dest, "--workers", "1"],
            dest.parent / f"{dest.name}.preprocess.log", what=f"fairseq-preprocess of {what}",
        )  # fmt: skip
        for split in ("valid", "test"):
            for ext in ("bin", "idx"):
                shutil.copyfile(self.eval_bin / f"{split}.{ext}", dest / f"{split}.{ext}")
        stage.finish(time.monotonic() - start)

    def shared_data(self):
        raw = self.work / "raw"
        dict_dir, self.eval_bin = self.work / "dict", self.work / "eval-bin"
        self.dictionary = dict_dir / "dict.txt"
        start = time.monotonic()
        stage = Stage(dict_dir / "dict.done")
        if not stage.done():
            runner.run_tool(
                "fairseq-preprocess",
                ["--only-source", "--trainpref", raw / "pool.txt", "--destdir", dict_dir, "--dict-only", "--workers", "1"],
                self.work / "dict.preprocess.log", what="building the dictionary",
            )  # fmt: skip
            stage.finish(time.monotonic() - start)
        stage = Stage(self.eval_bin / "preprocess.done")
        if not stage.done():
            runner.run_tool(
                "fairseq-preprocess",
                ["--only-source", "--validpref", raw / "valid.txt", "--testpref", raw / "test.txt",
                 "--srcdict", self.dictionary, "--destdir", self.eval_bin, "--workers", "1"],
                self.work / "eval-bin.preprocess.log", what="fairseq-preprocess of the validation and test sets",
            )  # fmt: skip
            stage.finish(time.monotonic() - start)
        self.seconds["data"] = time.monotonic() - start
        self.dict_types = sum(1 for _ in self.dictionary.open(encoding="utf-8"))
        self.test_tokens = sum(len(s.split()) + 1 for s in self.test)

    # ------------------------------------------------------------------ per size
    def train(self, data, save_dir, args, log, what, extra=()):
        stage = Stage(Path(f"{save_dir}.done"))
        if not stage.done():
            print(f"  {what}: fairseq-train -> {log}", flush=True)
            cmd = [data, "--user-dir", runner.PLUGIN_DIR, *extra, *args, *self.train_common,
                   "--save-dir", save_dir, "--log-format", "json"]  # fmt: skip
            secs = runner.run_tool("fairseq-train", cmd, log, append=True, what=what)
            stage.finish(secs, command=["fairseq-train", *map(str, cmd)])
        best = Path(save_dir) / "checkpoint_best.pt"
        if not best.exists():
            raise PipelineError(f"{what} finished without {best}")
        return stage.info()["seconds"], best

    def sample(self, size_dir, data, davam, prior, n):
        out = size_dir / "samples.txt"
        stage = Stage(size_dir / "samples.done")
        if not stage.done():
            print(f"  sampling {n} sentences: fairseq-generate --sample-from-prior {n}", flush=True)
            log = size_dir / "generate.log"
            cmd = [data, "--user-dir", runner.PLUGIN_DIR, "--task", "sentence_vae", "--path", davam,
                   "--prior-path", prior, "--sample-from-prior", n, *self.sample_args, "--seed", self.args.seed,
                   *self.device]  # fmt: skip
            secs = runner.run_tool("fairseq-generate", cmd, log, what=f"sampling for size {size_dir.name}")
            hyps = {}
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("H-"):
                    fields = line.split("\t")
                    hyps.setdefault(int(fields[0][2:]), fields[2] if len(fields) > 2 else "")
            if sorted(hyps) != list(range(n)):
                raise PipelineError(f"fairseq-generate gave {len(hyps)} samples, not {n} [log: {log}]")
            write_lines(out, [" ".join(hyps[i].split()) for i in range(n)])
            stage.finish(secs, command=["fairseq-generate", *map(str, cmd)])
        lines = out.read_text(encoding="utf-8").split("\n")[:-1]
        if len(lines) < n:
            raise PipelineError(
                f"{out} holds {len(lines)} samples from an earlier run, --ratios need {n}: remove "
                f"{stage.marker} (and the ratio_* directories that used them) to sample again"
            )
        return stage.info()["seconds"], lines

    def lm(self, cell_dir, data, label):
        secs, best = self.train(data, cell_dir / "lm", self.lm_args, cell_dir / "lm.log", f"the LM of {label}",
                                extra=("--task", "language_modeling"))  # fmt: skip
        result_path = cell_dir / "test.json"
        if not result_path.exists():
            log = cell_dir / "test.log"
            cmd = [data, "--user-dir", runner.PLUGIN_DIR, "--task", "language_modeling", "--path", best,
                   "--valid-subset", "test", "--batch-size", self.args.batch_size, "--log-format", "json",
                   *self.device]  # fmt: skip
            eval_secs = runner.run_tool("fairseq-validate", cmd, log, what=f"the test evaluation of {label}")
            m = validate_summary(log)
            if "loss" not in m:
                raise PipelineError(f"no test loss in {log}")
            nll = m["loss"] * math.log(2)
            records = tl.read_log(cell_dir / "lm.log")
            valid = [r for r in records if r.split == "valid"]
            result = {
                "ppl": math.exp(nll),
                "nll_per_token": nll,
                "nll_per_sentence": nll * self.test_tokens / len(self.test),
                "loss_base2": m["loss"],
                "lm_epochs": valid[-1].epoch if valid else None,
                "lm_updates": valid[-1].num_updates if valid else None,
                "best_valid_loss_base2": min(r.metrics["loss"] for r in valid) if valid else None,
                "seconds": {"lm_train": secs, "lm_test": eval_secs},
            }
            write_json(result_path, result)
        return read_json(result_path)

    def subset_data(self, where, n):
        """The first ``n`` pool sentences as ``where/train.txt``, binarized into
        ``where/data-bin``. Returns (the data directory, {"preprocess": seconds})."""
        train_txt = where / "train.txt"
        if not train_txt.exists():
            write_lines(train_txt, self.pool[:n])
        data = where / "data-bin"
        self.preprocess(data, train_txt, f"the {n} training sentences")
        return data, {"preprocess": Stage(data / "preprocess.done").info()["seconds"]}

    def davam_samples(self, where, n, num_samples, label):
        """DAVAM stage one and its prior on the first ``n`` pool sentences, in ``where``; then
        ``num_samples`` sentences from scratch. Returns (seconds per stage, the samples)."""
        data, seconds = self.subset_data(where, n)
        seconds["davam"], davam = self.train(
            data, where / "davam", self.davam_args, where / "davam.log", f"DAVAM stage one ({label})",
            extra=("--task", "sentence_vae"),
        )  # fmt: skip
        seconds["prior"], prior = self.train(
            data, where / "prior", self.prior_args, where / "prior.log", f"the prior ({label})",
            extra=("--task", "davam_prior", "--davam-path", davam),
        )  # fmt: skip
        seconds["sample"], samples = self.sample(where, data, davam, prior, num_samples)
        return seconds, samples

    def shared_davam(self):
        """--davam-size M: one DAVAM for every size, trained on the first M pool sentences."""
        where = self.work / f"davam_{self.davam_size}"
        print(f"[one DAVAM for every size: {self.davam_size} sentences]", flush=True)
        num_samples = max(round(max(self.ratios) * n) for n in self.sizes)
        self.seconds[where.name], self.shared = self.davam_samples(
            where, self.davam_size, num_samples, f"{self.davam_size} sentences, shared")

    def run_size(self, n):
        size_dir = self.work / f"size_{n}"
        print(f"[size {n}]", flush=True)
        counts = {value_label(r): round(r * n) for r in self.ratios}
        if self.davam_size is None:
            seconds, samples = self.davam_samples(size_dir, n, max(counts.values()), f"size {n}")
        else:  # only the LMs' data: the samples come from the shared DAVAM
            _, seconds = self.subset_data(size_dir, n)
            samples = self.shared
        data = size_dir / "data-bin"  # the baseline LM's (and, per size, the DAVAM's) data
        baseline = self.lm(size_dir / "baseline", data, f"size {n}, no augmentation")
        baseline["train_sentences"] = n
        cells = {}
        for ratio in self.ratios:
            key = value_label(ratio)
            m = counts[key]
            cell_dir = size_dir / f"ratio_{key}"
            cell_txt = cell_dir / "train.txt"
            if not Stage(cell_dir / "data-bin" / "preprocess.done").done():
                write_lines(cell_txt, self.pool[:n] + samples[:m])
            self.preprocess(cell_dir / "data-bin", cell_txt, f"size {n} + {m} samples")
            cell = self.lm(cell_dir, cell_dir / "data-bin", f"size {n}, ratio {key}")
            cell.update(
                samples=m, empty_samples=sum(1 for s in samples[:m] if not s.strip()), train_sentences=n + m,
                ppl_change=cell["ppl"] / baseline["ppl"] - 1,
            )  # fmt: skip
            cell["seconds"]["preprocess"] = Stage(cell_dir / "data-bin" / "preprocess.done").info()["seconds"]
            cells[key] = cell
        seconds["lms"] = sum(sum(c["seconds"].values()) for c in [baseline, *cells.values()])
        self.seconds[str(n)] = seconds
        return baseline, cells

    def run(self):
        self.work.mkdir(parents=True, exist_ok=True)
        out = Path(self.args.out) if self.args.out else self.work / "augment.png"
        json_path = Path(self.args.json) if self.args.json else out.with_suffix(".json")
        if json_path.absolute() == out.absolute():
            raise PipelineError(f"--out {out} and the JSON would be the same file (give --out FIG.png or --json PATH)")
        runner.warm_up()  # fairseq's imports, once (not counted in the stage times)
        start = time.monotonic()
        self.split()
        self.shared_data()
        baselines, cells = {}, {}
        if self.davam_size is not None:
            self.shared_davam()
        for n in self.sizes:
            baselines[str(n)], cells[str(n)] = self.run_size(n)
        doc = {
            "sizes": self.sizes,
            "ratios": self.ratios,
            "split": self.split_info,
            "dictionary": {
                "path": str(self.dictionary),
                "entries": self.dict_types,
                "built_from": (
                    f"the largest training subset ({max(self.sizes)} sentences), which holds every other"
                    if self.davam_size is None else
                    f"the shared DAVAM's corpus (the first {self.davam_size} pool sentences), which holds every LM's subset"
                ),
            },
            "davam": (
                {"trained_on": "each size's own training subset", "sentences": None}
                if self.davam_size is None else
                {"trained_on": f"the first {self.davam_size} pool sentences, one DAVAM and prior for every size "
                 f"(--davam-size): the cells of size N take the first round(r * N) of its samples",
                 "sentences": self.davam_size}
            ),  # fmt: skip
            "conventions": {
                "ppl": "exp(nll_per_token), test split, checkpoint_best.pt of each LM (lowest validation loss)",
                "nll_per_token": "nats per predicted token; tokens = words + EOS (fairseq language_modeling, "
                "--sample-break-mode eos); fairseq's base-2 loss x ln 2",
                "nll_per_sentence": "nll_per_token x test tokens / test sentences (nats)",
                "ppl_change": "ppl / baseline ppl - 1",
                "test_tokens": self.test_tokens,
            },
            "settings": {
                "davam": self.davam_args, "prior": self.prior_args, "sample": self.sample_args,
                "lm": self.lm_args, "every_training": self.train_common,
            },  # fmt: skip
            "baseline": baselines,
            "cells": cells,
            "seconds": {**self.seconds, "this_invocation": time.monotonic() - start},
        }
        draw(doc, out)
        write_json(json_path, doc)
        print(table(doc))
        print(f"wrote {out} and {json_path}")
        return doc


def table(doc):
    header = ["size", "no augmentation"] + [f"+{value_label(r)}x samples" for r in doc["ratios"]]
    rows = []
    for n in doc["sizes"]:
        row = [str(n), fmt(doc["baseline"][str(n)]["ppl"], 2)]
        for r in doc["ratios"]:
            c = doc["cells"][str(n)][value_label(r)]
            row.append(f"{c['ppl']:.2f} ({100 * c['ppl_change']:+.1f}%)")
        rows.append(row)
    return "test perplexity (per token, words + EOS):\n" + markdown_table(header, rows)


def draw(doc, out):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    fig = Figure(figsize=(8, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ratios = doc["ratios"]
    for i, n in enumerate(doc["sizes"]):
        ys = [doc["cells"][str(n)][value_label(r)]["ppl"] for r in ratios]
        ax.plot(ratios, ys, marker="o", color=f"C{i % 10}", label=f"{n} sentences + samples")
        ax.axhline(doc["baseline"][str(n)]["ppl"], color=f"C{i % 10}", linestyle="--", linewidth=1.2,
                   label=f"{n} sentences, no augmentation")  # fmt: skip
    if all(r > 0 for r in ratios) and max(ratios) / min(ratios) >= 4:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ratios))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{value_label(r)}x" for r in ratios])
    ax.set_xlabel("sampled sentences per original sentence")
    ax.set_ylabel("test perplexity (words + EOS)")
    ax.yaxis.get_major_formatter().set_useOffset(False)
    ax.grid(True, alpha=0.3)
    # outside the axes: inside, it hid the largest size's curve, which lies near its baseline
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    shared = (doc.get("davam") or {}).get("sentences")
    what = f"samples of one DAVAM trained on {shared} sentences" if shared else "DAVAM samples"
    ax.set_title(f"LSTM LM on subsets of {Path(doc['split']['source']).name} + {what}", fontsize="small")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=100)
    except ValueError as e:
        raise PipelineError(f"--out {out}: {e}") from None


def main(argv=None):
    """Console script ``davam-augment``: returns 0, or 2 after one error line on stderr."""
    argv = join_dash_values(list(sys.argv[1:] if argv is None else argv), _ARG_FLAGS)
    args = build_parser().parse_args(argv)
    return exit_status(PROG, lambda: Pipeline(args).run(), (PipelineError, runner.ToolError))


if __name__ == "__main__":
    sys.exit(main())
