#!/usr/bin/env bash
# The DAVAM paper's data augmentation (Fig. 3) on SNLI: language models trained on 1k / 2k / 4k
# SNLI sentences plus 0.5x / 1x / 2x / 4x as many sentences generated from scratch by a DAVAM
# (stage one and prior) trained on the same subset, against the same LM without them.
#
#   nohup examples/reproduce/snli_augment.sh > ../runs/snli_augment.out 2>&1 &
#   MAX_UPDATE=2 SIZES=100,200 examples/reproduce/snli_augment.sh   # a smoke run
#
# DAVAM_SIZE=M (row snli_augment_pretrained): one DAVAM and prior trained on M sentences of the
# pool (M >= the largest size; 9000 is all of it) give every size's samples, as the paper's
# "pre-trained DAVAM" (davam-augment --davam-size); the LMs still see only their own 1k / 2k /
# 4k real sentences. Its directory is $RUNS/snli_augment_pretrained and its results
# $RESULTS/snli_augment_pretrained.{png,json}.
#   nohup env DAVAM_SIZE=9000 examples/reproduce/snli_augment.sh > ../runs/snli_augment_pretrained.out 2>&1 &
#
# davam-augment with its stated settings (davam_plugin/cli/augment.py: which SNLI split is
# used for what; test.txt is held out), the prior under --bf16-autocast (PRIOR_PRECISION,
# as in davam_ptb.sh), one thread. Writes $RUNS/snli_augment/ (rerun the same command to
# continue: finished stages are skipped, an unfinished training resumes) and, when done,
# $RESULTS/snli_augment.{png,json} (RESULTS=results by default).
#
# Environment (besides common.sh's): SNLI=../shared/data/snli (valid.txt, test.txt),
# SIZES=1000,2000,4000, RATIOS=0.5,1,2,4, DAVAM_SIZE= (a DAVAM per size), PRIOR_PRECISION=bf16.
source "$(dirname "$0")/common.sh"
no_arguments "$@"
SNLI=${SNLI:-$REPO/../shared/data/snli}
DAVAM_SIZE=${DAVAM_SIZE:-}
require_positive_int DAVAM_SIZE
ROW=snli_augment SHARED=()
if [ -n "$DAVAM_SIZE" ]; then ROW=snli_augment_pretrained SHARED=(--davam-size "$DAVAM_SIZE"); fi
RUN=$RUNS/$ROW
SIZES=${SIZES:-1000,2000,4000}
RATIOS=${RATIOS:-0.5,1,2,4}
PRIOR_PRECISION=${PRIOR_PRECISION:-bf16}
precision_flags PRIOR_PRECISION
for f in valid test; do
  [ -f "$SNLI/$f.txt" ] || { echo "error: $SNLI/$f.txt not found: set SNLI to the SNLI sentences directory" >&2; exit 2; }
done
SMOKE="" SAMPLE_SMOKE=""
if [ -n "${MAX_UPDATE:-}" ]; then  # a smoke run: MAX_UPDATE updates per training, short samples
  SMOKE="--max-update $MAX_UPDATE" SAMPLE_SMOKE="--prior-max-len 10 --max-len-b 20"
fi
track_row "$RUN"
AUGMENT=(davam-augment --source "$SNLI/valid.txt" --test "$SNLI/test.txt" --work-dir "$RUN"
  --sizes "$SIZES" --ratios "$RATIOS" "${SHARED[@]}" --seed "$SEED" --out "$RUN/augment.png"
  --davam-args="$SMOKE" --prior-args="${PRIOR_PRECISION_FLAGS[*]} $SMOKE" --sample-args="$SAMPLE_SMOKE" --lm-args="$SMOKE")
log "augment: ${AUGMENT[*]}" | tee -a "$RUN/augment.log"
"${AUGMENT[@]}" >> "$RUN/augment.log" 2>&1
log "augment: finished"
publish "$RUN/augment" "$ROW"
