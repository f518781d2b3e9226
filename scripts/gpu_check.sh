#!/usr/bin/env bash
# GPU check, ready to run on a CUDA machine (about 8-10 minutes on one modern GPU):
#   1. the tests marked `cuda` (device placement of quantizer, prior and generation;
#      --bf16-autocast on CUDA; fairseq's --fp16 and --amp steps with the plugin's models)
#   2. training throughput of davam_ptb and awd_ptb in fp32, fp16 (the model cast, as
#      fairseq's --fp16 does) and --bf16-autocast (scripts/bench_train.py --device cuda)
#   3. the two-stage demo on the GPU with --bf16-autocast
# and one summary table at the end. Everything is written under $OUT (default gpu-check/).
#
#   bash scripts/gpu_check.sh            # after `make venv` (a CUDA torch 2.13 is reused)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
if ! "$BIN/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA GPU visible to $BIN/python (torch.cuda.is_available() is False)" >&2
  exit 2
fi
"$BIN/python" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| bf16 supported:', torch.cuda.is_bf16_supported())" | tee "$OUT/device.txt"

status() { [ "$1" -eq 0 ] && echo PASS || echo "FAIL (exit $1)"; }

echo "== 1. pytest -m cuda"
t0=$SECONDS
"$BIN/python" -m pytest -m cuda -q tests/cli/test_cuda.py 2>&1 | tee "$OUT/pytest_cuda.txt"
TESTS=${PIPESTATUS[0]}; TESTS_S=$((SECONDS - t0))

echo "== 2. throughput (bench_train.py --device cuda)"
t0=$SECONDS
"$BIN/python" scripts/bench_train.py --device cuda --models davam_ptb,awd_ptb --precisions fp32,fp16,bf16 \
  --steps 60 --warmup 10 --awd-steps 20 --awd-warmup 5 --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
BENCH=${PIPESTATUS[0]}; BENCH_S=$((SECONDS - t0))

echo "== 3. the two-stage demo with --bf16-autocast on the GPU"
t0=$SECONDS
WORK="$OUT/demo" DEMO_DEVICE="" DEMO_PRECISION="--bf16-autocast" bash scripts/demo.sh 2>&1 | tee "$OUT/demo.txt"
DEMO=${PIPESTATUS[0]}; DEMO_S=$((SECONDS - t0))

echo
echo "== summary ($(cat "$OUT/device.txt"))"
printf '%-34s %-16s %8s\n' "check" "result" "seconds"
printf '%-34s %-16s %8s\n' "pytest -m cuda" "$(status $TESTS)" "$TESTS_S"
printf '%-34s %-16s %8s\n' "bench_train.py (6 runs)" "$(status $BENCH)" "$BENCH_S"
printf '%-34s %-16s %8s\n' "demo --bf16-autocast (2 stages)" "$(status $DEMO)" "$DEMO_S"
if [ -f "$OUT/bench.json" ]; then
  "$BIN/python" - "$OUT/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{'model':10s} {'precision':9s} {'tok/s':>9s} {'peak MiB':>9s}")
for x in r["results"]:
    print(f"{x['variant']:10s} {x['precision']:9s} {x['tokens_per_s_median']:9.0f} {x['peak_memory_mib']:9.0f}")
PY
fi
grep -E "^rec|Ent|Dist" "$OUT/demo.txt" | head -5
[ "$TESTS" -eq 0 ] && [ "$BENCH" -eq 0 ] && [ "$DEMO" -eq 0 ]
