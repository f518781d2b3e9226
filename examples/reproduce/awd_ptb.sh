#!/usr/bin/env bash
# AWD on PTB in the three modes of the paper's Table (Miladinovic et al., PTB rows), at hidden
# 512 (a size this 2-core CPU can train; HIDDEN=2048 gives the paper's size, which needs a GPU),
# the same budget (--max-epoch 40, i.e. the KL ramp of 30,000 updates plus 17 epochs at weight 1)
# for each mode:
#
#   examples/reproduce/awd_ptb.sh none           # unregularised
#   examples/reproduce/awd_ptb.sh uniform        # word dropout R=0.4 (the paper's best), per time
#                                                # step for the whole batch, dropped words -> <unk>
#   examples/reproduce/awd_ptb.sh adversarial    # AWD R=0.2, dropped inputs -> zero, Adam adversary
#   SEED=2 examples/reproduce/awd_ptb.sh adversarial          # the second seed: row awd_ptb_adversarial_seed2
#   MAX_UPDATE=3 RUNS=/tmp/smoke examples/reproduce/awd_ptb.sh adversarial   # a smoke run
#
# Then the evaluation on the whole test set (-ELBO, Rec, KL, MI, active units, IW-NLL with
# IW_SAMPLES=100 importance samples, about an hour on one core; the paper's S=500 needs a GPU).
# Rerun the same command to continue after an interruption, in training or in the evaluation
# (its progress is kept in eval.partial.pt; see common.sh for the environment variables).
source "$(dirname "$0")/common.sh"
MODE=${1:?usage: awd_ptb.sh none|uniform|adversarial}
HIDDEN=${HIDDEN:-512}
IW_SAMPLES=${IW_SAMPLES:-100}
# the row: awd_ptb_MODE, with _hHIDDEN for another size and _seedSEED for another seed (each
# seed trains in a directory of its own: SEED=2 awd_ptb.sh none is the row awd_ptb_none_seed2)
ROW=awd_ptb_${MODE}$([ "$HIDDEN" = 512 ] || echo "_h$HIDDEN")$([ "$SEED" = 1 ] || echo "_seed$SEED")
RUN=$RUNS/$ROW
CONFIG=awd_ptb
case "$MODE" in
  none) MODE_ARGS=(model.word_dropout_mode=none model.word_dropout_rate=0.0) ;;
  uniform) MODE_ARGS=(model.word_dropout_mode=uniform model.word_dropout_rate=0.4
                      model.uniform_dropout_unit=timestep model.dropped_input=unk) ;;
  adversarial) CONFIG=awd_ptb_adversarial; MODE_ARGS=() ;;
  *) echo "error: MODE must be none, uniform or adversarial, got '$MODE'" >&2; exit 2 ;;
esac
prepare_ptb
EXTRA=()
[ -n "${MAX_UPDATE:-}" ] && EXTRA+=(optimization.max_update="$MAX_UPDATE")
[ "$PRECISION" = bf16 ] && EXTRA+=(task.bf16_autocast=true)
TRAIN=(fairseq-hydra-train --config-dir "$REPO/examples/reproduce" --config-name "$CONFIG"
  task.data="$DATA" common.user_dir="$PLUGIN" common.seed="$SEED" checkpoint.save_dir="$RUN/train"
  hydra.run.dir="$RUN/hydra" model.encoder_hidden_dim="$HIDDEN" model.decoder_hidden_dim="$HIDDEN"
  model.adversary_hidden_dim="$HIDDEN" "${MODE_ARGS[@]}" "${EXTRA[@]}")
run_stage train "$RUN" "${TRAIN[@]}"
# (a smoke run evaluates the first 40 validation sentences only, with 4 importance samples)
[ -n "${MAX_UPDATE:-}" ] && IW_ARGS=(--max-sentences 40 --iw-samples 4 --split valid) || IW_ARGS=(--iw-samples "$IW_SAMPLES" --split test)
EVAL=(davam-evaluate "$DATA" --path "$RUN/train/checkpoint_best.pt" --use-ema
  --json "$RUN/eval.json" --seed "$SEED" --resume-file "$RUN/eval.partial.pt" "${IW_ARGS[@]}")
run_stage eval "$RUN" "${EVAL[@]}"
