#!/usr/bin/env bash
# The DAVAM authors' own code (sunset-clouds/DAVAM at commit 5300061) trained on the same PTB
# text as this plugin's rows: stage one with their settings (their argparser's defaults are
# the PTB ones: SGD lr 1.0, batch 32, vq weight 0.15 -> 5 over 10 epochs, halving after 2 bad
# epochs from epoch 16, stop after 5 halvings or 100 epochs), seed SEED, on one CPU thread.
# Issue 11's check whether the gap between this plugin's Rec and the paper's is in the code:
# compare its curve with davam_ptb_k512's (davam-plot RUNS/davam_ptb_authors_code/stage1.log
# RUNS/davam_ptb_k512/stage1.log --metrics rec,code_usage --x epoch --out FIG.png).
#
#   examples/reproduce/davam_ptb_authors_code.sh
#   EPOCHS=1 MAX_BATCHES=20 examples/reproduce/davam_ptb_authors_code.sh   # a smoke run (RUN_smoke)
#
# examples/reproduce/authors_davam.py drives it: their model, data loader and evaluation are
# imported unchanged, their training loop is rewritten with a checkpoint after every epoch and
# every SAVE_LAST_EVERY (500) updates, the random states included, so rerunning this command
# continues where it stopped, mid-epoch too (their main.py needs CUDA and cannot resume; an
# epoch takes about 35 min here with three trainings on two cores, against 13 min for this
# plugin's stage one). Their code is cloned once into RUN/src from AUTHORS_REPO (default
# https://github.com/sunset-clouds/DAVAM; a local clone works too). Writes RUN/stage1.log
# (fairseq-style JSON records: davam-plot reads them) and, when stage one ends, RUN/eval.json
# (test Rec of the best weights); then python examples/reproduce/results.py
# davam_ptb_authors_code writes its results/ files.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
AUTHORS_REPO=${AUTHORS_REPO:-https://github.com/sunset-clouds/DAVAM}
AUTHORS_COMMIT=53000613131806be051b9aea178ec81b4dfe36a3
RUN=$RUNS/davam_ptb_authors_code${MAX_BATCHES:+_smoke}
require_ptb_text
if [ ! -f "$RUN/src/model.py" ]; then
  mkdir -p "$RUN"
  rm -rf "$RUN/src.tmp"
  git clone -q "$AUTHORS_REPO" "$RUN/src.tmp" ||
    { echo "error: could not clone AUTHORS_REPO=$AUTHORS_REPO: set it to a reachable clone of sunset-clouds/DAVAM" >&2; exit 2; }
  git -C "$RUN/src.tmp" checkout -q "$AUTHORS_COMMIT" ||
    { echo "error: AUTHORS_REPO=$AUTHORS_REPO has no commit $AUTHORS_COMMIT (the one this recipe was checked with)" >&2; exit 2; }
  mv "$RUN/src.tmp" "$RUN/src"
fi
ARGS=(--authors-dir "$RUN/src" --data "$PTB" --save-dir "$RUN/stage1" --eval-json "$RUN/eval.json" --seed "$SEED"
  --save-last-interval-updates "$SAVE_LAST_EVERY")
[ -z "${EPOCHS:-}" ] || ARGS+=(--epochs "$EPOCHS")
[ -z "${MAX_BATCHES:-}" ] || ARGS+=(--max-batches "$MAX_BATCHES")
run_stage stage1 "$RUN" python "$REPO/examples/reproduce/authors_davam.py" "${ARGS[@]}"
