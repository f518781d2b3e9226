#!/usr/bin/env bash
# The DAVAM paper's sensitivity to the codebook size (Fig. 4(a)): K in {128, 256, 512, 1024}
# on PTB at a stated reduced budget, final validation Rec and KL against K (davam-sweep).
#
#   nohup examples/reproduce/davam_ptb_k_sweep.sh > ../runs/davam_ptb_k_sweep.out 2>&1 &
#   MAX_UPDATE=2 VALUES=128,256 examples/reproduce/davam_ptb_k_sweep.sh   # a smoke run
#
# Budget per K (one core: about 40 minutes of stage one and 15 of the prior): stage one is
# the authors' (davam_ptb, SGD lr 1.0, clip 5, batch 32) for EPOCHS=3 epochs, with beta
# 0.15 -> 5 over the first 2 (2,630 updates) instead of 10; the prior is a smaller one than
# the paper's (5 gated layers of width 256 instead of 15 of 512: the full prior costs about an
# hour per PTB epoch on one core) for PRIOR_EPOCHS=2 epochs under --bf16-autocast. So the
# numbers show the trend over K at this budget, not the paper's values. Writes
# $RUNS/davam_ptb_k_sweep/ (one directory per K; rerun the same command to continue) and,
# when done, $RESULTS/davam_ptb_k_sweep.{png,json} (RESULTS=results by default).
source "$(dirname "$0")/common.sh"
no_arguments "$@"
RUN=$RUNS/davam_ptb_k_sweep
VALUES=${VALUES:-128,256,512,1024}
EPOCHS=${EPOCHS:-3}
PRIOR_EPOCHS=${PRIOR_EPOCHS:-2}
SMOKE=""
[ -n "${MAX_UPDATE:-}" ] && SMOKE="--max-update $MAX_UPDATE"
prepare_ptb
track_row "$RUN"
PRIOR_ARGS=(--arch davam_prior --criterion davam_prior --prior-layers 5 --prior-embed-dim 256 --prior-head-dim 256
  --optimizer sgd --lr 0.5 --clip-norm 5 --batch-size 32 --max-epoch "$PRIOR_EPOCHS" --bf16-autocast
  --save-last-interval-updates "$SAVE_LAST_EVERY" --seed "$SEED" --num-workers 0 --no-epoch-checkpoints $SMOKE)
SWEEP=(davam-sweep "$DATA" --save-root "$RUN" --setting --num-codes --values "$VALUES"
  --out "$RUN/sweep.png" --label "PTB, $EPOCHS epochs" --prior-args="${PRIOR_ARGS[*]}"
  -- --user-dir "$PLUGIN" --task sentence_vae --arch davam_ptb --criterion davam --optimizer sgd --lr 1.0
  --clip-norm 5 --batch-size 32 --max-epoch "$EPOCHS" --beta-start 0.15 --beta-max 5.0
  --beta-warmup-updates $((1315 * (EPOCHS - 1 > 0 ? EPOCHS - 1 : 1))) --best-checkpoint-metric rec_plus_commitment
  --save-last-interval-updates "$SAVE_LAST_EVERY" --seed "$SEED" --num-workers 0 --no-epoch-checkpoints \
  "${PRECISION_FLAGS[@]}" $SMOKE)
log "sweep: ${SWEEP[*]}" | tee -a "$RUN/sweep.log"
"${SWEEP[@]}" >> "$RUN/sweep.log" 2>&1
log "sweep: finished"
publish "$RUN/sweep" davam_ptb_k_sweep
