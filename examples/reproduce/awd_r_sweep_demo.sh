#!/usr/bin/env bash
# The AWD paper's Fig. 2 at a small, stated budget: adversarial (AWD) against uniform word
# dropout over the rate R in {0.1, ..., 0.5}, on the built-in demo corpus (davam-demo-corpus:
# 4,000 training / 300 validation sentences, 273 word types), with awd_tiny (embedding 32,
# hidden 64, latent 8), 10 epochs (1,250 updates at batch 32), KL weight 0.1 -> 1 over the first
# 1,000 updates, one Adam (lr 3e-3) for the VAE and the adversary (the plain fairseq-train
# command line has no composite optimizer; the authors use SGD + Adam), seed 1. Each value is
# evaluated with davam-evaluate on the validation split (-ELBO, KL, MI, active units, IW NLL with
# 20 samples). Writes results/awd_r_sweep_demo.{json,png} (uniform in the JSON's "compare").
#
#   nohup examples/reproduce/awd_r_sweep_demo.sh > ../runs/awd_r_sweep_demo.out 2>&1 &
#   ROW=awd_r_sweep_demo_long EPOCHS=30 KL_WARMUP=3000 VALUES=0.2,0.4 examples/reproduce/awd_r_sweep_demo.sh
#                                              # a slower KL ramp (results/$ROW.{json,png})
#
# Resumable like every recipe here (davam-sweep continues unfinished values, skips finished ones).
source "$(dirname "$0")/common.sh"
no_arguments "$@"
ROW=${ROW:-awd_r_sweep_demo}       # the run directory and the results' file name
RUN=$RUNS/$ROW
track_row "$RUN"
VALUES=${VALUES:-0.1,0.2,0.3,0.4,0.5}
EPOCHS=${EPOCHS:-10}
KL_WARMUP=${KL_WARMUP:-1000}
CORPUS=$(prepare_demo_corpus)
TRAIN=(--user-dir "$PLUGIN" --task sentence_vae --arch awd_tiny --criterion awd_elbo
  --optimizer adam --lr 0.003 --clip-norm 5 --batch-size 32 --max-epoch "$EPOCHS"
  --kl-weight-start 0.1 --kl-weight-max 1.0 --kl-warmup-updates "$KL_WARMUP" --best-checkpoint-metric neg_elbo
  --no-epoch-checkpoints --num-workers 0 --seed "$SEED" "${PRECISION_FLAGS[@]}")
EVAL="--iw-samples 20 --seed $SEED"
davam-sweep "$CORPUS" --save-root "$RUN/uniform" --setting --word-dropout-rate --values "$VALUES" \
  --evaluate-args="$EVAL" --label uniform -- "${TRAIN[@]}" --word-dropout-mode uniform
davam-sweep "$CORPUS" --save-root "$RUN/adversarial" --setting --word-dropout-rate --values "$VALUES" \
  --evaluate-args="$EVAL" --label "AWD (adversarial)" --compare "uniform=$RUN/uniform/sweep.json" \
  -- "${TRAIN[@]}" --word-dropout-mode adversarial
mkdir -p "$RESULTS"
python - "$RUN" "$RESULTS/$ROW.json" <<'PY'
import json, os, sys
run, out = sys.argv[1], sys.argv[2]
doc = json.load(open(f"{run}/adversarial/sweep.json"))
doc["compare"] = {"uniform": json.load(open(f"{run}/uniform/sweep.json"))}
doc["recipe"] = "examples/reproduce/awd_r_sweep_demo.sh"
doc["recipe_env"] = {k: os.environ.get(k) for k in ("ROW", "EPOCHS", "KL_WARMUP", "VALUES")}
json.dump(doc, open(out, "w"), indent=1)
PY
cp "$RUN/adversarial/sweep.png" "$RESULTS/$ROW.png"
log "wrote $RESULTS/$ROW.json and .png"
