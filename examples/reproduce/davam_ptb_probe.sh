#!/usr/bin/env bash
# Short DAVAM stage-one probes on PTB for a faster recipe than the authors' (issue 11's
# davam_ptb_k512_fast row): each VARIANT changes one or two things of davam_ptb.sh's stage one
# and trains EPOCHS epochs (default 2) from scratch; compare the per-epoch validation Rec, codes
# in use and attention entropy with the authors' recipe at the same epochs.
#
#   examples/reproduce/davam_ptb_probe.sh adam            # Adam lr 1e-3 instead of SGD lr 1.0
#   examples/reproduce/davam_ptb_probe.sh adam_kmeans     # ... and k-means++ codebook initialisation
#   examples/reproduce/davam_ptb_probe.sh sgd_clip25      # the authors' SGD, gradient clipping at 25, not 5
#   examples/reproduce/davam_ptb_probe.sh sgd_kmeans      # the authors' SGD, k-means++ codebook initialisation
#   examples/reproduce/davam_ptb_probe.sh sgd_dead        # the authors' SGD, codes whose EMA count falls below
#                                                         # 0.02 per batch restart at an encoder state
#   examples/reproduce/davam_ptb_probe.sh beta_low        # beta held at 0.15 (the paper's text: a 10-epoch
#                                                         # warm-up before beta rises; the code ramps from update 0)
#   examples/reproduce/davam_ptb_probe.sh authors         # the authors' recipe itself
#
# Writes $RUNS/davam_probe_<VARIANT>/ (resumable like every recipe here); plot the probes
# against each other with davam-plot $RUNS/davam_probe_*/stage1.log --metrics rec,code_usage,attn_entropy.
source "$(dirname "$0")/common.sh"
VARIANT=${1:?usage: davam_ptb_probe.sh adam|adam_kmeans|sgd_clip25|sgd_kmeans|sgd_dead|beta_low|authors}
EPOCHS=${EPOCHS:-2}
RUN=$RUNS/davam_probe_$VARIANT
OPT=(--optimizer sgd --lr 1.0 --clip-norm 5)
BETA=(--beta-start 0.15 --beta-max 5.0 --beta-warmup-updates 13150)
case "$VARIANT" in
  authors) EXTRA=() ;;
  adam) OPT=(--optimizer adam --lr 0.001 --clip-norm 5); EXTRA=() ;;
  adam_kmeans) OPT=(--optimizer adam --lr 0.001 --clip-norm 5); EXTRA=(--codebook-kmeans-init) ;;
  sgd_clip25) OPT=(--optimizer sgd --lr 1.0 --clip-norm 25); EXTRA=() ;;
  sgd_kmeans) EXTRA=(--codebook-kmeans-init) ;;
  sgd_dead) EXTRA=(--codebook-dead-code-threshold 0.02) ;;
  beta_low) EXTRA=(); BETA=(--beta-start 0.15 --beta-max 0.15 --beta-warmup-updates 0) ;;
  *) echo "error: unknown VARIANT '$VARIANT' (adam, adam_kmeans, sgd_clip25, sgd_kmeans, sgd_dead, beta_low, authors)" >&2; exit 2 ;;
esac
prepare_ptb
STAGE1=(fairseq-train "$DATA" --user-dir "$PLUGIN" --task sentence_vae --arch davam_ptb --criterion davam
  --num-codes 512 "${OPT[@]}" "${EXTRA[@]}" --batch-size 32 --max-epoch "$EPOCHS"
  "${BETA[@]}"
  --lr-scheduler davam_plateau --lr-shrink 0.5 --lr-patience 2 --lr-decay-start-epoch 16 --max-lr-decays 5
  --stop-min-lr 0 --best-checkpoint-metric rec_plus_commitment
  --save-dir "$RUN/stage1" --no-epoch-checkpoints --log-format json --log-interval 100
  --seed "$SEED" --num-workers 0 "${PRECISION_FLAGS[@]}")
run_stage stage1 "$RUN" "${STAGE1[@]}"
