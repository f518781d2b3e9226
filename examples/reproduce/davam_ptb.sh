#!/usr/bin/env bash
# DAVAM on PTB, stage one with the authors' schedule (Fang et al., Table I, PTB row "DAVAM").
#
#   examples/reproduce/davam_ptb.sh davam_ptb_k512        # the authors' recipe
#   nohup examples/reproduce/davam_ptb.sh davam_ptb_k512 > ../runs/davam_ptb_k512.out 2>&1 &
#
# Stage one: SGD lr 1.0, clip 5, batch 32, beta 0.15 -> 5 over the first 10 epochs (13,150
# updates), lr halved after 2 epochs without improvement of validation Rec + commitment
# from epoch 16 on (fairseq numbering), best weights reloaded at each halving, stop after 5
# halvings (--lr-scheduler davam_plateau), at most 100 epochs. Rerun the same command to
# continue after an interruption (see common.sh for the environment variables).
source "$(dirname "$0")/common.sh"
ROW=${1:?usage: davam_ptb.sh ROW (davam_ptb_k512)}
RUN=$RUNS/$ROW
case "$ROW" in
  davam_ptb_k512) ;;  # K = 512, as davam_ptb_stage1 (common.sh) trains it
  *) echo "error: unknown row '$ROW' (known: davam_ptb_k512)" >&2; exit 2 ;;
esac
prepare_ptb
davam_ptb_stage1 "$RUN"
# Stage two: the PixelCNN prior over the codes of the frozen best stage-one model, with the
# authors' settings (arch davam_prior: width 512, 15 gated layers, kernel 5; SGD lr 0.5, clip 5,
# batch 32, at most 50 epochs, the same plateau schedule watching the validation NLL).
STAGE2=(fairseq-train "$DATA" --user-dir "$PLUGIN" --task davam_prior --davam-path "$RUN/stage1/checkpoint_best.pt"
  --arch davam_prior --criterion davam_prior --optimizer sgd --lr 0.5 --clip-norm 5 --batch-size 32 --max-epoch 50
  --lr-scheduler davam_plateau --lr-shrink 0.5 --lr-patience 2 --lr-decay-start-epoch 16 --max-lr-decays 5
  --stop-min-lr 0 --save-dir "$RUN/stage2" --no-epoch-checkpoints --log-format json --log-interval 100
  --seed "$SEED" --num-workers 0 "${PRECISION_FLAGS[@]}")
[ -n "${MAX_UPDATE:-}" ] && STAGE2+=(--max-update "$MAX_UPDATE")  # a smoke run of stage two
run_stage stage2 "$RUN" "${STAGE2[@]}"
# Evaluation on the test set: Rec, the paper's KL/PPL and the true bound (davam-evaluate).
EVAL=(davam-evaluate "$DATA" --path "$RUN/stage1/checkpoint_best.pt" --prior-path "$RUN/stage2/checkpoint_best.pt"
  --split test --json "$RUN/eval_test.json" "${PRECISION_FLAGS[@]}")
run_stage eval "$RUN" "${EVAL[@]}"
