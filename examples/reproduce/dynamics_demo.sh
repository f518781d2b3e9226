#!/usr/bin/env bash
# Training dynamics of GAVAM against DAVAM (DAVAM paper, Fig. 4(d)) at a small, stated budget:
# gavam_tiny and davam_tiny trained for the same budget on the built-in demo corpus (20 epochs
# = 2,500 updates at batch 32, Adam lr 3e-3, clip 5, seed 1; DAVAM with the demo's commitment
# schedule beta 0.15 -> 1 over 1,000 updates and k-means codebook initialisation; GAVAM with
# the plain ELBO, KL weight 1), then DAVAM's stage-two prior (davam_prior_tiny, 20 epochs,
# Adam lr 3e-3, batch 64). One figure, per epoch on the validation split: Rec of both, GAVAM's
# KL, and the prior's NLL of DAVAM's codes per sentence (DAVAM's KL term).
#
#   nohup examples/reproduce/dynamics_demo.sh > ../runs/dynamics_demo.out 2>&1 &
#
# Writes results/dynamics_demo.{png,json}. Resumable: each stage continues from its
# checkpoint_last.pt and a finished stage is skipped (common.sh).
source "$(dirname "$0")/common.sh"
no_arguments "$@"
RUN=$RUNS/dynamics_demo
EPOCHS=${EPOCHS:-20}
CORPUS=$(prepare_demo_corpus)
COMMON=(--user-dir "$PLUGIN" --optimizer adam --lr 0.003 --clip-norm 5 --max-epoch "$EPOCHS"
  --no-epoch-checkpoints --num-workers 0 --seed "$SEED" --log-format json --log-interval 25 "${PRECISION_FLAGS[@]}")
run_stage gavam "$RUN" fairseq-train "$CORPUS" --task sentence_vae --arch gavam_tiny --criterion davam \
  --batch-size 32 --best-checkpoint-metric rec --save-dir "$RUN/gavam" "${COMMON[@]}"
run_stage davam "$RUN" fairseq-train "$CORPUS" --task sentence_vae --arch davam_tiny --criterion davam \
  --beta-max 1.0 --beta-warmup-updates 1000 --codebook-kmeans-init --init-scale 0.1 \
  --batch-size 32 --best-checkpoint-metric rec --save-dir "$RUN/davam" "${COMMON[@]}"
run_stage prior "$RUN" fairseq-train "$CORPUS" --task davam_prior --davam-path "$RUN/davam/checkpoint_best.pt" \
  --arch davam_prior_tiny --criterion davam_prior --batch-size 64 --save-dir "$RUN/prior" "${COMMON[@]}"
mkdir -p "$RESULTS"
davam-plot "$RUN/gavam.log" "$RUN/davam.log" "$RUN/prior.log" --labels "GAVAM,DAVAM,DAVAM prior (stage two)" \
  --metrics rec,kl,nll_per_sentence --splits valid --x epoch --out "$RESULTS/dynamics_demo.png" \
  --json "$RESULTS/dynamics_demo.json" --title "Demo corpus: GAVAM vs DAVAM (valid, per epoch; nats per sentence)"
log "wrote $RESULTS/dynamics_demo.{png,json}"
