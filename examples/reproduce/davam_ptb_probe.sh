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
# Branch probes continue a stage-one checkpoint past beta's warm-up (FROM, for example a copy
# of ../runs/davam_ptb_k512_fast/stage1/checkpoint_last.pt) for EPOCHS more epochs with another
# optimizer or rate, with the optimizer and the rate schedule started afresh (beta held at the
# recipe's 5: --reset-optimizer restarts fairseq's update count, which drives beta), the epoch
# count and data order continuing the checkpoint's:
#   FROM=CKPT examples/reproduce/davam_ptb_probe.sh adam_from      # Adam lr 5e-4
#   FROM=CKPT examples/reproduce/davam_ptb_probe.sh sgd_low_from   # SGD lr 0.125
#   FROM=CKPT examples/reproduce/davam_ptb_probe.sh adam_dead_from # Adam lr 5e-4, and codes whose EMA
#                      # count falls below 0.02 per batch restart at an encoder state (sgd_dead's
#                      # rule from a trained state: does a complete codebook let the low rate pay?)
#   FROM=CKPT SHRINK=0.5 examples/reproduce/davam_ptb_probe.sh sgd_decay_from
#                      # SGD from lr 1.0, the rate multiplied by SHRINK after every epoch past FROM's
#                      # (fairseq's --lr-scheduler fixed --force-anneal; default SHRINK=0.5)
#   (ROW_SUFFIX=_e21 names the run davam_probe_<VARIANT>_e21, to keep probes from different FROMs apart)
#
# Writes $RUNS/davam_probe_<VARIANT>/ (resumable like every recipe here); plot the probes
# against each other with davam-plot $RUNS/davam_probe_*/stage1.log --metrics rec,code_usage,attn_entropy.
source "$(dirname "$0")/common.sh"
VARIANT=${1:?usage: davam_ptb_probe.sh adam|adam_kmeans|sgd_clip25|sgd_kmeans|sgd_dead|beta_low|authors|adam_from|adam_dead_from|sgd_low_from|sgd_decay_from}
EPOCHS=${EPOCHS:-2}
RUN=$RUNS/davam_probe_$VARIANT${ROW_SUFFIX:-}
case "$VARIANT" in  # flags that replace the recipe's (davam_ptb_stage1 in common.sh)
  authors) FLAGS=() ;;
  adam) FLAGS=(--optimizer adam --lr 0.001) ;;
  adam_kmeans) FLAGS=(--optimizer adam --lr 0.001 --codebook-kmeans-init) ;;
  sgd_clip25) FLAGS=(--clip-norm 25) ;;
  sgd_kmeans) FLAGS=(--codebook-kmeans-init) ;;
  sgd_dead) FLAGS=(--codebook-dead-code-threshold 0.02) ;;
  beta_low) FLAGS=(--beta-max 0.15 --beta-warmup-updates 0) ;;
  adam_from) FLAGS=(--optimizer adam --lr 0.0005) ;;
  adam_dead_from) FLAGS=(--optimizer adam --lr 0.0005 --codebook-dead-code-threshold 0.02) ;;
  sgd_low_from) FLAGS=(--lr 0.125) ;;
  sgd_decay_from) FLAGS=() ;;  # the schedule needs FROM's epoch: below
  *) echo "error: unknown VARIANT '$VARIANT' (adam, adam_kmeans, sgd_clip25, sgd_kmeans, sgd_dead, beta_low, authors, adam_from, adam_dead_from, sgd_low_from, sgd_decay_from)" >&2; exit 2 ;;
esac
if [[ $VARIANT != *_from ]]; then
  prepare_ptb
  davam_ptb_stage1 "$RUN" --max-epoch "$EPOCHS" "${FLAGS[@]}"
  exit
fi
# a branch probe: FROM's last finished epoch and its update count (fairseq stores the epoch to
# train next, with the batches of it already done: epoch E, 0 batches after finishing E - 1)
[ -n "${FROM:-}" ] && [ -f "$FROM" ] || { echo "error: $VARIANT continues a checkpoint: set FROM to a stage-one checkpoint file (FROM='${FROM:-}')" >&2; exit 2; }
read -r START UPDATES < <(python - "$FROM" 2>/dev/null <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print(state["extra_state"]["train_iterator"]["epoch"] - 1, state["optimizer_history"][-1]["num_updates"])
PY
) || { echo "error: FROM=$FROM is not a readable fairseq checkpoint" >&2; exit 2; }
[ "$UPDATES" -ge 13150 ] || { echo "error: FROM=$FROM is at update $UPDATES, inside beta's warm-up (13,150 updates): branch after it" >&2; exit 2; }
if [ "$VARIANT" = sgd_decay_from ]; then
  SHRINK=${SHRINK:-0.5}
  [[ $SHRINK =~ ^0?\.[0-9]+$ ]] || { echo "error: SHRINK must be a number between 0 and 1, such as 0.5, got '$SHRINK'" >&2; exit 2; }
  STAGE1_SCHEDULER=(--lr-scheduler fixed --force-anneal $((START + 1)) --lr-shrink "$SHRINK")
fi
prepare_ptb
BRANCH=(--max-epoch $((START + EPOCHS)) --beta-start 5.0 --beta-max 5.0 --beta-warmup-updates 0)
restore_afresh "$RUN" "$FROM"  # first start: from FROM, optimizer and schedule afresh
BRANCH+=("${RESTORE_FLAGS[@]}")
davam_ptb_stage1 "$RUN" "${FLAGS[@]}" "${BRANCH[@]}"
