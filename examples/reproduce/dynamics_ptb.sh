#!/usr/bin/env bash
# Training dynamics of GAVAM against DAVAM on PTB (DAVAM paper, Fig. 4(d)) at a stated budget:
# GAVAM (--arch gavam: Gaussian latents with the jointly trained PixelCNN prior, plain ELBO)
# trained with the authors' stage-one recipe of the davam_ptb_k512 row (SGD lr 1.0, clip 5,
# batch 32, seed 1, float32) for EPOCHS=5 epochs, drawn against the first EPOCHS epochs of a
# DAVAM row trained with that recipe (its run directory: DAVAM_RUN=../runs/davam_ptb_k512_fast,
# whose first 10 epochs, its warm-up, are the authors' recipe, logged in warmup.log; or
# DAVAM_RUN=../runs/davam_ptb_k512, whose stage1.log is that recipe throughout, as the authors'
# schedule keeps lr 1.0 until epoch 16) and, once it exists, the first EPOCHS epochs of that
# row's stage-two prior. One figure, validation, per epoch: Rec of both, GAVAM's KL, and the
# prior's NLL of DAVAM's codes per sentence (DAVAM's KL term).
#
#   nohup examples/reproduce/dynamics_ptb.sh > ../runs/dynamics_ptb.out 2>&1 &
#   MAX_UPDATE=2 RUNS=/tmp/smoke examples/reproduce/dynamics_ptb.sh   # a smoke run
#
# A GAVAM update costs about 1.8 s on one core of an Intel Xeon with AMX (its 15-layer prior;
# measured 2026-12-06), so 5 epochs take about 3.5 hours. Writes results/dynamics_ptb.{png,json}; rerun the same command to continue.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
RUN=$RUNS/dynamics_ptb
EPOCHS=${EPOCHS:-5}
require_positive_int EPOCHS
DAVAM_RUN=${DAVAM_RUN:-$RUNS/davam_ptb_k512_fast}
# the authors' recipe's log: the fast row's warm-up (its stage one then switches to Adam), or
# a stage one that is the authors' recipe throughout
if [ -f "$DAVAM_RUN/warmup.cmd" ]; then
  DAVAM_LOG=$DAVAM_RUN/warmup.log
  # the last --max-epoch of the command is the one fairseq uses (the warm-up's 10 after the recipe's 100)
  warmup_epochs=$(grep -o -- '--max-epoch [0-9]*' "$DAVAM_RUN/warmup.cmd" | awk 'END { print $2 }' || true)
  if [ -n "$warmup_epochs" ] && [ "$EPOCHS" -gt "$warmup_epochs" ]; then
    echo "error: EPOCHS=$EPOCHS is more than the $warmup_epochs epochs of $DAVAM_RUN's authors'-recipe warm-up:" \
      "set DAVAM_RUN=$RUNS/davam_ptb_k512 (the authors' recipe throughout) or EPOCHS <= $warmup_epochs" >&2
    exit 2
  fi
else
  DAVAM_LOG=$DAVAM_RUN/stage1.log
fi
if [ ! -f "$DAVAM_LOG" ]; then
  echo "error: $DAVAM_LOG not found: train the DAVAM row first (examples/reproduce/davam_ptb.sh davam_ptb_k512_fast) or set DAVAM_RUN" >&2
  exit 2
fi
SMOKE=()
[ -n "${MAX_UPDATE:-}" ] && SMOKE=(--max-update "$MAX_UPDATE")
prepare_ptb
run_stage gavam "$RUN" fairseq-train "$DATA" --user-dir "$PLUGIN" --task sentence_vae --arch gavam --criterion davam \
  --optimizer sgd --lr 1.0 --clip-norm 5 --batch-size 32 --max-epoch "$EPOCHS" --save-dir "$RUN/gavam" \
  --no-epoch-checkpoints --log-format json --log-interval 100 --save-last-interval-updates "$SAVE_LAST_EVERY" \
  --seed "$SEED" --num-workers 0 "${PRECISION_FLAGS[@]}" "${SMOKE[@]}"
LOGS=("$RUN/gavam.log" "$DAVAM_LOG") LABELS="GAVAM,DAVAM" METRICS=rec,kl
if [ -f "$DAVAM_RUN/stage2.log" ]; then
  LOGS+=("$DAVAM_RUN/stage2.log") LABELS="$LABELS,DAVAM prior (stage two)" METRICS=$METRICS,nll_per_sentence
fi
mkdir -p "$RESULTS"
davam-plot "${LOGS[@]}" --labels "$LABELS" --metrics "$METRICS" --splits valid --x epoch --max-x "$EPOCHS" \
  --out "$RESULTS/dynamics_ptb.png" --json "$RESULTS/dynamics_ptb.json" \
  --title "PTB: GAVAM vs DAVAM, first $EPOCHS epochs (valid, per epoch; nats per sentence)"
log "wrote $RESULTS/dynamics_ptb.{png,json}"
