#!/usr/bin/env bash
# DAVAM stage one on PTB continued past the authors' stop: is the gap to the paper's Rec (60.16)
# the stopping rule? The davam_ptb_k512 row, trained with the authors' plateau schedule,
# stopped at its 5th halving while validation Rec was still falling: after epoch 40 in its
# first run (0.3-1.1 nats per epoch), after epoch 56 in its second (results/davam_ptb_k512.json:
# 79.04 at epoch 50, 75.16 at 54). This row takes that run's last state (before the 5th
# halving's reload of the best weights) and continues it under the same rule with MAX_LR_DECAYS=10
# halvings allowed instead of 5 (the rest unchanged: the 5th halving takes the rate to
# 0.03125 and reloads the best weights, and so on; at most 100 epochs in all, the paper's cap),
# then scores the best checkpoint on the test set (fairseq-validate: Rec, commitment, codes).
#
#   nohup examples/reproduce/davam_ptb_long.sh > ../runs/davam_ptb_k512_long.out 2>&1 &
#   MAX_UPDATE=N examples/reproduce/davam_ptb_long.sh   # a smoke run: stop at N updates in all
#
# Needs the finished stage one of examples/reproduce/davam_ptb.sh davam_ptb_k512 (SOURCE_RUN,
# default ../runs/davam_ptb_k512). Its log is copied first, so this row's stage1.log and curves
# run from epoch 1. Stage one only: the prior, KL and samples of the continued model would be
# davam_ptb.sh's stages two to six. Rerun the same command to continue after an interruption.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
SOURCE_RUN=${SOURCE_RUN:-$RUNS/davam_ptb_k512}
MAX_LR_DECAYS=${MAX_LR_DECAYS:-10}
RUN=$RUNS/davam_ptb_k512_long
[[ $MAX_LR_DECAYS =~ ^[0-9]+$ ]] && [ "$MAX_LR_DECAYS" -gt 5 ] ||
  { echo "error: MAX_LR_DECAYS must be an integer above the authors' 5, got '$MAX_LR_DECAYS'" >&2; exit 2; }
if [ ! -f "$RUN/init.done" ]; then
  for f in stage1.done stage1/checkpoint_last.pt stage1/checkpoint_best.pt stage1.log; do
    [ -f "$SOURCE_RUN/$f" ] || { echo "error: $SOURCE_RUN/$f not found: finish stage one of" \
      "examples/reproduce/davam_ptb.sh davam_ptb_k512 first, or set SOURCE_RUN" >&2; exit 2; }
  done
fi
prepare_ptb
track_row "$RUN"
# init: the source run's checkpoints and log, once (copies: the source row stays as it ended)
if [ ! -f "$RUN/init.done" ]; then
  mkdir -p "$RUN/stage1"
  cp "$SOURCE_RUN/stage1/checkpoint_last.pt" "$SOURCE_RUN/stage1/checkpoint_best.pt" "$RUN/stage1/"
  cp "$SOURCE_RUN/stage1.log" "$RUN/stage1.log"
  echo "$SOURCE_RUN" > "$RUN/init.done"
  log "init: $SOURCE_RUN/stage1 (checkpoints and log) -> $RUN"
fi
# the same command as the source's stage one (davam_ptb_stage1 in common.sh), more halvings
SMOKE=()
[ -n "${MAX_UPDATE:-}" ] && SMOKE=(--max-update "$MAX_UPDATE")
davam_ptb_stage1 "$RUN" --max-lr-decays "$MAX_LR_DECAYS" "${SMOKE[@]}"
davam_stage1_test "$RUN"
