#!/usr/bin/env python3
"""Write results/<row>.json and results/<row>.png for one reproduction row from its run
directory (logs, commands, evaluation JSON), finished or not.

    python examples/reproduce/results.py davam_ptb_k512 [--runs ../runs] [--out results]
    python examples/reproduce/results.py lstm_lm_ptb      # the LM baseline -> results/lstm_lm_ptb.json
    python examples/reproduce/results.py davam_ptb_k512_long   # stage one continued (davam_ptb_long.sh):
                                          # its test Rec comes from fairseq-validate's test.log
                                          # (as every DAVAM row's does until its full evaluation)
    python examples/reproduce/results.py davam_ptb_k512 --replace   # overwrite a JSON of a run that
                                          # got further (see below)
    python examples/reproduce/results.py --epochs davam_ptb_k512_fast [--against davam_ptb_k512]
                                          # a row's validation curves from its JSON as a markdown
                                          # table, one line per epoch (see epoch_table)
    python examples/reproduce/results.py --compare davam_ptb_k512_fast davam_ptb_k512_long \
        --figure results/davam_ptb_recipes.png [--metrics rec,code_usage]
                                          # several rows' validation curves on one figure (and
                                          # the JSON behind it), from their JSONs
    python examples/reproduce/results.py davam_ptb_k512 --lost "the machine change of 2026-12-05"
                                          # its run directory was lost before it finished: mark
                                          # the committed JSON as the record of how far it got
    python examples/reproduce/results.py --table [--write README.md]
                                          # the reproduction table from results/*.json and, below
                                          # it, whether the AWD paper's ordering holds on our test
                                          # numbers (with --write: replaces the README's table
                                          # between its markers)

JSON: the evaluation JSON (when the row's evaluation has run; for DAVAM, until then stage one's
test Rec from fairseq-validate's test.log, also kept as stage1_test with the epoch of the weights
it scored) plus epochs (of the last
validation), epochs_completed, updates,
train_hours (training time, validation excluded, pauses of the process excluded: see
training_hours; train_hours_logged is fairseq's raw sum, train_hours_paused_excluded the difference),
threads, precision, seed, the commands, the code that trained it (commit: the last commit
the stages logged when they started or resumed, commits: all of them, commit_source: how it
is known; see provenance), the per-epoch validation curves, the
learning-rate decays of davam_plateau (lr_decays: after which epoch, the new rate; dashed on the PNG), status
("finished" once the recipe's last stage is done, else the stage it is in) and, for DAVAM,
stage two (prior_epochs, prior_updates, prior_train_hours, prior_precision, the prior's
per-epoch validation NLL of the codes in nats per sentence) and the samples' diversity and
fluency JSONs. PNG: validation curves per epoch (DAVAM: Rec, commitment, codes used, the decoder's
attention entropy per target token where the log has it (uniform attention dotted), the
information the codes carry measured against a plain LSTM LM of the same size, LM valid NLL -
Rec, nats per sentence, and the prior's validation NLL per stage-two epoch; AWD: -ELBO, Rec,
KL), the paper's value as a dotted line where it exists. The LM
baseline comes from its run log (../runs/lstm_lm_ptb) or, when that directory is gone, from
the committed results/lstm_lm_ptb.json; the row's JSON names which (lm_baseline_source).

A row's JSON that records a run further along (more updates; for the LM, more epochs) than the
unfinished run now in --runs is kept and the command fails with one line: after a machine
change lost a run and its row started again, the new run must not overwrite the record of the
old one until it finishes (a finished run replaces it; so does --replace). Such a record says
so in its status ("lost in STAGE: REASON", set by --lost) and in the table ("run lost while ...").
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from davam_plugin.cli import training_logs as tl
from davam_plugin.cli.plot import draw

PAPER = {  # the paper's value of the plotted validation metric (test-set numbers; see docs/results.md)
    "davam_ptb_k512": {"rec": (60.16, "paper test Rec")},
    "davam_ptb_k512_fast": {"rec": (60.16, "paper test Rec")},
    "davam_ptb_k512_earlydecay": {"rec": (60.16, "paper test Rec")},
    "davam_ptb_k512_deadcode": {"rec": (60.16, "paper test Rec")},
    "davam_ptb_k512_long": {"rec": (60.16, "paper test Rec")},
    "davam_ptb_authors_code": {"rec": (60.16, "paper test Rec")},
    "awd_ptb_none": {"neg_elbo": (102.6, "paper -ELBO"), "kl": (1.1, "paper KL")},
    "awd_ptb_uniform": {"neg_elbo": (101.4, "paper -ELBO"), "kl": (5.1, "paper KL")},
    "awd_ptb_adversarial": {"neg_elbo": (99.7, "paper -ELBO"), "kl": (5.1, "paper KL")},
}
SEED_SUFFIX = re.compile(r"_seed\d+$")  # another seed's row (awd_ptb.sh: awd_ptb_none_seed2) has its paper row's lines


def paper_lines(row):
    return PAPER.get(SEED_SUFFIX.sub("", row), {})


# rows of the reproduction table: (row, the paper's test numbers, where they are)
AWD_TABLE_ROWS = [
    ("awd_ptb_none", "-ELBO 102.6, KL 1.1, MI 0.8", "row 5 of Table 5 (AWD)"),
    ("awd_ptb_uniform", "-ELBO 101.4, KL 5.1, MI 4.2 (R=0.4)", "row 6 of Table 5 (AWD)"),
    ("awd_ptb_adversarial", "-ELBO 99.7, KL 5.1, MI 4.3 (R=0.2)", "row 7 of Table 5 (AWD)"),
]
TABLE_ROWS = [
    ("davam_ptb_k512", "Rec 60.16, KL 3.12, PPL 17.94", "row 11 of Table II (DAVAM)"),
    ("davam_ptb_k512_fast", "Rec 60.16, KL 3.12, PPL 17.94", "row 11 of Table II (DAVAM)"),
    ("davam_ptb_k512_earlydecay", "Rec 60.16", "row 11 of Table II (DAVAM); a superseded faster recipe"),
    ("davam_ptb_k512_deadcode", "Rec 60.16", "row 11 of Table II (DAVAM); a rejected faster recipe"),
    ("davam_ptb_k512_long", "Rec 60.16", "row 11 of Table II (DAVAM); stage one only"),
    ("davam_ptb_authors_code", "Rec 60.16", "row 11 of Table II (DAVAM); the authors' code, stage one only"),
    *AWD_TABLE_ROWS,
    # the second seed of each AWD mode (SEED=2 awd_ptb.sh MODE: the same recipe in a row of its own)
    *((f"{row}_seed2", paper, f"{where}; seed 2") for row, paper, where in AWD_TABLE_ROWS),
    ("lstm_lm_ptb", "PPL 100.47", "row 1 of Table II (DAVAM)"),
]
# each recipe's stages in order (run_stage names, examples/reproduce/common.sh); a row is
# finished when the last one is done
STAGES = {
    "davam": ("stage1", "test", "stage2", "eval", "samples", "diversity", "fluency"),
    "awd": ("train", "eval"),
}
# rows whose recipe has other stages (davam_ptb_long.sh: stage one continued, its test Rec;
# the fast recipe: the authors' warm-up first; the authors' code: stage one, tested at its end)
ROW_STAGES = {"davam_ptb_k512_long": ("stage1", "test"), "davam_ptb_k512_fast": ("warmup",) + STAGES["davam"],
              "davam_ptb_authors_code": ("stage1",)}
STAGE_LABELS = {"warmup": "training", "stage1": "training", "train": "training", "stage2": "training the prior", "eval": "evaluating", "test": "evaluating",
                "samples": "sampling", "diversity": "sampling", "fluency": "sampling"}
TABLE_START = "<!-- reproduction-table: written by examples/reproduce/results.py --table --write README.md -->"
TABLE_END = "<!-- reproduction-table: end -->"


def _n(count, noun):
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _trained(r):
    hours, epochs = r.get("train_hours"), r.get("epochs_completed", r.get("epochs"))
    updates = f", {r['updates']:,} updates" if r.get("updates") else ""
    cell = f"{_n(epochs, 'epoch')}{updates}, {hours:.2f} h ({r.get('precision', 'fp32')}, {_n(r.get('threads', 1), 'thread')})"
    if r.get("prior_epochs"):
        curve = r["prior_valid_curve"]
        nll = curve["nll_per_sentence"]
        best = min(range(len(nll)), key=nll.__getitem__)
        cell += (f"; prior {_n(r['prior_epochs'], 'epoch')}, {r['prior_train_hours']:.2f} h ({r['prior_precision']}), "
                 f"valid NLL {nll[-1]:.2f}")  # fmt: skip
        if nll[best] < nll[-1]:  # the prior's checkpoint_best.pt is that epoch's: say so
            cell += f" (best {nll[best]:.2f}, epoch {curve['epoch'][best]})"
    return cell


def _validation(r):
    if r["row"] == "lstm_lm_ptb":
        ppl = 2 ** r["valid_bits_per_token"]  # fairseq's base-2 loss per token
        return f"NLL {r['valid_nll_per_sentence']:.2f}, PPL {ppl:.1f} (best, epoch {r['best_epoch']})"
    v = {m: c["value"][-1] for m, c in r["valid_curves"].items()}
    if "commitment" in v:
        cells = [f"Rec {v['rec']:.2f}{_best_so_far(r['valid_curves']['rec'])}", f"{v['code_usage']:.0f} codes"]
        if "info_vs_lm" in v:
            cells.append(f"LM NLL - Rec {v['info_vs_lm']:+.2f}")
        return ", ".join(cells)
    return (f"-ELBO {v['neg_elbo']:.2f}{_best_so_far(r['valid_curves']['neg_elbo'])}, Rec {v['rec']:.2f}, "
            f"KL {v['kl']:.2f}")


def held_before(run):
    """The stage before which a row's recipe stopped because RUN/hold_before named it (RUN/held,
    examples/reproduce/common.sh), or None."""
    held, hold = run / "held", run / "hold_before"
    if not (held.is_file() and hold.is_file()):
        return None
    stage = held.read_text().split()[:1]
    return stage[0] if stage and stage == hold.read_text().split()[:1] else None


def _best_so_far(curve):
    """" (best B, epoch E)" when the last validation of a curve (lower is better) is not its
    best, else "": a row whose last epoch was a bad one still shows how far it got."""
    values = curve["value"]
    best = min(range(len(values)), key=values.__getitem__)
    if round(values[best], 2) >= round(values[-1], 2):
        return ""
    return f" (best {values[best]:.2f}, epoch {curve['epoch'][best]})"


def _test(r):
    e = r.get("evaluation")
    if not e:
        return "-"
    if e.get("tool") in ("fairseq-validate", "authors_davam.py"):  # stage one alone: no prior, so no KL or PPL
        # a row whose recipe goes on to the prior gets them later; the others never do
        later = r.get("stage") in STAGES["davam"][STAGES["davam"].index("stage2"):]
        weights = f", epoch {e['checkpoint']['epoch']}'s weights" if e.get("checkpoint") else ""
        return (f"Rec {e['rec']:.2f}, commitment {e['commitment']:.2f}, {e['code_usage']:.0f} codes "
                + (f"(stage one{weights}; KL and PPL once the prior is trained)" if later
                   else f"(stage one only{weights}: no prior, so no KL or PPL)"))
    if "kl_paper" in e and "iw_nll" not in e:
        cell = (f"Rec {e['rec']:.2f}, KL {e['kl_paper']:.2f} (paper conv.) / {e['kl']:.2f} (sum), "
                f"PPL {e['ppl_paper']:.2f} (paper conv.) / {e['ppl_bound']:.2f} (bound)")
        d, f = r.get("diversity"), r.get("fluency")
        if d:
            cell += (f"; {d['sentences']} samples: Ent {d['ent']:.2f}, Dist-1 {d['dist_1']:.3f}, "
                     f"Dist-2 {d['dist_2']:.3f}")
            if f:
                cell += f", LM PPL {f['overall']['ppl']:.1f}"
        return cell
    return (f"-ELBO {e['neg_elbo']:.2f}, KL {e['kl']:.2f}, MI {e['mi']:.2f}, AU {e['active_units']}/{e['latent_dim']}, "
            f"IW-NLL {e['iw_nll']:.2f} (S={e['iw_samples']})")


def reproduction_table(out):
    """The markdown table of the reproduction rows from the JSONs under ``out``."""
    lines = [
        "| row | paper (test set) | status | trained | ours: last validation | ours: test set |",
        "|---|---|---|---|---|---|",
    ]
    for row, paper, where in TABLE_ROWS:
        path = out / f"{row}.json"
        cells = [f"`{row}`", f"{paper}: {where}"]
        if not path.is_file():
            cells += ["no results yet", "-", "-", "-"]
        else:
            r = json.loads(path.read_text())
            status = "finished" if r["status"] == "finished" else STAGE_LABELS.get(r.get("stage"), "training")
            held_at = "its prior" if r.get("stage") == "stage2" else r.get("stage")  # a stage held before
            if r["status"].startswith("lost before"):  # held there when it was lost
                status = f"run lost before {held_at} (record)"
            elif r["status"].startswith("lost"):
                status = f"run lost while {status} (record)"
            elif r["status"].startswith("stopped"):
                status = f"stopped while {status}"
            elif r["status"].startswith("held"):
                status = f"held before {held_at}"
            link = f"[{status}](results/{row}.json)" + (
                f", [curves](results/{row}.png)" if (out / f"{row}.png").is_file() else "")
            cells += [link, _trained(r), _validation(r), _test(r)]
        lines.append("| " + " | ".join(cells) + " |")
    # seed 1's line always (pending until its rows are evaluated), another seed's once it has a row
    seeds = sorted({int(m.group(1)) for p in out.glob("awd_ptb_*_seed*.json")
                    if (m := re.fullmatch(r"awd_ptb_(?:none|uniform|adversarial)_seed(\d+)\.json", p.name))} - {1})
    return "\n".join(lines) + "\n\n" + "\n".join(awd_ordering(out, seed) for seed in [1, *seeds])


EPOCH_COLUMNS = {  # curve -> (column heading, digits)
    "rec": ("valid Rec", 2), "neg_elbo": ("valid -ELBO", 2), "kl": ("KL", 2), "commitment": ("commitment", 2),
    "code_usage": ("codes in use", 0), "attn_entropy": ("attention entropy", 2), "attn_v_norm": ("`v` norm", 2),
    "info_vs_lm": ("LM NLL - Rec", 2),
}  # fmt: skip


def _main_curve(curves):
    return "neg_elbo" if "neg_elbo" in curves else "rec" if "rec" in curves else next(iter(curves))


def _training_command(r):
    cmds = r.get("commands") or {}
    return cmds.get("stage1") or cmds.get("train") or ""


def _start_lr(cmd):
    """The learning rate a training command starts at (--lr X or optimization.lr=[X]; the last
    one given, as fairseq's argparse keeps it), or None."""
    found = re.findall(r"(?:--lr |optimization\.lr=\[?)([0-9.eE+-]+)", cmd)
    return float(found[-1]) if found else None


def _warm_up(r):
    """(last epoch, learning rate) of a row's warm-up part (the fast DAVAM recipe's warmup
    command: its last --max-epoch and --lr), or (0, None) for a row without one."""
    cmd = (r.get("commands") or {}).get("warmup")
    epochs = re.findall(r"--max-epoch (\d+)", cmd or "")
    return (int(epochs[-1]), _start_lr(cmd)) if epochs else (0, None)


def committed_row(out, name):
    """results/NAME.json, or a one-line exit naming the command that writes it."""
    r = previous_json(out, name)
    if r is None:
        sys.exit(f"error: {out / (name + '.json')} not found: write it first (results.py {name})")
    return r


def epoch_table(out, row, against=None):
    """A row's per-epoch validation curves (results/ROW.json) as a markdown table: one line per
    epoch with every curve the JSON has (the last validation of each epoch), the best value of
    the main curve (-ELBO for AWD, Rec for DAVAM) in bold, and, for rows trained with
    davam_plateau, the learning rate each epoch trained at (the starting --lr, halved after each
    recorded decay; a warm-up part's epochs at its own --lr). ``against`` adds another row's main
    curve as a last column."""

    r = committed_row(out, row)
    curves = r.get("valid_curves") or {}
    if not curves:
        sys.exit(f"error: {out / (row + '.json')} has no validation curves")
    main = _main_curve(curves)
    names = [main] + [n for n in EPOCH_COLUMNS if n in curves and n != main] + [n for n in curves if n not in EPOCH_COLUMNS and n != main]
    columns = {n: EPOCH_COLUMNS.get(n, (n, 2)) for n in names}  # heading, digits
    values = {n: dict(zip(curves[n]["epoch"], curves[n]["value"], strict=True)) for n in names}
    other = None
    if against:
        o = committed_row(out, against)
        oc = o.get("valid_curves") or {}
        if _main_curve(oc) != main:
            sys.exit(f"error: --against {against}: its main curve is {_main_curve(oc)}, {row}'s is {main}")
        other = dict(zip(oc[main]["epoch"], oc[main]["value"], strict=True))
    cmd = _training_command(r)
    lr0, decays = _start_lr(cmd), {d["after_epoch"]: d["lr"] for d in r.get("lr_decays") or []}
    show_lr = lr0 is not None and "davam_plateau" in cmd
    heads = ["epoch"] + (["lr"] if show_lr else []) + [columns[n][0] for n in names]
    if other is not None:
        heads.append(f"{columns[main][0]} of `{against}`")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    best = min(values[main].values())
    lr, (warm_end, warm_lr) = lr0, _warm_up(r)
    for epoch in sorted({e for v in values.values() for e in v}):
        cells = [str(epoch)] + ([f"{warm_lr if epoch <= warm_end else lr:g}"] if show_lr else [])
        for n in names:
            v = values[n].get(epoch)
            cell = "" if v is None else f"{v:.{columns[n][1]}f}"
            cells.append(f"**{cell}**" if n == main and v == best else cell)
        if other is not None:
            cells.append("" if epoch not in other else f"{other[epoch]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
        if show_lr and epoch in decays:
            lr = decays[epoch]
    return "\n".join(lines) + "\n"


def first_epoch_at_or_below(curve, value):
    """The first epoch of a per-epoch curve ({"epoch": [...], "value": [...]}) whose value is at or
    below VALUE, or None: when a run reached a level (lower is better)."""
    return next((e for e, v in zip(curve["epoch"], curve["value"], strict=True) if v <= value), None)


def reaches(curves):
    """For curves {row: curve} of one metric (lower is better): each row's best {"value", "epoch"}
    and, for each pair, the first epoch at which one row came at or below the other's best:
    {"best": {row: ...}, "reaches": {row: {other: epoch or None}}}. The issue's speed question
    ("the same final Rec in fewer than half the epochs") is reaches[fast][slow] / best[slow]."""
    best = {}
    for row, c in curves.items():
        i = min(range(len(c["value"])), key=c["value"].__getitem__)
        best[row] = {"value": c["value"][i], "epoch": c["epoch"][i]}
    return {"best": best, "reaches": {row: {other: first_epoch_at_or_below(c, best[other]["value"])
                                            for other in curves if other != row} for row, c in curves.items()}}


def compare_figure(out, rows, metrics, figure):
    """Several rows' per-epoch validation curves (results/ROW.json) on one figure, one subplot
    per metric (default: the first row's main curve, Rec or -ELBO), the paper's value of the
    first row dotted; the data behind it (with each row's halvings, and for the first metric
    each row's best and the epoch at which each other row reached it: ``reaches``) beside the
    figure (FIG with .json). Returns the JSON written."""
    loaded = {}
    for row in rows:
        r = committed_row(out, row)
        if not r.get("valid_curves"):
            sys.exit(f"error: {out / (row + '.json')} has no validation curves")
        loaded[row] = r
    metrics = metrics or [_main_curve(loaded[rows[0]]["valid_curves"])]
    for row, r in loaded.items():
        missing = [m for m in metrics if m not in r["valid_curves"]]
        if missing:
            sys.exit(f"error: {out / (row + '.json')} has no {', '.join(missing)} curve "
                     f"(it has {', '.join(r['valid_curves'])})")
    data = {row: {"splits": {"valid": {m: {"x": r["valid_curves"][m]["epoch"], "y": r["valid_curves"][m]["value"]}
                                       for m in metrics}}} for row, r in loaded.items()}  # fmt: skip
    hlines = {m: [{"value": v, "label": lab}] for m, (v, lab) in paper_lines(rows[0]).items() if m in metrics}
    figure = Path(figure)
    draw(data, metrics, ["valid"], "epoch", hlines, figure, title="validation, per epoch")
    behind = {
        "rows": {row: {"status": r.get("status"), "epochs": r.get("epochs"), "train_hours": r.get("train_hours"),
                       "lr_decays": r.get("lr_decays") or [],
                       "curves": {m: r["valid_curves"][m] for m in metrics}} for row, r in loaded.items()},
        "source": f"the valid_curves of {', '.join(f'results/{row}.json' for row in rows)} (results.py ROW)",
        "paper": {m: ref[0]["value"] for m, ref in hlines.items()},
        "metric_reached": metrics[0],
        **reaches({row: r["valid_curves"][metrics[0]] for row, r in loaded.items()}),
        "conventions": "nats per sentence; tokens = words + EOS; validation-set values, the last of each epoch",
    }
    figure.with_suffix(".json").write_text(json.dumps(behind, indent=1) + "\n")
    return behind


AWD_MODES = ("none", "uniform", "adversarial")


def _verdict(ok):
    return "holds" if ok else "does not hold"


def awd_ordering(out, seed=1):
    """One markdown line: does the AWD paper's ordering hold on our test evaluations of one seed
    (the rows awd_ptb_MODE, or awd_ptb_MODE_seedN)? Its claim (Table 5): adversarial -ELBO at
    most uniform's, with higher KL and MI, and both above the unregularised VAE on MI. Each part
    is checked as soon as the rows it compares have a test evaluation (uniform against none
    before adversarial's, say), the rest marked pending; says so when the evaluated rows'
    training budgets (epochs) differ, which would make the comparison unfair."""
    suffix = "" if seed == 1 else f"_seed{seed}"
    head = ("**AWD ordering** (the paper: `adversarial` -ELBO at most `uniform`'s, with higher KL and MI; "
            f"both above `none` on MI), our test set, seed {seed}: ")
    rows = {}
    for mode in AWD_MODES:
        path = out / f"awd_ptb_{mode}{suffix}.json"
        r = json.loads(path.read_text()) if path.is_file() else {}
        if r.get("evaluation"):
            rows[mode] = r
    missing = [m for m in AWD_MODES if m not in rows]
    e = {m: r["evaluation"] for m, r in rows.items()}
    parts = []
    if "adversarial" in e and "uniform" in e:
        adv, uni = e["adversarial"], e["uniform"]
        parts += [
            f"-ELBO {adv['neg_elbo']:.2f} vs {uni['neg_elbo']:.2f}: {_verdict(adv['neg_elbo'] <= uni['neg_elbo'])}",
            f"KL {adv['kl']:.2f} vs {uni['kl']:.2f}: {_verdict(adv['kl'] > uni['kl'])}",
            f"MI {adv['mi']:.2f} vs {uni['mi']:.2f}: {_verdict(adv['mi'] > uni['mi'])}",
        ]
    dropout = [m for m in ("adversarial", "uniform") if m in e]
    if "none" in e and len(dropout) == 2:
        low = min(e[m]["mi"] for m in dropout)
        parts.append(f"MI of both above `none`'s {e['none']['mi']:.2f}: {_verdict(low > e['none']['mi'])}")
    elif "none" in e and dropout:
        m = dropout[0]
        parts.append(f"MI of `{m}` above `none`'s: {e[m]['mi']:.2f} vs {e['none']['mi']:.2f}: "
                     f"{_verdict(e[m]['mi'] > e['none']['mi'])}")  # fmt: skip
    pending = "no test evaluation yet of " + ", ".join(f"`{m}`" for m in missing)
    if not parts:
        return head + f"pending ({pending}).\n"
    epochs = {m: rows[m].get("epochs_completed", rows[m].get("epochs")) for m in rows}
    note = ""
    if len(set(epochs.values())) > 1:
        note = " (budgets differ: " + ", ".join(f"`{m}` {n} epochs" for m, n in epochs.items()) + ")"
    rest = f"; the rest pending ({pending})" if missing else ""
    return head + "; ".join(parts) + note + rest + ".\n"


def write_table(readme, table):
    """Replace the text between the README's table markers by ``table``."""
    text = readme.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        sys.exit(f"error: {readme} has no reproduction-table markers ({TABLE_START!r} ... {TABLE_END!r})")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    tmp = readme.with_name(f".{readme.name}.tmp")
    tmp.write_text(head + TABLE_START + "\n" + table + TABLE_END + tail)
    os.replace(tmp, readme)


def read_curves(log, *continued):
    """(records, validation points, end-of-epoch training points, learning-rate decays) of a
    fairseq-train log, read once.

    continued: the logs of later parts of the same training, in order, each started from the
    last checkpoint of the part before with --reset-optimizer (davam_ptb.sh's fast recipe:
    warmup.log, then stage1.log with another optimizer). fairseq counts updates from 0 again
    after that reset; their records join the first log's with the update count carried on
    from the last update of the part before (the epochs go on by themselves)."""
    lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    records = tl.parse_lines(lines)
    for later in continued:
        offset = max((r.num_updates or 0 for r in records), default=0)
        more = Path(later).read_text(encoding="utf-8", errors="replace").splitlines()
        records += [r if r.num_updates is None else dataclasses.replace(r, num_updates=r.num_updates + offset)
                    for r in tl.parse_lines(more)]  # fmt: skip
        lines += more
    valid, train = tl.curve_points(records, "valid", "epoch"), tl.curve_points(records, "train", "epoch")
    return records, valid, train, tl.lr_decays(lines)


def valid_tokens_per_sentence(data):
    """Tokens (words + EOS) per sentence of the binarized validation split."""
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(os.path.join(data, "dict.txt"))
    dataset = data_utils.load_indexed_dataset(os.path.join(data, "valid"), d)
    if dataset is None:
        sys.exit(f"error: {data}/valid.bin not found: set --data to the binarized corpus")
    tokens, sentences = int(dataset.sizes.sum()), len(dataset)  # copied while the mmap is open
    del dataset
    return tokens / sentences


def lm_result(runs, data):
    """The lstm_lm_ptb baseline from its run log: per-epoch validation NLL in nats per sentence
    (fairseq logs base-2 loss per token: x ln 2 x tokens per sentence), best value and epoch."""
    log = runs / "lstm_lm_ptb" / "train.log"
    if not log.is_file():
        return None
    records, points, _, _ = read_curves(log)
    points = [(e, r) for e, r in points if "loss" in r.metrics]
    if not points:
        return None
    per_sentence = math.log(2) * valid_tokens_per_sentence(data)
    curve = [round(r.metrics["loss"] * per_sentence, 3) for _, r in points]
    best = min(range(len(curve)), key=curve.__getitem__)
    return {
        "valid_nll_per_sentence": curve[best],
        "valid_bits_per_token": points[best][1].metrics["loss"],
        "best_epoch": points[best][0],
        "epochs": points[-1][0],
        "train_hours": training_hours(records)[0],
        "valid_curve": {"epoch": [e for e, _ in points], "nll_per_sentence": curve},
        "log": str(log),
    }


def lm_baseline(runs, data, out):
    """(best valid NLL per sentence, epochs, source): from the run's log, or else from the
    committed results/lstm_lm_ptb.json (a run directory does not survive a machine change;
    the JSON names the commit and command that made it); None if neither exists."""
    result = lm_result(runs, data)
    if result is not None:
        return result["valid_nll_per_sentence"], result["epochs"], result["log"]
    saved = out / "lstm_lm_ptb.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        source = f"{saved} (commit {result['commit'][:7]}, {result['status']} at epoch {result['epochs']})"
        return result["valid_nll_per_sentence"], result["epochs"], source
    return None


PAUSE_FACTOR = 3.0  # a logging interval over this many times the median one was a pause


def training_hours(records):
    """(hours, logged hours, paused hours) of the records of a fairseq-train log.

    fairseq's train_wall is wall-clock time, so a run paused with SIGSTOP (to free the cores
    for a test suite) counts the pause as training. The estimate takes the train_inner records
    (one per --log-interval updates, the last occurrence of an update kept when a resumed
    run repeats it), counts an interval longer than PAUSE_FACTOR x the median interval time
    per update at that median, and scales the sum to all updates the log reached. Logged
    hours: the sum of the end-of-epoch train_wall (pauses included; restarted epochs only
    from the restart on)."""
    valid, train = tl.curve_points(records, "valid", "epoch"), tl.curve_points(records, "train", "epoch")
    logged = sum(r.metrics.get("train_wall", 0.0) for _, r in train) / 3600
    inner = [(u, r.metrics["train_wall"]) for u, r in tl.curve_points(records, "train", "update")
             if "train_wall" in r.metrics]  # fmt: skip
    if not inner:
        return round(logged, 3), round(logged, 3), 0.0
    sizes = [u - prev for (u, _), prev in zip(inner, [0] + [u for u, _ in inner[:-1]], strict=True)]
    rates = sorted(w / n for (_, w), n in zip(inner, sizes, strict=True))
    median = rates[len(rates) // 2]
    counted = [min(w, PAUSE_FACTOR * median * n) for (_, w), n in zip(inner, sizes, strict=True)]
    paused = sum(w for _, w in inner) - sum(counted)
    last = max([u for u, _ in inner] + [r.num_updates or 0 for _, r in valid + train])
    hours = sum(counted) * last / inner[-1][0] / 3600
    return round(hours, 3), round(logged, 3), round(paused / 3600, 3)


def precision_of(cmd_file):
    return "bf16-autocast" if "--bf16-autocast" in cmd_file.read_text() else "fp32"


def seed_of(cmd_file):
    """The seed a stage trained with: its command's --seed (common.seed= for fairseq-hydra-train;
    the last one given, as fairseq's argparse keeps it), else fairseq's default, 1."""
    seeds = re.findall(r"(?:^|\s)(?:--seed[ =]|common\.seed=)(\d+)(?=\s|$)", cmd_file.read_text())
    return int(seeds[-1]) if seeds else 1


def prior_curve(run):
    """DAVAM stage two from RUN/stage2.log: (epochs, validation NLL of the codes per sentence
    under the prior, updates, training hours, its rate's decays), or None before its first
    validation."""
    log = run / "stage2.log"
    if not log.is_file():
        return None
    records, valid, _, decays = read_curves(log)
    points = [(e, r) for e, r in valid if "nll_per_sentence" in r.metrics]
    if not points:
        return None
    return ([e for e, _ in points], [r.metrics["nll_per_sentence"] for _, r in points], points[-1][1].num_updates,
            training_hours(records)[0], decays)


def write_json(out, row, result):
    tmp = out / f".{row}.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out / f"{row}.json")


def git_head(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


CODE_LINE = re.compile(r"^\[[^\]]+\] (\S+): code (at commit ([0-9a-f]{40})( \(uncommitted changes\))?|unknown.*)$")


def provenance(run, repo, previous):
    """Which code trained the row: common.sh's run_stage writes "[time] STAGE: code at commit SHA"
    (plus " (uncommitted changes)") into each stage's log whenever the stage starts or resumes.
    Returns {"commit": the last one recorded, "commits": every distinct one, in order,
    "commit_source": ...}. A run older than this record has none: then the commit already in
    ``previous`` (the row's JSON as first written), else HEAD now, and commit_source says so."""
    seen, unrecorded = [], False
    for log in sorted(run.glob("*.log")):
        recorded = False
        for line in log.read_text(errors="replace").splitlines():
            m = CODE_LINE.match(line)
            if m:
                recorded = True
                version = m.group(3) + ("+uncommitted" if m.group(4) else "") if m.group(3) else "unknown"
                if version not in seen:
                    seen.append(version)
            elif not recorded and " | INFO | " in line:  # the tool ran before any record in this log
                unrecorded = True
    if seen:
        source = "recorded in the stage logs each time a stage started or resumed"
        if unrecorded:
            seen.insert(0, "unrecorded")
            source += "; 'unrecorded': part of the run predates the record"
        return {"commit": seen[-1], "commits": seen, "commit_source": source}
    # a JSON from before this record (no commit_source) or without one: keep its commit
    kept = previous and previous.get("commit_source", "not recorded").startswith("not recorded")
    commit = previous.get("commit") if kept else None
    commit = commit or git_head(repo)
    return {"commit": commit, "commits": [commit],
            "commit_source": "not recorded by the run (started before recipes logged it): "
            "the commit at which results.py wrote this file before that"}


def previous_json(out, row):
    path = out / f"{row}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def mark_lost(out, row, reason):
    """--lost: set the committed JSON's status to 'lost in STAGE: REASON'."""
    path = out / f"{row}.json"
    r = previous_json(out, row)
    if r is None:
        sys.exit(f"error: --lost: {path} not found or not JSON: only a committed result can be marked lost")
    if r.get("status") == "finished":
        sys.exit(f"error: --lost: {path} records a finished run; nothing was lost")
    if not reason.strip():
        sys.exit("error: --lost needs a reason (for example: the machine change of 2026-12-05)")
    where = "before" if r.get("status", "").startswith("held before") else "in"  # held there: it never ran it
    r["status"] = f"lost {where} {r.get('stage') or 'training'}: {reason.strip()}"
    write_json(out, row, r)
    print(f"wrote {path}: status '{r['status']}'")


def refuse_to_go_back(path, previous, key, now, finished, replace):
    """Keep a committed JSON that got further than the run now in ../runs: when a machine change
    lost a run and its row was started again, the new, unfinished run must not overwrite the
    record of the lost one (``previous[key]`` and ``now``: the progress of each, in updates or
    epochs; a finished run always replaces it, as does --replace)."""
    if replace or finished or previous is None or previous.get(key) is None or now >= previous[key]:
        return
    sys.exit(f"error: {path} holds a run further along ({previous[key]:,} {key}, "
             f"{previous.get('status', 'status unknown')}) than the unfinished one in the run directory "
             f"({now:,} {key}), such as a run lost with an earlier machine: it is kept; "
             "pass --replace to overwrite it")


def lm_main(args, repo, out):
    """results/lstm_lm_ptb.json: the baseline's best validation NLL, for the DAVAM rows."""
    run = Path(args.runs) / "lstm_lm_ptb"
    result = lm_result(Path(args.runs), args.data)
    if result is None:
        sys.exit(f"error: {run}/train.log has no validation record yet")
    cmd = run / "train.cmd"
    previous, finished = previous_json(out, "lstm_lm_ptb"), (run / "train.done").is_file()
    refuse_to_go_back(out / "lstm_lm_ptb.json", previous, "epochs", result["epochs"], finished, args.replace)
    result = {
        "row": "lstm_lm_ptb",
        "status": "finished" if finished else "training (interrupted or running)",
        **result,
        "precision": precision_of(cmd) if cmd.is_file() else "fp32",
        "threads": int(os.environ.get("THREADS", "1")),
        "seed": seed_of(cmd) if cmd.is_file() else None,
        "command": cmd.read_text().strip() if cmd.is_file() else None,
        **provenance(run, repo, previous),
        "conventions": "nats per sentence (fairseq's base-2 loss per token x ln 2 x tokens per sentence); "
        "tokens = words + EOS; validation set",
    }
    write_json(out, "lstm_lm_ptb", result)
    print(f"wrote {out / 'lstm_lm_ptb.json'}: best valid NLL {result['valid_nll_per_sentence']} nats per sentence "
          f"(epoch {result['best_epoch']} of {result['epochs']}), {result['train_hours']} h")


def validate_record(log, subset):
    """The metrics of the last ``fairseq-validate --valid-subset SUBSET --log-format json``
    record in ``log`` (``{"SUBSET_rec": "80.28", ...}``: no epoch, unlike training records),
    prefix removed, as numbers; None when the log or the record is missing."""
    if not log.is_file():
        return None
    found, prefix = None, subset + "_"
    for line in log.read_text(errors="replace").splitlines():
        obj = tl.parse_line(line)
        if obj and prefix + "rec" in obj:
            found = {k[len(prefix):]: float(v) for k, v in obj.items() if k.startswith(prefix)}
    return found


BEST_SAVE = re.compile(r"Saved checkpoint \S*checkpoint_best\.pt \(epoch (\d+) @ (\d+) updates, score ([-\d.]+)\)")


def best_checkpoint(*logs):
    """Which weights checkpoint_best.pt holds, from fairseq's last "Saved checkpoint
    .../checkpoint_best.pt (epoch E @ U updates, score S)" line in the logs (read in order):
    {"epoch", "updates" (as that log counts them), "score" (the --best-checkpoint-metric)}, or None."""
    found = None
    for log in logs:
        if log.is_file():
            for m in BEST_SAVE.finditer(log.read_text(errors="replace")):
                found = {"epoch": int(m.group(1)), "updates": int(m.group(2)), "score": float(m.group(3))}
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("row", nargs="?", help="the row (run directory under --runs); not with --table")
    p.add_argument("--table", action="store_true", help="print the reproduction table from the JSONs in --out")
    p.add_argument("--write", metavar="README", help="with --table: put the table between README's markers")
    p.add_argument("--epochs", metavar="ROW", help="print ROW's per-epoch validation curves from its JSON in --out "
                                                   "as a markdown table (not with a row or --table)")
    p.add_argument("--against", metavar="ROW", help="with --epochs: add ROW's main curve (Rec or -ELBO) as a column")
    p.add_argument("--compare", nargs="+", metavar="ROW",
                   help="draw these rows' validation curves from their JSONs in --out on one figure (--figure)")
    p.add_argument("--figure", metavar="FIG.png", help="with --compare: the figure (its data goes to FIG.json)")
    p.add_argument("--metrics", help="with --compare: comma-separated curves (default: the first row's Rec or -ELBO)")
    repo = Path(__file__).resolve().parents[2]
    # the defaults follow the recipes' environment (examples/reproduce/common.sh)
    p.add_argument("--runs", default=os.environ.get("RUNS") or str(repo.parent / "runs"), help="default: $RUNS or ../runs")
    p.add_argument("--data", default=os.environ.get("DATA") or str(repo.parent / "data-bin" / "ptb"),
                   help="default: $DATA or ../data-bin/ptb")
    p.add_argument("--out", default=os.environ.get("RESULTS") or str(repo / "results"), help="default: $RESULTS or results")
    p.add_argument("--replace", action="store_true",
                   help="overwrite the row's JSON even when it records a run further along than the unfinished "
                        "one in --runs (by default that JSON is kept and the command fails)")
    p.add_argument("--lost", metavar="REASON",
                   help="the row's run directory was lost before the run finished (for example with a machine): "
                        "mark its committed JSON as the record of how far it got, status 'lost in STAGE: REASON' ('lost before STAGE' for a row held there) "
                        "(nothing else in it changes; a new run replaces it as usual)")
    p.add_argument("--stopped", metavar="REASON",
                   help="the unfinished run was stopped on purpose: record it in the JSON's status as 'stopped in STAGE: "
                        "REASON' and in RUNS/ROW/stopped.txt, which status.sh shows (for example: the issue's rule, "
                        "its codes carry nothing after the warm-up)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.against and not args.epochs:
        p.error("--against needs --epochs")
    if (args.figure or args.metrics) and not args.compare:
        p.error("--figure and --metrics go with --compare")
    if args.compare:
        if args.row or args.table or args.epochs or args.write or args.stopped or args.replace:
            p.error("--compare takes no other row, --table, --epochs, --write, --stopped or --replace")
        if not args.figure:
            p.error("--compare needs --figure FIG.png")
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        metrics = [m for m in (args.metrics or "").split(",") if m]
        behind = compare_figure(out, args.compare, metrics, args.figure)
        print(f"wrote {args.figure} and {Path(args.figure).with_suffix('.json')}: "
              + ", ".join(f"{row} ({r['epochs']} epochs)" for row, r in behind["rows"].items()))
        m = behind["metric_reached"]
        for row, others in behind["reaches"].items():
            for other, epoch in others.items():
                b = behind["best"][other]
                when = (f"at epoch {epoch}: {epoch / b['epoch']:.0%} of the epochs" if epoch is not None
                        else f"not in its {behind['rows'][row]['epochs']} epochs")
                print(f"{row} reached {other}'s best valid {m}, {b['value']:.2f} (its epoch {b['epoch']}), {when}")
        return
    if args.epochs:
        if args.row or args.table or args.write or args.stopped or args.replace:
            p.error("--epochs takes no other row, --table, --write, --stopped or --replace")
        print(epoch_table(out, args.epochs, args.against), end="")
        return
    if args.table:
        if args.row or args.stopped:
            p.error("--table takes no row and no --stopped")
        table = reproduction_table(out)
        if args.write:
            write_table(Path(args.write), table)
            print(f"wrote the reproduction table into {args.write}")
        else:
            print(table, end="")
        return
    if not args.row:
        p.error("give a row, or --table")
    if args.lost is not None:
        if args.stopped or args.replace or args.write:
            p.error("--lost takes no --stopped, --replace or --write")
        return mark_lost(out, args.row, args.lost)
    if args.write:
        p.error("--write needs --table")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    if args.row == "lstm_lm_ptb" and args.stopped:
        p.error("--stopped is for the VAE rows, not lstm_lm_ptb")
    if args.row == "lstm_lm_ptb":
        return lm_main(args, repo, out)
    run = Path(args.runs) / args.row
    # DAVAM's stage one (the fast recipe: its warm-up until stage one starts), or AWD's training
    stage = next((name for name in ("stage1", "warmup") if (run / f"{name}.log").is_file()), "train")
    log = run / f"{stage}.log"
    if not log.is_file():
        sys.exit(f"error: {log} not found: has the row been started?")
    # the fast DAVAM recipe's stage one continues its warm-up (warmup.log) with another optimizer
    earlier = [run / "warmup.log"] if stage == "stage1" and (run / "warmup.log").is_file() else []
    records, valid, train, decays = read_curves(*earlier, log)
    if not valid:
        sys.exit(f"error: {log} has no validation record yet (wait for the end of the first epoch)")
    davam = "rec_plus_commitment" in valid[-1][1].metrics or "commitment" in valid[-1][1].metrics
    stages = ROW_STAGES.get(args.row) or STAGES["davam" if davam else "awd"]
    pending = [name for name in stages if not (run / f"{name}.done").is_file()]
    if args.stopped and not pending:
        sys.exit(f"error: --stopped: {args.row} has finished (every stage's .done file is in {run})")
    previous = previous_json(out, args.row)
    refuse_to_go_back(out / f"{args.row}.json", previous, "updates", valid[-1][1].num_updates, not pending, args.replace)
    metrics = ["rec", "commitment", "code_usage"] if davam else ["neg_elbo", "rec", "kl"]
    if davam and any("attn_entropy" in r.metrics for _, r in valid):
        metrics.append("attn_entropy")  # logged by runs started after it existed: maybe a partial curve
    if davam and any("attn_v_norm" in r.metrics for _, r in valid):
        metrics.append("attn_v_norm")  # the same (logged since 2026-12-04)
    curves = {m: tl.metric_series(valid, m) for m in metrics}
    lm = lm_baseline(Path(args.runs), args.data, out) if davam else None
    if lm is not None:
        xs, rec = curves["rec"]
        curves["info_vs_lm"] = (xs, [lm[0] - r for r in rec])
        metrics.append("info_vs_lm")
    data = {args.row: {"log": ", ".join(str(f) for f in earlier + [log]), "splits": {"valid": {m: {"x": x, "y": y} for m, (x, y) in curves.items()}}}}
    hlines = {m: [{"value": v, "label": lab}] for m, (v, lab) in paper_lines(args.row).items()}
    if lm is not None:
        hlines.setdefault("info_vs_lm", []).append({"value": 0.0, "label": "codes carry nothing"})
    uniform = [r.metrics["attn_entropy_uniform"] for _, r in valid if "attn_entropy_uniform" in r.metrics]
    if "attn_entropy" in metrics and uniform:
        hlines["attn_entropy"] = [{"value": uniform[-1], "label": "uniform attention"}]
    prior = prior_curve(run) if davam else None
    plotted = list(metrics)
    if prior:
        data[args.row]["splits"]["valid"]["prior_nll_per_sentence"] = {"x": prior[0], "y": prior[1]}
        plotted.append("prior_nll_per_sentence")
    title = f"{args.row} (validation, per epoch" + ("; prior: per stage-two epoch)" if prior else ")")
    # the decays dashed between the epoch that decided and the first at the new rate; the
    # prior's panel shows its own (its epochs are stage two's)
    def decay_lines(ds):
        return [{"value": d["after_epoch"] + 0.5, "label": f"lr {d['lr']:g}"} for d in ds]

    stage_one = decay_lines(decays)
    vlines = {m: stage_one for m in metrics}
    if prior:
        vlines["prior_nll_per_sentence"] = decay_lines(prior[4])
    draw(data, plotted, ["valid"], "epoch", hlines, out / f"{args.row}.png", title=title, vlines=vlines)
    last = valid[-1][1]
    hours = training_hours(records)
    if not pending:
        status = "finished"
    elif args.stopped:
        status = f"stopped in {pending[0]}: {args.stopped}"
    elif held_before(run) == pending[0]:  # the recipe stopped there on purpose (hold_before: common.sh)
        status = f"held before {pending[0]}: " + " ".join((run / "hold_before").read_text().split()[1:])
    else:
        status = f"{pending[0]} (interrupted or running)"
    result = {
        "row": args.row,
        "status": status,
        "stage": pending[0] if pending else None,
        "epochs": valid[-1][0],
        "epochs_completed": train[-1][0] if train else 0,  # AWD validates mid-epoch too
        "updates": last.num_updates,
        "train_hours": hours[0],
        "train_hours_logged": hours[1],
        "train_hours_paused_excluded": hours[2],
        "threads": int(os.environ.get("THREADS", "1")),
        "precision": precision_of(run / f"{stage}.cmd"),
        "seed": seed_of(run / f"{stage}.cmd"),
        "commands": {f.stem: f.read_text().strip() for f in sorted(run.glob("*.cmd"))},
        **provenance(run, repo, previous),
        "lm_baseline_valid_nll_per_sentence": None if lm is None else round(lm[0], 3),
        "lm_baseline_epochs": None if lm is None else lm[1],
        "lm_baseline_source": None if lm is None else lm[2],
        "valid_curves": {m: {"epoch": x, "value": y} for m, (x, y) in curves.items()},
        "lr_decays": decays,
        "last_valid": {k: v for k, v in last.metrics.items()},
        "conventions": "nats per sentence; tokens = words + EOS; curves are validation-set values per epoch",
    }
    if prior:
        result.update(prior_epochs=prior[0][-1], prior_updates=prior[2], prior_train_hours=prior[3],
                      prior_precision=precision_of(run / "stage2.cmd"),
                      prior_valid_curve={"epoch": prior[0], "nll_per_sentence": prior[1]}, prior_lr_decays=prior[4])
    # stage one's test Rec (fairseq-validate --valid-subset test: davam_stage1_test in common.sh)
    # stands as the row's evaluation until the full one (with the prior's KL and PPL) exists
    tested = validate_record(run / "test.log", "test")
    if tested:
        result["stage1_test"] = {"tool": "fairseq-validate", "split": "test", "path": "stage1/checkpoint_best.pt",
                                 "checkpoint": best_checkpoint(*earlier, log),
                                 **{k: tested[k] for k in ("rec", "commitment", "code_usage", "attn_entropy") if k in tested}}
        result["evaluation"] = result["stage1_test"]
    for name in ("eval.json", "eval_test.json"):
        if (run / name).is_file():
            result["evaluation"] = json.loads((run / name).read_text())
    for name in ("diversity", "fluency"):  # the samples' Ent / Dist-n and their NLL under the LM
        if (run / f"{name}.json").is_file():
            result[name] = json.loads((run / f"{name}.json").read_text())
    write_json(out, args.row, result)
    if args.stopped:  # once the JSON says so; status.sh shows it, the recipe removes it when the row runs again
        (run / "stopped.txt").write_text(args.stopped.replace("\n", " ") + "\n")
    print(f"wrote {out / (args.row + '.json')} and {out / (args.row + '.png')}: {result['epochs']} epochs, "
          f"{result['train_hours']} h, last valid " + ", ".join(f"{m}={curves[m][1][-1]:.2f}" for m in metrics))


if __name__ == "__main__":
    main()
