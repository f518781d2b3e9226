#!/usr/bin/env bash
# A plain LSTM language model on PTB, the size of DAVAM's decoder (embedding 256, hidden 256,
# one layer): (1) the reference for the information DAVAM's codes carry, valid NLL(LM) - Rec
# (nats per sentence), drawn on every DAVAM curve; (2) the fluency scorer of generated samples.
#
#   nohup examples/reproduce/lstm_lm_ptb.sh > ../runs/lstm_lm_ptb.out 2>&1 &
#
# fairseq language_modeling with --sample-break-mode eos: one sentence per sample, EOS
# predicted, so its per-token loss x tokens-per-sentence x ln 2 is directly comparable with
# DAVAM's Rec. Adam 2e-3, dropout 0.3, clip 5, batch 32, stop after 3 epochs without
# improvement (at most 40). Rerun the same command to continue after an interruption;
# MAX_UPDATE=2 RUNS=/tmp/smoke examples/reproduce/lstm_lm_ptb.sh is a smoke run (in a RUNS of
# its own: a stage continues only with the command that started it, common.sh).
source "$(dirname "$0")/common.sh"
no_arguments "$@"
RUN=$RUNS/lstm_lm_ptb
prepare_ptb
TRAIN=(fairseq-train "$DATA" --user-dir "$PLUGIN" --task language_modeling --arch lstm_lm
  --sample-break-mode eos --tokens-per-sample 256 --decoder-embed-dim 256 --decoder-hidden-size 256
  --decoder-out-embed-dim 256 --decoder-layers 1 --dropout 0.3 --optimizer adam --lr 0.002 --clip-norm 5
  --batch-size 32 --max-epoch 40 --patience 3 --save-dir "$RUN/lm" --no-epoch-checkpoints
  --log-format json --log-interval 100 --seed "$SEED" --num-workers 0)
[ -n "${MAX_UPDATE:-}" ] && TRAIN+=(--max-update "$MAX_UPDATE")  # a smoke run
run_stage train "$RUN" "${TRAIN[@]}"
