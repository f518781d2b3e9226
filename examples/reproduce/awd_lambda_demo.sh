#!/usr/bin/env bash
# The role of the adversary's weight lambda (AWD paper, Fig. 3: the adversary's scores and its
# gradient norm over training) at a small, stated budget: AWD (adversarial word dropout,
# R = 0.2) with lambda in {0.1, 1, 10} on the built-in demo corpus, the same model, budget and
# optimizer as examples/reproduce/awd_r_sweep_demo.sh (awd_tiny, 10 epochs = 1,250 updates,
# KL weight 0.1 -> 1 over 1,000 updates, one Adam lr 3e-3, seed 1). Per update (train, logged
# every 25 updates): the scores' mean and standard deviation, score_kl (the adversary's
# penalty, weighted by lambda) and adversary_grad_norm (L2 norm of the adversary's gradient
# per sentence); per epoch (valid): -ELBO and KL. Writes results/awd_lambda_demo.{json,png}.
#
#   nohup examples/reproduce/awd_lambda_demo.sh > ../runs/awd_lambda_demo.out 2>&1 &
#   ROW=awd_lambda_demo_long EPOCHS=30 KL_WARMUP=3000 examples/reproduce/awd_lambda_demo.sh   # slower KL ramp
#
# Resumable (davam-sweep); the corpus: prepare_demo_corpus in common.sh.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
ROW=${ROW:-awd_lambda_demo}        # the run directory and the results' file names
RUN=$RUNS/$ROW
track_row "$RUN"
VALUES=${VALUES:-0.1,1,10}
EPOCHS=${EPOCHS:-10}
KL_WARMUP=${KL_WARMUP:-1000}
CORPUS=$(prepare_demo_corpus)
davam-sweep "$CORPUS" --save-root "$RUN" --setting --adversary-lambda --values "$VALUES" \
  --evaluate-args="--iw-samples 20 --seed $SEED" -- --user-dir "$PLUGIN" --task sentence_vae --arch awd_tiny \
  --criterion awd_elbo --word-dropout-mode adversarial --word-dropout-rate 0.2 \
  --optimizer adam --lr 0.003 --clip-norm 5 --batch-size 32 --max-epoch "$EPOCHS" \
  --kl-weight-start 0.1 --kl-weight-max 1.0 --kl-warmup-updates "$KL_WARMUP" --best-checkpoint-metric neg_elbo \
  --no-epoch-checkpoints --num-workers 0 --seed "$SEED" --log-interval 25 "${PRECISION_FLAGS[@]}"
mkdir -p "$RESULTS"
LOGS=(); LABELS=()
IFS=, read -ra VS <<< "$VALUES"
for v in "${VS[@]}"; do LOGS+=("$RUN/adversary-lambda_$v/train.log"); LABELS+=("lambda=$v"); done
davam-plot "${LOGS[@]}" --labels "$(IFS=,; echo "${LABELS[*]}")" --x update --splits train \
  --metrics score_mean,score_std,score_kl,adversary_grad_norm,kl --out "$RESULTS/$ROW.png" \
  --json "$RESULTS/$ROW.json" --title "AWD on the demo corpus, R = 0.2: the adversary over training"
cp "$RUN/sweep.json" "$RESULTS/${ROW}_final.json"
log "wrote $RESULTS/$ROW.{json,png} and ${ROW}_final.json (final -ELBO, KL, MI per lambda)"
