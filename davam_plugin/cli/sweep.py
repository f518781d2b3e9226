"""``davam-sweep``: train one model per value of one fairseq setting and plot the final Rec
and KL against the value (the DAVAM paper's sensitivity analyses, Fig. 4(a)-(c)).

    davam-sweep DATA --save-root ROOT --setting --num-codes --values 128,256,512,1024
        [--out ROOT/sweep.png] [--json PATH] [--eval-subset valid] [--checkpoint best|last]
        [--prior-args='--arch davam_prior --criterion davam_prior ... --max-epoch 5']
        [--evaluate-args='--iw-samples 100'] [--label NAME] [--compare LABEL=JSON ...]
        [--reuse-json EARLIER.json]
        -- FAIRSEQ-TRAIN ARGUMENTS (task, arch, criterion, optimizer and the reduced budget)

Everything after ``--`` goes to ``fairseq-train DATA`` unchanged but for ``{value}``, which
becomes the value in every argument that holds it, followed by ``SETTING VALUE``,
``--save-dir ROOT/<setting>_<value>/checkpoints`` and ``--log-format json`` (so give no
``--save-dir``). ``{value}`` lets each value start from its own model of an earlier sweep,
e.g. ``--finetune-from-model WARMUP_ROOT/num-codes_{value}/checkpoints/checkpoint_last.pt``
(fairseq resets the optimizer, the rate schedule, the meters and the epoch count on the first
start only; a rerun continues from the value's own ``checkpoint_last.pt``). ``--setting`` is
any fairseq-train flag the chosen task, arch and criterion know: ``--num-codes`` (K),
``--beta-max``, ``--code-dim`` (D), ... It is checked, with every value, by fairseq's own
parser before anything trains.

Per value, in ``ROOT/<setting>_<value>/`` (e.g. ``num-codes_128``):

1. ``train.log``: ``fairseq-train`` (stdout + stderr, appended). Rerunning the sweep
   continues an unfinished run from its ``checkpoint_last.pt`` (fairseq's resume) and skips
   a finished one (``train.done``, which holds the seconds it took).
2. ``eval_<subset>_<best|last>.json``: ``fairseq-validate`` of
   ``checkpoints/checkpoint_<best|last>.pt`` on ``--eval-subset`` (default ``valid``): the
   criterion's metrics, nats.
3. With ``--prior-args`` (discrete latents only): the stage-two prior
   (``fairseq-train --task davam_prior --davam-path <that checkpoint>`` + ``--prior-args``,
   in ``prior/``; rerun with the same ``--checkpoint``), then ``prior_eval_<subset>.json``:
   :func:`davam_plugin.evaluation.evaluate_split` of the stage-one model with that prior on
   ``--eval-subset``.
4. With ``--evaluate-args`` (Gaussian latents: AWD, GAVAM, VAE+Attn): ``davam-evaluate`` of
   that checkpoint on ``--eval-subset`` with those extra arguments, in
   ``evaluate_<subset>_<best|last>.json``: adds ``neg_elbo``, ``mi`` (the aggregate posterior's
   mutual information), ``active_units`` and ``iw_nll`` to the value's results.

``--reuse-json JSON`` (an earlier ``--json`` of the same sweep, e.g. a committed copy) takes a
value from that file instead of training it again when the value's directory is gone, as
after a lost save root: the value's entry is copied with ``"reused_from": JSON`` added. The
two sweeps must agree on DATA, ``--setting``, the fairseq-train arguments (compared word by
word, paths as given), ``--prior-args``, ``--evaluate-args``, ``--eval-subset`` and
``--checkpoint``; otherwise the command ends with one error line naming the difference. A value
whose directory exists is resumed as usual, whatever the JSON holds.

``--compare LABEL=JSON`` draws other sweeps of the same setting (their ``--json``) on the same
axes, one colour per sweep, with a legend (``--label`` names this one).

What is reported as KL (nats per sentence):

* discrete latents (DAVAM): stage one logs no KL (the posterior is one-hot; its KL is the
  stage-two prior's NLL of the codes, sum over the T + 1 predictions: codes and end symbol).
  With ``--prior-args`` the sweep reports ``kl`` (that sum: the KL of the likelihood bound)
  and ``kl_paper`` (the same terms averaged over the positions per sentence: the authors'
  convention, the paper's Fig. 4 "KL"); without it KL is null and only Rec, the commitment
  and the code usage are reported.
* Gaussian latents (GAVAM, VAE+Attn): ``kl`` and ``kl_paper`` as the criterion logs them.

Rec is the criterion's ``rec`` (reconstruction NLL per sentence, words + EOS, nats) on
``--eval-subset`` from ``fairseq-validate``. Output: ``--json`` (default: ``--out`` with
``.json``)::

    {"setting": "--num-codes", "values": [128, 256], "runs": {"128": {"rec": ..., "kl": ...,
     "kl_paper": ..., "commitment": ..., "code_usage": ..., "epochs": ..., "updates": ...,
     "seconds": {"train": ..., "validate": ..., "prior": ..., "prior_eval": ...}}, ...}, ...}

and ``--out``: Rec, KL (paper convention and summed, when there is a KL) and codes used
against the value (log x axis when every value is positive and they span a factor >= 4,
as K and D do), plus a markdown table on stdout. Problems end the command with one
``davam-sweep: error: ...`` line on stderr and exit status 2.

Example (the AWD paper's Fig. 2: adversarial against uniform word dropout over the rate R)::

    davam-sweep data-bin/ptb --save-root sweeps/r_uniform --setting --word-dropout-rate \
        --values 0.1,0.2,0.3,0.4,0.5 --evaluate-args='--iw-samples 10' \
        -- --user-dir davam_plugin --task sentence_vae --arch awd_ptb --criterion awd_elbo \
        --word-dropout-mode uniform --optimizer sgd --lr 1.0 --clip-norm 5 --batch-size 32 --max-epoch 2
    davam-sweep data-bin/ptb --save-root sweeps/r_awd --setting --word-dropout-rate \
        --values 0.1,0.2,0.3,0.4,0.5 --evaluate-args='--iw-samples 10' --label AWD \
        --compare uniform=sweeps/r_uniform/sweep.json \
        -- (the same, with --word-dropout-mode adversarial)

Example (the paper's K sweep on PTB at a reduced budget)::

    davam-sweep data-bin/ptb --save-root sweeps/ptb_k --setting --num-codes \\
        --values 128,256,512,1024 \\
        --prior-args='--arch davam_prior --criterion davam_prior --optimizer sgd --lr 0.5
                      --clip-norm 5 --batch-size 32 --max-epoch 5 --cpu' \\
        -- --user-dir davam_plugin --task sentence_vae --arch davam_ptb --criterion davam \\
        --optimizer sgd --lr 1.0 --clip-norm 5 --batch-size 32 --max-epoch 5 --cpu
"""

import argparse
import contextlib
import io
import shlex
import sys
import time
from pathlib import Path

from davam_plugin.cli import fairseq_runner as runner
from davam_plugin.cli import training_logs as tl
from davam_plugin.cli.common import exit_status
from davam_plugin.cli.pipeline import (
    PipelineError, fmt, join_dash_values, markdown_table, number_list, read_json, value_label, write_json,
)  # fmt: skip

PROG = "davam-sweep"


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} DATA --save-root ROOT --setting FLAG --values V1,V2,... [options] -- FAIRSEQ-TRAIN-ARGS",
        description="Train one model per value of one fairseq-train setting (reduced budget after --), "
        "then plot and tabulate the final Rec and KL against the value.",
    )
    p.add_argument("data", metavar="DATA", help="fairseq data directory (fairseq-preprocess --only-source output)")
    p.add_argument("--save-root", required=True, metavar="ROOT", help="one subdirectory per value goes here")
    p.add_argument("--setting", required=True, metavar="FLAG", help="the fairseq-train flag to sweep, e.g. --num-codes")
    p.add_argument("--values", required=True, metavar="V1,V2,...", help="comma-separated values, e.g. 128,256,512")
    p.add_argument("--out", metavar="FIG.png", help="the figure (default: ROOT/sweep.png)")
    p.add_argument("--json", metavar="PATH", help="the data behind it (default: FIG with .json)")
    p.add_argument("--eval-subset", default="valid", help="split the final numbers are measured on (default: valid)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="checkpoint_best.pt (fairseq's --best-checkpoint-metric) or checkpoint_last.pt")
    p.add_argument("--prior-args", metavar="'ARGS'",
                   help="discrete latents: also fit the stage-two prior with these fairseq-train arguments "
                   "(one quoted string), giving the KL")
    p.add_argument("--evaluate-args", metavar="'ARGS'",
                   help="Gaussian latents (awd*, gavam*, vae_attn*): also run davam-evaluate on each checkpoint with "
                   "these extra arguments (one quoted string, may be ''), adding -ELBO, MI, active units and the IW NLL")
    p.add_argument("--label", help="this sweep's name in the figure's legend (default: the last path part of ROOT)")
    p.add_argument("--compare", action="append", default=[], metavar="LABEL=JSON",
                   help="draw another sweep of the same setting (its JSON) on the same axes; repeatable")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the evaluations (default: 64)")
    p.add_argument("--reuse-json", metavar="JSON",
                   help="an earlier --json of this same sweep (same DATA, --setting, fairseq-train arguments, "
                   "--prior-args, --evaluate-args, --eval-subset and --checkpoint): a value whose directory "
                   "ROOT/<setting>_<value> does not exist but which that JSON holds is taken from it instead of "
                   "trained again (after a lost save root); its entry gets \"reused_from\"")
    return p


def split_argv(argv):
    """(the sweep's own arguments, the fairseq-train arguments after ``--`` or None)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = None
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1 :]
    return join_dash_values(argv, ("--setting", "--prior-args", "--evaluate-args")), rest


def _parse_fairseq(args_list):
    """fairseq-train's parser on ``args_list``: (Namespace, unknown args); PipelineError with
    argparse's message (its last line) when they do not parse."""
    from fairseq import options

    runner.warm_up()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return options.parse_args_and_arch(options.get_training_parser(), args_list, parse_known=True)
    except SystemExit:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        message = lines[-1].split("error: ", 1)[-1] if lines else "fairseq-train arguments do not parse"
        raise PipelineError(message) from None
    except (RuntimeError, KeyError, ValueError) as e:
        raise PipelineError(f"fairseq-train arguments do not parse: {e!r}") from None


VALUE_FIELD = "{value}"


def for_value(train_args, value):
    """``train_args`` with every ``{value}`` replaced by the value's label (``128``, ``0.5``)."""
    return [a.replace(VALUE_FIELD, value_label(value)) for a in train_args]


def check_setting(data, train_args, setting, values):
    """The Namespace fairseq-train would get; PipelineError if ``setting`` is not a flag the
    task/arch/criterion know or a value is refused by its type."""
    if not setting.startswith("--") or len(setting) < 3 or "=" in setting:
        raise PipelineError(f"--setting {setting!r}: give a fairseq-train flag such as --num-codes")
    for flag in (setting, "--save-dir"):
        if any(a == flag or a.startswith(flag + "=") for a in train_args):
            raise PipelineError(f"do not pass {flag} after --: the sweep sets it for every value")
    dest = setting[2:].replace("-", "_")
    first = None
    for value in values:
        try:
            ns, unknown = _parse_fairseq([data, *for_value(train_args, value), setting, value_label(value)])
        except PipelineError as e:
            msg = str(e)
            if setting in msg or "argument " + setting in msg:
                raise PipelineError(f"--values: {value_label(value)} is refused by {setting}: {msg}") from None
            raise PipelineError(f"the fairseq-train arguments after -- do not parse: {msg}") from None
        if setting in unknown or dest not in vars(ns):
            raise PipelineError(
                f"--setting {setting}: not a fairseq-train flag of --task {getattr(ns, 'task', '?')} "
                f"--arch {getattr(ns, 'arch', '?')} --criterion {getattr(ns, 'criterion', '?')}"
            )
        extra = [a for a in unknown if a.startswith("-")]
        if extra:
            raise PipelineError(f"the fairseq-train arguments after -- include unknown flag(s): {' '.join(extra)}")
        first = first or ns
    return first


def run_dir(root, setting, value):
    return Path(root) / f"{setting.lstrip('-')}_{value_label(value)}"


def _epochs_updates(train_log):
    records = tl.read_log(train_log)
    ends = [r for r in records if r.split == "train"] or [r for r in records if r.split == "train_inner"]
    if not ends:
        return None, None
    return ends[-1].epoch, ends[-1].num_updates


def _evaluate_prior(davam_path, prior_path, data, subset, batch_size, out):
    """Child process: the bound's terms of the stage-one model with its prior on ``subset``."""
    from davam_plugin.evaluation import evaluate_split
    from davam_plugin.loading import check_prior_matches, load_davam, load_prior

    task, davam = load_davam(davam_path, data)
    prior = load_prior(prior_path)
    check_prior_matches(prior, davam)
    summary, _ = evaluate_split(davam, prior, task.load_sentences(subset), batch_size=batch_size)
    write_json(out, {k: (float(v) if isinstance(v, float) else v) for k, v in summary.items()})


def run_value(args, ns, train_args, prior_args, value, evaluate_args=None):
    d = run_dir(args.save_root, args.setting, value)
    ckpt_dir = d / "checkpoints"
    label = f"{args.setting} {value_label(value)}"
    seconds = {}
    done = d / "train.done"
    if done.exists():
        print(f"[{label}] training finished already ({done})", flush=True)
    else:
        print(f"[{label}] fairseq-train -> {d / 'train.log'}", flush=True)
        cmd = [args.data, *for_value(train_args, value), args.setting, value_label(value), "--save-dir", ckpt_dir,
               "--log-format", "json"]  # fmt: skip
        secs = runner.run_tool("fairseq-train", cmd, d / "train.log", append=True, what=f"fairseq-train for {label}")
        write_json(done, {"seconds": secs, "command": ["fairseq-train", *map(str, cmd)]})
    seconds["train"] = read_json(done)["seconds"]
    checkpoint = ckpt_dir / f"checkpoint_{args.checkpoint}.pt"
    if not checkpoint.exists():
        raise PipelineError(f"{label}: training finished without {checkpoint} (did it save?)")
    from davam_plugin.cli.pipeline import validate_summary

    valid_json = d / f"eval_{args.eval_subset}_{args.checkpoint}.json"
    if not valid_json.exists():
        common = ["--user-dir", runner.PLUGIN_DIR, "--task", ns.task, "--path", checkpoint,
                  "--valid-subset", args.eval_subset, "--batch-size", args.batch_size, "--log-format", "json"]  # fmt: skip
        if getattr(ns, "cpu", False):
            common.append("--cpu")
        log = d / f"eval_{args.eval_subset}_{args.checkpoint}.log"
        secs = runner.run_tool("fairseq-validate", [args.data, *common], log, what=f"fairseq-validate for {label}")
        write_json(valid_json, {"metrics": validate_summary(log), "seconds": secs, "checkpoint": str(checkpoint)})
    valid = read_json(valid_json)
    metrics, seconds["validate"] = valid["metrics"], valid["seconds"]
    gaussian = "kl" in metrics
    result = {
        "rec": metrics.get("rec"),
        "kl": metrics.get("kl") if gaussian else None,
        "kl_paper": metrics.get("kl_paper") if gaussian else None,
        "commitment": metrics.get("commitment"),
        "code_usage": metrics.get("code_usage"),
        "code_ppl": metrics.get("code_ppl"),
        "nll_per_token": metrics.get("nll_per_token"),
        "kl_source": "criterion (Gaussian latents)" if gaussian else None,
    }
    if prior_args is not None and not gaussian:
        prior_dir = d / "prior"
        prior_done = d / "prior.done"
        if not prior_done.exists():
            print(f"[{label}] fairseq-train --task davam_prior -> {d / 'prior.log'}", flush=True)
            cmd = [args.data, "--user-dir", runner.PLUGIN_DIR, "--task", "davam_prior", "--davam-path", checkpoint,
                   *prior_args, "--save-dir", prior_dir, "--log-format", "json"]  # fmt: skip
            secs = runner.run_tool("fairseq-train", cmd, d / "prior.log", append=True, what=f"the prior for {label}")
            write_json(prior_done, {"seconds": secs, "command": ["fairseq-train", *map(str, cmd)]})
        seconds["prior"] = read_json(prior_done)["seconds"]
        prior_eval = d / f"prior_eval_{args.eval_subset}.json"
        prior_ckpt = prior_dir / "checkpoint_best.pt"
        if not prior_eval.exists():
            start = time.monotonic()
            runner.run_function(
                _evaluate_prior, d / "prior_eval.log", f"the evaluation with the prior for {label}",
                str(checkpoint), str(prior_ckpt), str(args.data), args.eval_subset, args.batch_size, str(prior_eval) + ".part",
            )  # fmt: skip
            summary = read_json(str(prior_eval) + ".part")
            write_json(prior_eval, {"summary": summary, "seconds": time.monotonic() - start})
            Path(str(prior_eval) + ".part").unlink()
        pe = read_json(prior_eval)
        seconds["prior_eval"] = pe["seconds"]
        result.update(
            kl=pe["summary"]["kl"], kl_paper=pe["summary"]["kl_paper"], nll_bound=pe["summary"].get("nll_bound"),
            ppl_bound=pe["summary"].get("ppl_bound"), ppl_paper=pe["summary"].get("ppl_paper"),
            kl_source="stage-two prior (davam_plugin.evaluation.evaluate_split)",
        )  # fmt: skip
    result.update(neg_elbo=None, mi=None, active_units=None, iw_nll=None)
    if evaluate_args is not None:
        if not gaussian:
            raise PipelineError(f"{label}: --evaluate-args is for Gaussian latents (awd*, gavam*, vae_attn*); "
                                "discrete latents are evaluated with their prior (--prior-args)")
        eval_json = d / f"evaluate_{args.eval_subset}_{args.checkpoint}.json"
        if not eval_json.exists():
            argv = [args.data, "--path", str(checkpoint), "--split", args.eval_subset, "--batch-size", str(args.batch_size),
                    "--no-progress", *evaluate_args, "--json", str(eval_json) + ".part"]  # fmt: skip
            print(f"[{label}] davam-evaluate -> {d / 'evaluate.log'}", flush=True)
            secs = runner.run_function(_davam_evaluate, d / "evaluate.log", f"davam-evaluate for {label}", argv)
            write_json(eval_json, {"summary": read_json(str(eval_json) + ".part"), "seconds": secs, "argv": argv})
            Path(str(eval_json) + ".part").unlink()
        ev = read_json(eval_json)
        seconds["evaluate"] = ev["seconds"]
        summary = ev["summary"]
        result.update(
            neg_elbo=summary.get("neg_elbo", summary.get("nll_bound")), mi=summary.get("mi"),
            active_units=summary.get("active_units"), iw_nll=summary.get("iw_nll"),
        )  # fmt: skip
    epochs, updates = _epochs_updates(d / "train.log")
    result.update(epochs=epochs, updates=updates, seconds=seconds, dir=str(d))
    return result


def _davam_evaluate(argv):
    """Child process: ``davam-evaluate ARGV`` (its own one-line errors and exit status)."""
    from davam_plugin.cli import evaluate

    status = evaluate.main(argv)
    if status:
        sys.exit(status)


def use_log_x(values):
    return all(v > 0 for v in values) and max(values) / min(values) >= 4


PANELS = [  # (key, y label): drawn when some run of some series has the value
    ("rec", "Rec (nats/sentence)"),
    ("neg_elbo", "-ELBO (nats/sentence)"),
    ("kl_paper", "KL, paper convention\n(mean over positions)"),
    ("kl", "KL (sum over positions)"),
    ("mi", "MI (nats)"),
    ("active_units", "active units"),
    ("code_usage", "codes used"),
]


def draw(series, out):
    """``series``: [(label, sweep doc)], every doc of the same setting, one colour each."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    doc = series[0][1]

    def points(d, key):
        runs = [(v, d["runs"][value_label(v)]) for v in d["values"]]
        return [(v, r[key]) for v, r in runs if r.get(key) is not None]

    panels = [(k, lab) for k, lab in PANELS if any(points(d, k) for _, d in series)]
    fig = Figure(figsize=(5.5, 1.2 + 2.1 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for i, (label, d) in enumerate(series):
            pts = points(d, key)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{i}", label=label)
            for x, y in pts:
                ax.annotate(f"{y:.4g}", (x, y), xytext=(0, 5), textcoords="offset points", ha="center",
                            fontsize="x-small", color=f"C{i}")  # fmt: skip
        ax.set_ylabel(ylabel, fontsize="small")
        ax.yaxis.get_major_formatter().set_useOffset(False)
        ax.margins(y=0.25)
        ax.grid(True, alpha=0.3)
    if len(series) > 1:
        axes[0].legend(fontsize="small")
    values = sorted({v for _, d in series for v in d["values"]})
    ax = axes[-1]
    if use_log_x(values):
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([value_label(v) for v in values])
    ax.set_xlabel(doc["setting"])
    note = "" if any(d["kl_available"] for _, d in series) else " (no KL: discrete latents need --prior-args)"
    axes[0].set_title(f"{doc['eval_subset']} split, {doc['checkpoint']} checkpoints{note}", fontsize="small")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=100)
    except ValueError as e:
        raise PipelineError(f"--out {out}: {e}") from None


def read_sweep_json(path, flag):
    """The dict in ``path``, an earlier ``--json`` of davam-sweep; PipelineError naming ``flag``
    if it cannot be read or is not one (a sweep JSON has ``values`` and a ``runs`` dict)."""
    try:
        doc = read_json(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"{flag}: cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), dict) or "values" not in doc:
        raise PipelineError(f"{flag}: {path} is not a davam-sweep JSON")
    return doc


def read_compare(specs, setting):
    """[(label, doc)] of ``--compare LABEL=JSON`` (checked: a sweep JSON of the same setting)."""
    series = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise PipelineError(f"--compare {spec!r}: give LABEL=JSON, e.g. uniform=sweeps/r_uniform/sweep.json")
        doc = read_sweep_json(path, f"--compare {spec}")
        if doc.get("setting") != setting:
            raise PipelineError(f"--compare {spec}: that sweep varies {doc.get('setting')}, this one {setting}")
        series.append((label, doc))
    return series


def read_reuse(path, data, args, train_args, prior_args, evaluate_args):
    """{value label: entry} of ``--reuse-json PATH``, an earlier ``--json`` of the same sweep:
    PipelineError unless it is one and was made with the same data, setting, arguments, split
    and checkpoint (paths compared as given, but for DATA, compared resolved). Each entry gets
    ``reused_from`` (PATH, or the file it was first reused from)."""
    flag = f"--reuse-json {path}"
    doc = read_sweep_json(path, "--reuse-json")
    if Path(str(doc.get("data"))).resolve() != data.resolve():
        raise PipelineError(f"{flag}: that sweep trained on {doc.get('data')}, this one on {data}")
    for name, mine in [("--setting", args.setting), ("--prior-args", prior_args), ("--evaluate-args", evaluate_args),
                       ("--eval-subset", args.eval_subset), ("--checkpoint", args.checkpoint)]:  # fmt: skip
        theirs = doc.get(name[2:].replace("-", "_"))  # the JSON's key for the flag
        if theirs != mine:
            raise PipelineError(f"{flag}: that sweep had {name} {theirs!r}, this one {mine!r}")
    old = doc.get("train_args")
    if old != train_args:
        old = old if isinstance(old, list) else []
        i = next((i for i, (a, b) in enumerate(zip(old, train_args, strict=False)) if a != b), min(len(old), len(train_args)))
        theirs_at = " ".join(map(str, old[i : i + 2])) or "(nothing)"
        ours_at = " ".join(map(str, train_args[i : i + 2])) or "(nothing)"
        raise PipelineError(
            f"{flag}: that sweep had other fairseq-train arguments (argument {i + 1}: {theirs_at!r} there, {ours_at!r} here)"
        )
    return {str(k): {**r, "reused_from": r.get("reused_from") or str(path)} for k, r in doc["runs"].items()}


def extra_args(text, flag, reserved):
    """The argument list in ``flag``'s quoted string (None if not given); PipelineError if it does
    not split or passes one of the ``reserved`` flags, which the sweep sets."""
    if text is None:
        return None
    try:
        args = shlex.split(text)
    except ValueError as e:
        raise PipelineError(f"{flag} {text!r}: {e}") from None
    for reserved_flag in reserved:
        if reserved_flag in args:
            raise PipelineError(f"{flag}: do not pass {reserved_flag}, the sweep sets it")
    return args


def run(args, train_args):
    values = number_list(args.values, "--values")
    data = Path(args.data)
    if not (data / "dict.txt").is_file():
        raise PipelineError(f"DATA {data}: no dict.txt there (give a fairseq-preprocess --only-source directory)")
    if args.batch_size < 1:
        raise PipelineError(f"--batch-size must be >= 1, got {args.batch_size}")
    prior_args = extra_args(args.prior_args, "--prior-args", ("--save-dir", "--log-format", "--davam-path", "--task"))
    evaluate_args = extra_args(args.evaluate_args, "--evaluate-args", ("--path", "--split", "--json", "--batch-size"))
    compare = read_compare(args.compare, args.setting)
    ns = check_setting(str(data), train_args, args.setting, values)
    out = Path(args.out) if args.out else Path(args.save_root) / "sweep.png"
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    if json_path.absolute() == out.absolute():
        raise PipelineError(f"--out {out} and the JSON would be the same file (give --out FIG.png or --json PATH)")
    reuse = read_reuse(args.reuse_json, data, args, train_args, prior_args, evaluate_args) if args.reuse_json else {}
    Path(args.save_root).mkdir(parents=True, exist_ok=True)
    runs = {}
    for value in values:
        key, d = value_label(value), run_dir(args.save_root, args.setting, value)
        if key in reuse and not d.exists():
            print(f"[{args.setting} {key}] no {d}: taken from --reuse-json {args.reuse_json}", flush=True)
            runs[key] = reuse[key]
        else:
            runs[key] = run_value(args, ns, train_args, prior_args, value, evaluate_args)
    doc = {
        "setting": args.setting,
        "values": values,
        "data": str(data),
        "eval_subset": args.eval_subset,
        "checkpoint": args.checkpoint,
        "train_args": train_args,
        "prior_args": prior_args,
        "evaluate_args": evaluate_args,
        "log_x": use_log_x(values),
        "kl_available": any(r["kl"] is not None for r in runs.values()),
        "conventions": {
            "rec": "reconstruction NLL per sentence, nats, summed over words + EOS (criterion 'rec')",
            "kl": "KL per sentence, nats, summed over the latent positions (the bound's KL); discrete latents: "
            "the stage-two prior's NLL of the posterior codes incl. the end symbol",
            "kl_paper": "the same per-position terms averaged over the positions of each sentence, then over "
            "sentences (the DAVAM authors' KL)",
            "neg_elbo, mi, active_units, iw_nll": "davam-evaluate's (--evaluate-args): rec + KL per sentence, "
            "the aggregate-posterior mutual information I(x; z), units with Cov_x(E[z|x]) > 0.01, the "
            "importance-weighted NLL (nats per sentence)",
            "seconds": "wall-clock seconds of each stage (train: the invocation that finished it)",
        },
        "runs": runs,
    }
    label = args.label or Path(args.save_root).resolve().name
    draw([(label, doc), *compare], out)
    write_json(json_path, doc)
    rows = [
        [value_label(v), fmt(r["rec"]), fmt(r["neg_elbo"]), fmt(r["kl_paper"]), fmt(r["kl"]), fmt(r["mi"]),
         fmt(r["commitment"]), fmt(r["code_usage"], 0), r["epochs"], r["updates"], f"{sum(r['seconds'].values()):.0f}"]
        for v, r in zip(values, runs.values(), strict=True)
    ]  # fmt: skip
    header = [args.setting, "Rec", "-ELBO", "KL (paper)", "KL (sum)", "MI", "commitment", "codes", "epochs", "updates",
              "seconds"]  # fmt: skip
    print(markdown_table(header, rows))
    print(f"wrote {out} and {json_path}")
    return doc


def main(argv=None):
    """Console script ``davam-sweep``: returns 0, or 2 after one error line on stderr."""
    own, train_args = split_argv(argv)
    parser = build_parser()
    args = parser.parse_args(own)
    def body():
        if not train_args:
            raise PipelineError("give the fairseq-train arguments after -- (task, arch, criterion, optimizer, budget)")
        run(args, train_args)

    return exit_status(PROG, body, (PipelineError, runner.ToolError))


if __name__ == "__main__":
    sys.exit(main())
