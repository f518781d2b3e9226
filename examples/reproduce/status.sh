#!/usr/bin/env bash
# Where each reproduction row stands: its stages (done, running or stopped, with the last
# validation: epoch, updates (the fast DAVAM recipe's stage one: after its warm-up) and -ELBO,
# Rec or loss; while one runs, at most how long it has to go) and, for a row started by a
# recipe that records it, whether the row is
# finished, running, held before a stage (RUNS/ROW/hold_before: common.sh) or stopped, with the
# command that resumes a stopped one (a row run by one tool, davam-sweep or davam-augment: the
# last line of its newest log instead of stages). Then the rows whose run directory is gone (a machine
# change) but whose result is committed (RESULTS/ROW.json), with the status it records.
#   examples/reproduce/status.sh
source "$(dirname "$0")/common.sh"
no_arguments "$@"
[ -d "$RUNS" ] || echo "no runs yet: $RUNS does not exist"

# last_valid LOG: "epoch E, U updates, METRIC V" from the last validation record of a fairseq
# JSON log (METRIC: the first of neg_elbo, rec, nll_per_sentence, loss that it has), or nothing;
# plus "; saved mid-epoch E' at U' updates" when a later mid-epoch checkpoint_last.pt save
# (--save-last-interval-updates: fairseq logs "score None") is where a resumed run goes on.
# last_valid LOG running: also, for a running stage, how long it may still take: "; N of M
# epochs done, about X min per epoch: at most H h to go" (M: the config's max_epoch, which a
# stopping rule such as davam_plateau's may cut short; X: the median time between the ends of
# two consecutive epochs in one process, so that stops and restarts do not count).
# A stage under davam_plateau (or the authors' own rule) also gets "; lr halved N of M times, last
# after epoch E (lr X; the stage stops at M)" from its last decay line (training_logs.LR_DECAY).
# The log is read by the plugin's own parser, davam_plugin/cli/training_logs.py, loaded from its
# file: importing the package would load fairseq (seconds per stage).
last_valid() {
  [ -f "$1" ] || return 0
  python - "$REPO/davam_plugin/cli/training_logs.py" "$1" "${2:-}" <<'PY' 2>/dev/null || true
import datetime, importlib.util, json, re, statistics, sys
spec = importlib.util.spec_from_file_location("training_logs", sys.argv[1])
tl = sys.modules["training_logs"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tl)
EPOCH_END = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,\d+\]\[train\]\[INFO\] - | \| INFO \| train \| )(\{.*)$")


def eta(lines):
    max_epoch, done, prev, minutes = None, 0, None, []
    for line in lines:
        start = re.search(r"'max_epoch': (\d+)", line)  # fairseq's config dump: a process starts
        if start:
            max_epoch, prev = int(start.group(1)), None
            continue
        end = EPOCH_END.match(line)
        if not end:
            continue
        done = int(json.loads(end.group(2))["epoch"])
        when = datetime.datetime.strptime(end.group(1), "%Y-%m-%d %H:%M:%S")
        if prev is not None and done == prev[0] + 1:
            minutes.append((when - prev[1]).total_seconds() / 60)
        prev = (done, when)
    if not minutes or not max_epoch or done >= max_epoch:
        return ""
    per = statistics.median(minutes)
    return f"; {done} of {max_epoch} epochs done, about {per:.0f} min per epoch: at most {(max_epoch - done) * per / 60:.1f} h to go"


valid = [r for r in tl.read_log(sys.argv[2]) if r.split == "valid"]
if valid:
    last = valid[-1]
    parts = [f"epoch {last.epoch}"]
    if last.num_updates is not None:
        parts.append(f"{last.num_updates:,} updates")
    name = next((m for m in ("neg_elbo", "rec", "nll_per_sentence", "loss") if m in last.metrics), None)
    if name:  # fairseq's own loss (a plain LM's) is in bits per token; the plugin's metrics in nats
        parts.append(f"{name} {last.metrics[name]:.2f}" + (" (bits per token)" if name == "loss" else ""))
    text = open(sys.argv[2], errors="replace").read()
    saved = re.findall(r"Saved checkpoint \S*checkpoint_last\S*\.pt \(epoch (\d+) @ (\d+) updates, score None\)", text)
    mid = saved[-1] if saved else None
    tail = f"; saved mid-epoch {mid[0]} at {int(mid[1]):,} updates" if mid and int(mid[1]) > (last.num_updates or 0) else ""
    decays = tl.LR_DECAY.findall(text)
    if decays:  # the authors' stopping rule (davam_plateau, or their own code's): where it stands
        epoch, n, m, lr = decays[-1]
        tail += f"; lr halved {n} of {m} times, last after epoch {epoch} (lr {lr}; the stage stops at {m})"
    if sys.argv[3] == "running":
        tail += eta(text.splitlines())
    print(", ".join(parts) + tail)
PY
}
for run in "$RUNS"/*/; do
  [ -d "$run" ] || continue
  row=$(basename "$run")
  stages=""
  for cmd in "$run"*.cmd; do
    [ -e "$cmd" ] || continue
    stage=$(basename "$cmd" .cmd)
    if [ -f "$run$stage.done" ]; then state=done
    elif row_running "$run"; then state=running
    else state=stopped; fi
    last=$(last_valid "$run$stage.log" "$state")
    # the fast DAVAM recipe's stage one restarts fairseq's update count after its warm-up
    if [ "$stage" = stage1 ] && [ -f "${run}warmup.log" ]; then last=${last/ updates/ updates after the warm-up}; fi
    stages="$stages $stage=$state${last:+ (last valid: $last)}"
  done
  if [ -z "$stages" ]; then
    # a row driven by one tool (davam-sweep, davam-augment) has no per-stage .cmd files: its
    # newest top-level log's last line says where the tool is (a value, a size, finished)
    log=$(ls -t "$run"*.log 2>/dev/null | head -n 1 || true)
    line=""
    [ -z "$log" ] || line=$(grep -v -e '^[[:space:]]*$' -e '^INFO:' "$log" | tail -n 1 | sed 's/^[[:space:]]*//' | cut -c1-160)
    [ -z "$line" ] || stages=" $(basename "$log"): $line"
    # while it trains ("fairseq-train -> LOG"), that training's last validation and time to go
    sub=$(sed -n 's/.*fairseq-train -> \(.*\.log\)$/\1/p' <<< "$line")
    if [ -n "$sub" ] && row_running "$run"; then
      last=$(last_valid "$sub" running)
      stages="$stages${last:+ (last valid: $last)}"
    fi
  fi
  echo "$row:${stages:- no stage started}"
  if [ -f "${run}recipe.done" ]; then echo "  finished"
  elif row_running "$run"; then echo "  running"
  elif [ -n "$(held_stage "${run%/}")" ]; then  # held before a stage (common.sh)
    resume=""
    [ ! -f "${run}recipe_command.txt" ] || resume=" (or: $(cat "${run}recipe_command.txt"))"
    echo "  held before $(held_stage "${run%/}") by ${run}hold_before ($(head -n 1 "${run}hold_before")); to continue: remove that file, then rerun all.sh$resume"
  elif [ -f "${run}stopped.txt" ]; then  # stopped on purpose (results.py --stopped)
    echo "  stopped on purpose: $(head -n 1 "${run}stopped.txt")"
  elif [ -f "${run}recipe_command.txt" ]; then echo "  stopped; resume: $(cat "${run}recipe_command.txt")"
  fi
done
# committed results of rows with no run directory here (all.sh: "done in RESULTS/ROW.json" when finished)
for json in "$RESULTS"/*.json; do
  row=$(basename "$json" .json)
  [ -f "$json" ] && [ ! -e "$RUNS/$row" ] || continue
  status=$(committed_status "$row") || continue
  echo "$row: no run directory here; committed ${json#"$REPO"/}: $status"
done
