#!/usr/bin/env bash
# `make demo`: DAVAM stage one on the built-in demo corpus, through the fairseq CLI.
#   1. generate the corpus (seeded grammar, 4000/300/203 sentences) and binarize it
#   2. train davam_tiny for 4000 updates, about two minutes on CPU (fairseq-train, progress
#      shown; a fixed update count makes the numbers reproducible across machines).
#      Short-run settings, not the paper's: Adam, k-means++ codebook initialisation,
#      weights ~ U(-0.1, 0.1) and beta_max 1 make the codes useful within minutes (with the
#      authors' SGD/init the codebook needs ~1000 updates before more than one code is used).
#   3. measure the test split (fairseq-validate) and reconstruct it (fairseq-generate)
#   4. print a summary
#   5. stage two: fit the PixelCNN prior to the frozen model's codes (fairseq-train --task
#      davam_prior, davam_prior_tiny, PRIOR_UPDATES updates, about 40 seconds)
#   6. evaluate with the prior (davam-evaluate: both KL conventions and the true bound)
#   7. generate 100 sentences from scratch (fairseq-generate --sample-from-prior) and
#      measure their diversity (davam-diversity); print a few
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
WORK=${WORK:-demo-work}
UPDATES=${DEMO_UPDATES:-4000}        # about 2 minutes on 2 free CPU cores
PRIOR_UPDATES=${DEMO_PRIOR_UPDATES:-600}
MAX_MINUTES=${DEMO_MAX_MINUTES:-5}   # safety cap for slow machines
export PYTHONWARNINGS=ignore OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# DEMO_DEVICE="" runs on a GPU when there is one (default: --cpu); DEMO_PRECISION="--bf16-autocast"
# runs every model under bfloat16 autocast (scripts/gpu_check.sh does both)
read -r -a DEVICE <<< "${DEMO_DEVICE---cpu}"
read -r -a PRECISION <<< "${DEMO_PRECISION-}"
PLUGIN=$(pwd)/davam_plugin
mkdir -p "$WORK"
# fairseq logs a tensorboardX notice when the davam-* commands import it: not the demo's business
no_notice() { grep -v "^INFO:fairseq.tasks.text_to_speech" || true; }

echo "== 1. demo corpus -> $WORK/data-bin"
"$BIN/davam-demo-corpus" --out-dir "$WORK/raw" --seed 1 2>&1 | no_notice
"$BIN/davam-prepare-corpus" --trainpref "$WORK/raw/train.txt" --validpref "$WORK/raw/valid.txt" \
  --testpref "$WORK/raw/test.txt" --destdir "$WORK/data-bin" --no-tokenize --overwrite --quiet 2>&1 | no_notice

echo "== 2. fairseq-train davam_tiny for $UPDATES updates (about 2 minutes on CPU; at most $MAX_MINUTES)"
rm -rf "$WORK/checkpoints"
"$BIN/fairseq-train" "$WORK/data-bin" --user-dir "$PLUGIN" --task sentence_vae --arch davam_tiny \
  --criterion davam --beta-max 1.0 --beta-warmup-updates 1000 \
  --codebook-kmeans-init --init-scale 0.1 \
  --optimizer adam --lr 0.003 --clip-norm 5 --batch-size 32 \
  --max-update "$UPDATES" --stop-time-hours "$(awk "BEGIN{print $MAX_MINUTES / 60}")" \
  --save-dir "$WORK/checkpoints" --no-epoch-checkpoints --best-checkpoint-metric rec \
  "${DEVICE[@]}" "${PRECISION[@]}" --log-format simple --log-interval 50 --seed 1 2>&1 | tee "$WORK/train.log" \
  | grep --line-buffered -E "train_inner|valid on|done training"

echo "== 3. fairseq-validate and fairseq-generate on the test split"
"$BIN/fairseq-validate" "$WORK/data-bin" --user-dir "$PLUGIN" --task sentence_vae \
  --path "$WORK/checkpoints/checkpoint_best.pt" --valid-subset test --batch-size 64 "${DEVICE[@]}" "${PRECISION[@]}" \
  --log-format json > "$WORK/validate_test.log" 2>&1
"$BIN/fairseq-generate" "$WORK/data-bin" --user-dir "$PLUGIN" --task sentence_vae \
  --path "$WORK/checkpoints/checkpoint_best.pt" --gen-subset test --beam 5 --batch-size 64 "${DEVICE[@]}" "${PRECISION[@]}" \
  > "$WORK/generate_test.txt" 2>&1

echo "== 4. summary"
"$BIN/python" scripts/demo_summary.py --validate-log "$WORK/validate_test.log" \
  --generate-output "$WORK/generate_test.txt" --examples 5

echo "== 5. stage two: fairseq-train --task davam_prior for $PRIOR_UPDATES updates"
rm -rf "$WORK/prior"
"$BIN/fairseq-train" "$WORK/data-bin" --user-dir "$PLUGIN" --task davam_prior \
  --davam-path "$WORK/checkpoints/checkpoint_best.pt" --arch davam_prior_tiny --criterion davam_prior \
  --optimizer adam --lr 0.003 --clip-norm 5 --batch-size 64 --max-update "$PRIOR_UPDATES" \
  --stop-time-hours "$(awk "BEGIN{print $MAX_MINUTES / 60}")" \
  --save-dir "$WORK/prior" --no-epoch-checkpoints "${DEVICE[@]}" "${PRECISION[@]}" --log-format simple --log-interval 100 --seed 1 2>&1 \
  | tee "$WORK/prior_train.log" | grep --line-buffered -E "davam_prior: train|valid on|done training"

echo "== 6. davam-evaluate on the test split (nats; tokens = words + EOS)"
"$BIN/davam-evaluate" "$WORK/data-bin" --path "$WORK/checkpoints/checkpoint_best.pt" \
  --prior-path "$WORK/prior/checkpoint_best.pt" --split test --json "$WORK/eval_test.json" "${DEVICE[@]}" "${PRECISION[@]}" 2>&1 \
  | grep -v " | INFO | \|^INFO:fairseq.tasks.text_to_speech"

echo "== 7. 100 sentences generated from scratch (fairseq-generate --sample-from-prior 100)"
"$BIN/fairseq-generate" "$WORK/data-bin" --user-dir "$PLUGIN" --task sentence_vae \
  --path "$WORK/checkpoints/checkpoint_best.pt" --prior-path "$WORK/prior/checkpoint_best.pt" \
  --sample-from-prior 100 --beam 1 --sampling --seed 1 --batch-size 100 "${DEVICE[@]}" "${PRECISION[@]}" > "$WORK/generate_prior.txt" 2>&1
"$BIN/davam-diversity" "$WORK/generate_prior.txt" --json "$WORK/diversity.json" 2>&1 | no_notice
grep -P "^H-[0-4]\t" "$WORK/generate_prior.txt" | cut -f3 | sed 's/^/  /'
