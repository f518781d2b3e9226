#!/usr/bin/env bash
# The DAVAM paper's sensitivity to the codebook size (Fig. 4(a)): K in {128, 256, 512, 1024}
# on PTB at a stated reduced budget, final validation Rec and KL against K (davam-sweep).
#
#   nohup examples/reproduce/davam_ptb_k_sweep.sh > ../runs/davam_ptb_k_sweep.out 2>&1 &
#   nohup env EPOCHS=10 ADAM_EPOCHS=10 examples/reproduce/davam_ptb_k_sweep.sh \
#       > ../runs/davam_ptb_k_sweep_fast.out 2>&1 &                        # the longer budget
#   MAX_UPDATE=2 VALUES=128,256 examples/reproduce/davam_ptb_k_sweep.sh   # a smoke run
#
# Budget per K (one core: about 21 minutes of stage one and 4 of the prior): stage one is
# the authors' (davam_ptb, SGD lr 1.0, clip 5, batch 32) for EPOCHS=3 epochs, with beta
# 0.15 -> 5 over the first 2 (2,630 updates) instead of 10; the prior is a smaller one than
# the paper's (5 gated layers of width 256 instead of 15 of 512: the full prior costs about an
# hour per PTB epoch on one core) for PRIOR_EPOCHS=2 epochs under --bf16-autocast. So the
# numbers show the trend over K at this budget, not the paper's values. Writes
# $RUNS/davam_ptb_k_sweep/ (one directory per K; rerun the same command to continue) and,
# when done, $RESULTS/davam_ptb_k_sweep.{png,json} (RESULTS=results by default).
#
# At 3 epochs the codes carry little: K = 128 ended at valid Rec 111.02, above the plain LSTM
# LM's 105.24 (docs/results.md). The longer budget, ADAM_EPOCHS=N (row
# davam_ptb_k_sweep_fast), trains each K as davam_ptb_k512_fast does: the authors' recipe for
# EPOCHS epochs with beta rising over all of them (EPOCHS=10: the authors' 13,150 updates),
# then, from each K's own last warm-up state (davam-sweep's {value}, --finetune-from-model:
# optimizer, rate schedule and epoch count start afresh), Adam at lr 5e-4 with beta held at 5
# and the authors' plateau rule for N epochs, then the same prior. In
# $RUNS/davam_ptb_k_sweep_fast/{warmup,adam}; results davam_ptb_k_sweep_fast.{png,json}. About
# 2.5 hours per K on one core at EPOCHS=10 ADAM_EPOCHS=10, where davam_ptb_k512_fast's K = 512
# was at valid Rec 81.54 (codes 24 nats ahead of the LM). The longer budget finishes one K
# (warm-up, Adam, prior) before it starts the next, and copies the figure and JSON of the Ks
# done so far to $RESULTS after each, so that a lost $RUNS leaves them behind: the JSON's
# "values" are the Ks finished, "values_planned" all of VALUES, "complete" whether they agree.
# After a lost $RUNS the Ks in that committed JSON are not trained again (davam-sweep
# --reuse-json: their entries say "reused_from"); delete it from $RESULTS to train them anew.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
VALUES=${VALUES:-128,256,512,1024}
EPOCHS=${EPOCHS:-3}
PRIOR_EPOCHS=${PRIOR_EPOCHS:-2}
ADAM_EPOCHS=${ADAM_EPOCHS:-}
require_positive_int ADAM_EPOCHS
SMOKE=""
[ -n "${MAX_UPDATE:-}" ] && SMOKE="--max-update $MAX_UPDATE"
if [ -n "$ADAM_EPOCHS" ]; then
  ROW=davam_ptb_k_sweep_fast BETA_EPOCHS=$EPOCHS
else
  ROW=davam_ptb_k_sweep BETA_EPOCHS=$((EPOCHS - 1 > 0 ? EPOCHS - 1 : 1))
fi
RUN=$RUNS/$ROW
prepare_ptb
track_row "$RUN"
PRIOR_ARGS=(--arch davam_prior --criterion davam_prior --prior-layers 5 --prior-embed-dim 256 --prior-head-dim 256
  --optimizer sgd --lr 0.5 --clip-norm 5 --batch-size 32 --max-epoch "$PRIOR_EPOCHS" --bf16-autocast
  --save-last-interval-updates "$SAVE_LAST_EVERY" --seed "$SEED" --num-workers 0 --no-epoch-checkpoints $SMOKE)
# the authors' stage one (davam_ptb, as davam_ptb_stage1 in common.sh trains it) for EPOCHS epochs
STAGE1=(--user-dir "$PLUGIN" --task sentence_vae --arch davam_ptb --criterion davam --optimizer sgd --lr 1.0
  --clip-norm 5 --batch-size 32 --max-epoch "$EPOCHS" --beta-start 0.15 --beta-max 5.0
  --beta-warmup-updates $((1315 * BETA_EPOCHS)) --best-checkpoint-metric rec_plus_commitment
  --save-last-interval-updates "$SAVE_LAST_EVERY" --seed "$SEED" --num-workers 0 --no-epoch-checkpoints
  "${PRECISION_FLAGS[@]}" $SMOKE)
# sweep_step WHAT COMMAND...: run one davam-sweep call, its output and start/end lines in sweep.log
sweep_step() {
  local what=$1
  shift
  log "$what: $*" | tee -a "$RUN/sweep.log"
  "$@" >> "$RUN/sweep.log" 2>&1
  log "$what: finished" | tee -a "$RUN/sweep.log"
}
if [ -z "$ADAM_EPOCHS" ]; then
  sweep_step sweep davam-sweep "$DATA" --setting --num-codes --values "$VALUES" --save-root "$RUN" \
    --out "$RUN/sweep.png" --label "PTB, $EPOCHS epochs" --prior-args="${PRIOR_ARGS[*]}" -- "${STAGE1[@]}"
  publish "$RUN/sweep" "$ROW"
  exit 0
fi
# mark_planned JSON: add the planned values ("values_planned") and whether all are done ("complete")
mark_planned() {
  python - "$1" "$VALUES" <<'PY'
import json, sys
path, planned = sys.argv[1], json.loads("[" + sys.argv[2] + "]")
with open(path) as f:
    doc = json.load(f)
doc.update(values_planned=planned, complete=doc.get("values") == planned)
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY
}
# reused K: $RESULTS/$ROW.json (the Ks published so far) holds K and $RUN/adam has no directory
# for it, as after a lost $RUNS: davam-sweep --reuse-json takes K from that file, not trained again
PUBLISHED=$RESULTS/$ROW.json
REUSE=()
reused() {
  [ -f "$PUBLISHED" ] && [ ! -e "$RUN/adam/num-codes_$1" ] &&
    python3 -c 'import json, sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1])).get("runs", {}))' \
      "$PUBLISHED" "$1"
}
plateau_flags 1
IFS=, read -ra VALUE_LIST <<< "$VALUES"
SO_FAR="" TRAINED=""
for v in "${VALUE_LIST[@]}"; do
  SO_FAR=${SO_FAR:+$SO_FAR,}$v
  if reused "$v"; then
    log "K=$v: in $PUBLISHED and not in $RUN/adam: taken from there, not trained again" | tee -a "$RUN/sweep.log"
    REUSE=(--reuse-json "$PUBLISHED")
    continue
  fi
  TRAINED=${TRAINED:+$TRAINED,}$v
  # phase 1, the warm-up: no prior (its figure, $RUN/warmup/sweep.png, shows Rec and codes in use per K)
  sweep_step "warmup K=$v" davam-sweep "$DATA" --setting --num-codes --values "$TRAINED" --save-root "$RUN/warmup" \
    --label "PTB, warm-up, $EPOCHS epochs" -- "${STAGE1[@]}"
  # phase 2: K from its own warm-up state with the fast row's Adam flags (FAST_STAGE1_FLAGS, common.sh)
  sweep_step "sweep K=$v" davam-sweep "$DATA" --setting --num-codes --values "$SO_FAR" "${REUSE[@]}" \
    --save-root "$RUN/adam" --out "$RUN/adam/sweep.png" \
    --label "PTB, $EPOCHS epochs warm-up + $ADAM_EPOCHS Adam" --prior-args="${PRIOR_ARGS[*]}" \
    -- "${STAGE1[@]}" --max-epoch "$ADAM_EPOCHS" "${FAST_STAGE1_FLAGS[@]}" "${PLATEAU_FLAGS[@]}" --stop-min-lr 0 \
    --finetune-from-model "$RUN/warmup/num-codes_{value}/checkpoints/checkpoint_last.pt"
  mark_planned "$RUN/adam/sweep.json"
  publish "$RUN/adam/sweep" "$ROW"
done
