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
case "$VARIANT" in  # flags that replace the recipe's (davam_ptb_stage1 in common.sh)
  authors) FLAGS=() ;;
  adam) FLAGS=(--optimizer adam --lr 0.001) ;;
  adam_kmeans) FLAGS=(--optimizer adam --lr 0.001 --codebook-kmeans-init) ;;
  sgd_clip25) FLAGS=(--clip-norm 25) ;;
  sgd_kmeans) FLAGS=(--codebook-kmeans-init) ;;
  sgd_dead) FLAGS=(--codebook-dead-code-threshold 0.02) ;;
  beta_low) FLAGS=(--beta-max 0.15 --beta-warmup-updates 0) ;;
  *) echo "error: unknown VARIANT '$VARIANT' (adam, adam_kmeans, sgd_clip25, sgd_kmeans, sgd_dead, beta_low, authors)" >&2; exit 2 ;;
esac
prepare_ptb
davam_ptb_stage1 "$RUN" --max-epoch "$EPOCHS" "${FLAGS[@]}"
