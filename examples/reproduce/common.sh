# Shared settings of the reproduction recipes (sourced, not run).
#
# Every recipe is resumable: rerunning the same command continues each fairseq-train from its
# checkpoint_last.pt and appends to the same log; a stage whose marker file <stage>.done
# exists is skipped. A stage continues only with the command that started it (its budget aside:
# run_stage): a rerun with other settings (SEED, PRECISION, ...) stops with one line saying what
# differs, and so does the real run after a smoke run (MAX_UPDATE) in the same RUNS: smoke runs
# go to a RUNS of their own. Save directories live outside the repository (RUNS, default ../runs).
#
# Environment (all optional):
#   PTB=../shared/data/ptb   raw Penn Treebank (Mikolov split: train.txt valid.txt test.txt)
#   DATA=../data-bin/ptb     binarized corpus (made from PTB on first use)
#   RUNS=../runs             where each row's save directory and logs go
#   RESULTS=results          where the recipes put their committed JSON and PNG files
#   THREADS=1                OMP threads per training (two runs at once on a 2-core machine)
#   PRECISION=fp32           fp32 | bf16 (--bf16-autocast: faster only on GPUs and CPUs with
#                            AVX512-BF16/AMX; emulated and slower on AVX2-only CPUs)
#   SEED=1
#   SAVE_LAST_EVERY=500      updates between the mid-epoch checkpoint_last.pt saves of the DAVAM
#                            and GAVAM trainings (--save-last-interval-updates: no validation, so
#                            the curves and checkpoint_best.pt stay per epoch; a killed run loses
#                            at most this many updates, not the epoch); 0: end of epoch only
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The command that started this recipe, with the settings it was given in the environment
# (track_row records it in the row's directory; status.sh prints it for a row that stopped)
RECIPE_COMMAND="cd $(printf %q "$REPO") &&"
for _v in PTB DATA RUNS RESULTS THREADS PRECISION PRIOR_PRECISION SEED HIDDEN IW_SAMPLES LM_PATH EPOCHS \
  PRIOR_EPOCHS ADAM_EPOCHS VALUES SNLI SIZES RATIOS DAVAM_SIZE DAVAM_RUN MAX_UPDATE FROM ROW_SUFFIX SHRINK AUTHORS_REPO MAX_BATCHES \
  SAVE_LAST_EVERY SHARE_WARMUP; do
  if [ -n "${!_v+x}" ]; then RECIPE_COMMAND+=" $_v=$(printf %q "${!_v}")"; fi
done
RECIPE_COMMAND+=" examples/reproduce/$(basename "$0")"
for _a in "$@"; do RECIPE_COMMAND+=" $(printf %q "$_a")"; done
# RECIPE -h | --help: print the recipe's header comment and the environment variables below,
# then stop before anything is read, made or run
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
  printf '\nEnvironment of every recipe (examples/reproduce/common.sh, all optional):\n'
  sed -n '/^# Environment (all optional):/,/^[^#]/{/^#   /{s/^#//;p}}' "${BASH_SOURCE[0]}"
  exit 0
fi
PTB=${PTB:-$REPO/../shared/data/ptb}
DATA=${DATA:-$REPO/../data-bin/ptb}
RUNS=${RUNS:-$REPO/../runs}
RESULTS=${RESULTS:-$REPO/results}
THREADS=${THREADS:-1}
PRECISION=${PRECISION:-fp32}
SEED=${SEED:-1}
SAVE_LAST_EVERY=${SAVE_LAST_EVERY:-500}
# Whole-number settings are checked here, once for every recipe: a typo ends the recipe with one
# line naming the variable, not a bash arithmetic error or a traceback hours into a run. Empty
# counts as unset (the recipe's default). require_positive_int VAR... / require_count VAR...:
# each named variable, when set and not empty, is a positive (a non-negative) integer, or the
# script ends with one line naming it (all.sh checks its LANES with the first too).
_require_int() {
  local pattern=$1 what=$2 _v
  shift 2
  for _v in "$@"; do
    [ -z "${!_v:-}" ] || [[ ${!_v} =~ $pattern ]] ||
      { echo "error: $_v must be $what, got '${!_v}'" >&2; exit 2; }
  done
}
require_positive_int() { _require_int '^[1-9][0-9]*$' "a positive integer" "$@"; }
require_count() { _require_int '^[0-9]+$' "a non-negative integer" "$@"; }
require_positive_int THREADS EPOCHS PRIOR_EPOCHS MAX_UPDATE MAX_BATCHES HIDDEN IW_SAMPLES
require_count SEED SAVE_LAST_EVERY
VENV_BIN=${VENV_BIN:-$REPO/.venv/bin}
export PATH="$VENV_BIN:$PATH" OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1
PLUGIN=$REPO/davam_plugin

# precision_flags VAR: fairseq's flags for the precision named by $VAR (fp32: none; bf16:
# --bf16-autocast) into the array VAR_FLAGS; anything else ends the recipe with one line
precision_flags() {
  local -n flags="$1_FLAGS"
  case "${!1}" in
    fp32) flags=() ;;
    bf16) flags=(--bf16-autocast) ;;
    *) echo "error: $1 must be fp32 or bf16, got '${!1}'" >&2; exit 2 ;;
  esac
}
precision_flags PRECISION

log() { echo "[$(date -u +%FT%TZ)] $*"; }

# no_arguments "$@": a recipe set up by environment variables alone refuses stray arguments
no_arguments() {
  [ $# -eq 0 ] || { echo "error: $(basename "$0") takes no arguments, got '$*' (its settings are environment variables: --help)" >&2; exit 2; }
}

# publish STEM NAME: copy a tool's figure STEM.png and its JSON STEM.json to $RESULTS/NAME.*
publish() {
  mkdir -p "$RESULTS"
  cp "$1.png" "$RESULTS/$2.png"
  cp "$1.json" "$RESULTS/$2.json"
  log "wrote $RESULTS/$2.{png,json}"
}

# has_corpus DIR: DIR holds a binarized corpus (fairseq's dict.txt and train.bin)
has_corpus() { [ -f "$1/dict.txt" ] && [ -f "$1/train.bin" ]; }

# row_running DIR: a process has the row directory DIR in its command line (a training or
# evaluation of that row)
row_running() { pgrep -f -- "${1%/}/" >/dev/null; }

# build_once DIR FUNCTION: unless has_corpus DIR, run FUNCTION TMP (which
# makes the corpus in the new directory TMP) and rename TMP to DIR. Recipes started together (two
# lanes of all.sh) build it once (flock, where there is one) and none reads a half-made corpus.
build_once() {
  local dir=$1 fn=$2
  if has_corpus "$dir"; then return; fi
  mkdir -p "$(dirname "$dir")"
  (
    if command -v flock >/dev/null; then flock 8; fi
    if has_corpus "$dir"; then exit 0; fi  # made while we waited
    if [ -e "$dir" ] && ! rmdir "$dir" 2>/dev/null; then
      echo "error: $dir exists but holds no binarized corpus (dict.txt, train.bin): remove it or point elsewhere" >&2
      exit 2
    fi
    tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    "$fn" "$tmp"
    mv "$tmp" "$dir"  # dir does not exist here (checked under the lock)
  ) 8> "$dir.lock"
}

# require_ptb_text: the raw corpus $PTB/{train,valid,test}.txt is there, or the recipe ends with
# one line naming the missing file and PTB
require_ptb_text() {
  local f
  for f in train valid test; do
    [ -f "$PTB/$f.txt" ] || { echo "error: $PTB/$f.txt not found: set PTB to the raw Penn Treebank directory" >&2; exit 2; }
  done
}

prepare_ptb() {
  if has_corpus "$DATA"; then return; fi
  require_ptb_text
  build_once "$DATA" _binarize_ptb
}
_binarize_ptb() {
  log "binarizing $PTB -> $DATA"
  davam-prepare-corpus --trainpref "$PTB/train.txt" --validpref "$PTB/valid.txt" \
    --testpref "$PTB/test.txt" --destdir "$1" --no-tokenize --no-lowercase
}

# track_row DIR: DIR is this recipe's row directory: record the command that (re)starts the row
# in DIR/recipe_command.txt, and mark DIR/recipe.done when the recipe ends with status 0. A
# recipe ended by a signal exits 128 + its number: without these traps bash would run the EXIT
# trap with the status of the last command that had finished (often 0) and mark a stopped row done.
track_row() {
  ROW_DIR=$1
  mkdir -p "$ROW_DIR"
  echo "$RECIPE_COMMAND" > "$ROW_DIR/recipe_command.txt"
  rm -f "$ROW_DIR/recipe.done"
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap '_status=$?; [ $_status -ne 0 ] || [ -n "${ROW_HELD:-}" ] || date -u +%FT%TZ > "$ROW_DIR/recipe.done"' EXIT
}

# Holding a row before one of its stages, for example before its prior so that its all.sh lane
# goes to other rows first: a line "STAGE [REASON]" in DIR/hold_before. When the recipe reaches
# STAGE (not done yet), run_stage writes DIR/held ("STAGE TIME") and the recipe ends there with
# status 0 and no recipe.done. all.sh then gives the lane to the next row and leaves the held
# one, and the rows that need it, until hold_before is gone; status.sh and results.py say so.
# Removing hold_before and running the same command again continues with STAGE.
# hold_stage DIR: the STAGE that DIR/hold_before names, or nothing
hold_stage() { if [ -f "$1/hold_before" ]; then awk 'NR == 1 { print $1 }' "$1/hold_before"; fi; }
# held_stage DIR: the stage before which DIR's recipe stopped (DIR/held) while DIR/hold_before
# still names it, or nothing (all.sh and status.sh; results.py's held_before is its twin)
held_stage() {
  local stage=""
  if [ -f "$1/held" ]; then stage=$(awk 'NR == 1 { print $1 }' "$1/held"); fi
  if [ -n "$stage" ] && [ "$stage" = "$(hold_stage "$1")" ]; then echo "$stage"; fi
}

# committed_figure ROW: the committed RESULTS/ROW.json is a finished figure's data (a sweep's,
# an augmentation table's, a plot's: a JSON object that is no result record, "row" and "status"
# absent) and not a partial one (a sweep published before its last value: "complete": false)
committed_figure() {
  [ -f "$RESULTS/$1.json" ] || return 1
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
ok = isinstance(r, dict) and "row" not in r and "status" not in r and r.get("complete", True) is not False
sys.exit(0 if ok else 1)' "$RESULTS/$1.json" 2>/dev/null
}

# committed_status ROW: print the status of the committed RESULTS/ROW.json ("finished", "lost in
# train: ...") when that file is a result record of ROW; fail (print nothing) when it is missing,
# broken or another kind of JSON. all.sh and status.sh use it for rows whose run directory is gone.
committed_status() {
  [ -f "$RESULTS/$1.json" ] || return 1
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
ok = isinstance(r, dict) and r.get("row") == sys.argv[2] and isinstance(r.get("status"), str)
sys.exit(0 if ok and print(r["status"]) is None else 1)' "$RESULTS/$1.json" "$1" 2>/dev/null
}

# code_version: "at commit SHA" for the repository the recipes run from, with " (uncommitted
# changes)" when tracked files differ from it; "unknown (not a git checkout)" otherwise.
code_version() {
  local sha
  if ! sha=$(git -C "$REPO" rev-parse HEAD 2>/dev/null); then echo "unknown (not a git checkout)"; return; fi
  if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "at commit $sha (uncommitted changes)"
  else
    echo "at commit $sha"
  fi
}

# run_stage NAME DIR CMD...: run CMD (appending to DIR/NAME.log) unless DIR/NAME.done exists.
# A stage continues (or counts as done) only with the command that started it, recorded in
# DIR/NAME.cmd: another one (another SEED or PRECISION, a changed recipe; for a done stage also
# another budget, such as a smoke run's MAX_UPDATE) ends the recipe with one line naming both,
# instead of mixing two runs in one save directory or taking a 2-update smoke run for the
# finished stage. An unfinished stage may continue with another budget (--max-epoch,
# --max-update, the authors' driver's --epochs). Flags that only say where a stage's first
# state comes from (--restore-file, fairseq's --reset-* flags: given on a stage's first start
# only, restore_afresh) are not compared.
run_stage() {
  local name=$1 dir=$2; shift 2
  [ "${ROW_DIR:-}" = "$dir" ] || track_row "$dir"
  same_command "$dir/$name" "$*" || exit 2
  if [ -f "$dir/$name.done" ]; then log "$name: done already ($dir/$name.done)"; return; fi
  if [ "$(hold_stage "$dir")" = "$name" ]; then
    echo "$name $(date -u +%FT%TZ)" > "$dir/held"
    log "$name: held before it by $dir/hold_before ($(head -n 1 "$dir/hold_before")): remove that file and run the same command again to continue"
    ROW_HELD=1
    exit 0
  fi
  rm -f "$dir/held" "$dir/stopped.txt"  # a row held or stopped on purpose (results.py --stopped) that runs again
  log "$name: $*" | tee -a "$dir/$name.log"
  log "$name: code $(code_version)" | tee -a "$dir/$name.log"  # results.py reports it as the row's commit
  echo "$*" > "$dir/$name.cmd"
  "$@" >> "$dir/$name.log" 2>&1
  date -u +%FT%TZ > "$dir/$name.done"
  log "$name: finished"
}

# same_command DIR/NAME CMD: true when DIR/NAME.cmd (the stage's recorded command) is absent or
# records CMD as run_stage compares them; otherwise one line on stderr saying where they differ
same_command() {
  [ -f "$1.cmd" ] || return 0
  python3 - "$1" "$2" <<'PY'
import difflib, os, re, sys
stage, now = sys.argv[1], sys.argv[2]
done = os.path.isfile(stage + ".done")
first_start = r" --restore-file \S+| --reset-[a-z-]+"
budget = r" --max-epoch \S+| --max-update \S+| --epochs \S+| optimization\.max_(epoch|update)=\S+"
def settings(cmd):  # the command's words, without the flags that may change
    return re.sub(first_start if done else f"{first_start}|{budget}", "", " " + cmd).split()
was, new = settings(open(stage + ".cmd").read().strip()), settings(now)
if was == new:
    sys.exit(0)
def change(i1, i2, j1, j2):  # "--seed 1 -> --seed 2": a changed value with the flag before it
    first = (was[i1:i2] or new[j1:j2])[0]
    flag = [was[i1 - 1]] if i1 > 0 and not first.startswith("-") and was[i1 - 1].startswith("-") else []
    return f"{' '.join(flag + was[i1:i2]) or '(nothing)'} -> {' '.join(flag + new[j1:j2]) or '(nothing)'}"
ops = difflib.SequenceMatcher(a=was, b=new, autojunk=False).get_opcodes()
diff = "; ".join(change(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in ops if tag != "equal")
remove = f"{stage}.cmd and {stage}.done" if done else f"{stage}.cmd"
print(f"error: {stage} was {'trained' if done else 'started'} with another command ({stage}.cmd): {diff}. "
      f"Run it with its own settings (SEED, PRECISION, MAX_UPDATE, ...), give this run its own RUNS "
      f"directory, or remove {remove} to continue it with this command", file=sys.stderr)
sys.exit(1)
PY
}

# plateau_flags START: the authors' rate schedule (stage one and the prior alike), into the
# array PLATEAU_FLAGS: halve the rate after 2 epochs without a better validation metric, reload
# the best weights at each halving, stop after 5 halvings; halving allowed from epoch START on
# (the authors': 16; the fast recipe's stage one after its warm-up: 1, its prior: 4)
plateau_flags() {
  PLATEAU_FLAGS=(--lr-scheduler davam_plateau --lr-shrink 0.5 --lr-patience 2 --lr-decay-start-epoch "$1" --max-lr-decays 5)
}
# The fast recipe's optimizer after its warm-up (davam_ptb.sh says why): Adam at lr 5e-4 with
# beta held at 5 (the authors' maximum); shared by davam_ptb_k512_fast and davam_ptb_k_sweep_fast
FAST_STAGE1_FLAGS=(--optimizer adam --lr 0.0005 --beta-start 5.0 --beta-max 5.0 --beta-warmup-updates 0)

# davam_ptb_stage1 RUN [FLAG ...]: DAVAM stage one on PTB with the authors' recipe (davam_ptb.sh
# says what it is) into RUN/stage1, as run_stage "stage1" (STAGE1_NAME=NAME: into RUN/NAME, as
# run_stage NAME: the fast recipe's "warmup" part). FLAGs go last, so a FLAG given again
# overrides the recipe's value (fairseq's argparse keeps the last one): the probes' variants.
# The rate schedule's flags are the array STAGE1_SCHEDULER when the caller sets it (another
# --lr-scheduler does not accept davam_plateau's flags), else the authors' plateau rule.
davam_ptb_stage1() {
  local run=$1 name=${STAGE1_NAME:-stage1}; shift
  davam_ptb_stage1_cmd "$run" "$@"
  run_stage "$name" "$run" "${STAGE1_CMD[@]}"
}
# davam_ptb_stage1_cmd RUN [FLAG ...]: the command davam_ptb_stage1 runs, into the array STAGE1_CMD
davam_ptb_stage1_cmd() {
  local run=$1 name=${STAGE1_NAME:-stage1}; shift
  plateau_flags 16
  local scheduler=("${PLATEAU_FLAGS[@]}")
  [ -z "${STAGE1_SCHEDULER+x}" ] || scheduler=("${STAGE1_SCHEDULER[@]}")
  STAGE1_CMD=(fairseq-train "$DATA" --user-dir "$PLUGIN" --task sentence_vae --arch davam_ptb \
    --criterion davam --num-codes 512 --optimizer sgd --lr 1.0 --clip-norm 5 --batch-size 32 --max-epoch 100 \
    --beta-start 0.15 --beta-max 5.0 --beta-warmup-updates 13150 \
    "${scheduler[@]}" \
    --stop-min-lr 0 --best-checkpoint-metric rec_plus_commitment \
    --save-dir "$run/$name" --no-epoch-checkpoints --log-format json --log-interval 100 \
    --save-last-interval-updates "$SAVE_LAST_EVERY" --seed "$SEED" --num-workers 0 "${PRECISION_FLAGS[@]}" "$@")
}

# davam_stage1_test RUN: stage one's best checkpoint (RUN/stage1/checkpoint_best.pt) scored on
# the test set by fairseq-validate (Rec, commitment, codes in use; no prior, so no KL), as
# run_stage "test": the row's test Rec as soon as stage one stops, before any prior
davam_stage1_test() {
  run_stage test "$1" fairseq-validate "$DATA" --user-dir "$PLUGIN" --task sentence_vae \
    --path "$1/stage1/checkpoint_best.pt" --valid-subset test --batch-size 64 --log-format json \
    "${PRECISION_FLAGS[@]}"
}

# restore_afresh RUN CKPT: into the array RESTORE_FLAGS, the flags that start RUN's stage one
# from the checkpoint CKPT with the optimizer, the rate schedule and the meters started afresh
# (another optimizer, or another schedule), on the first start only: once RUN/stage1 has a
# checkpoint_last.pt of its own, RESTORE_FLAGS is empty and fairseq resumes that (resetting
# again would throw away, say, Adam's state).
restore_afresh() {
  RESTORE_FLAGS=()
  [ -f "$1/stage1/checkpoint_last.pt" ] ||
    RESTORE_FLAGS=(--restore-file "$2" --reset-optimizer --reset-lr-scheduler --reset-meters)
}

# prepare_demo_corpus: the built-in demo corpus (davam-demo-corpus --seed 1: 4,000 / 300 / 203
# sentences) binarized under $RUNS/demo_corpus/data-bin, made once; prints that directory.
prepare_demo_corpus() {
  local dir=$RUNS/demo_corpus
  mkdir -p "$dir"
  build_once "$dir/data-bin" _make_demo_corpus >&2
  echo "$dir/data-bin"
}
_make_demo_corpus() {  # the raw text beside the binarized corpus, made under the same lock
  local raw=${1%/*}/raw
  davam-demo-corpus --out-dir "$raw" --seed 1
  davam-prepare-corpus --trainpref "$raw/train.txt" --validpref "$raw/valid.txt" --testpref "$raw/test.txt" \
    --destdir "$1" --workdir "${1%/*}/tok"
}
