#!/usr/bin/env bash
# Create or update the project's virtual environment (default .venv). Idempotent: when the
# environment already matches this script and setup.py it returns in about a second.
#
#   1. torch==2.13.0, first and alone. A torch 2.13 already importable by the base Python
#      (e.g. a CUDA build on a GPU box) is reused: the venv then sees system site-packages.
#   2. ve-fairseq==0.12.3 with --no-deps (official fairseq does not install on Python 3.11;
#      its torchaudio dependency does not load under torch 2.13 and is never used).
#   3. The remaining dependencies (numpy pinned < 2: fairseq uses np.compat), pytest, and
#      this package in editable mode (without deps, all installed above).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
FAIRSEQ_PKG="ve-fairseq==0.12.3"
DEPS=("hydra-core>=1.3.2" omegaconf "numpy<2" bitarray scikit-learn tqdm "sacrebleu>=1.4.12" regex sentencepiece sacremoses matplotlib pytest pytest-xdist)

stamp_content() { cat "$0" setup.py | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.davam_plugin_env"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_content)" ] \
    && "$VENV/bin/python" -c "import torch, fairseq, davam_plugin" >/dev/null 2>&1; then
  echo "[setup_env] $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  venv_flags=()
  if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" >/dev/null 2>&1; then
    echo "[setup_env] reusing the torch $TORCH_VERSION installed for $PYTHON"
    venv_flags=(--system-site-packages)
  fi
  echo "[setup_env] creating $VENV"
  "$PYTHON" -m venv "${venv_flags[@]}" "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" >/dev/null 2>&1; then
  echo "[setup_env] installing torch==$TORCH_VERSION"
  "${PIP[@]}" "torch==$TORCH_VERSION"
fi
echo "[setup_env] installing $FAIRSEQ_PKG (--no-deps) and dependencies"
"${PIP[@]}" --no-deps "$FAIRSEQ_PKG"
"${PIP[@]}" "${DEPS[@]}"
"${PIP[@]}" --no-deps -e .
"$VENV/bin/python" -c "import torch, fairseq, davam_plugin, numpy; assert numpy.__version__ < '2'" 2>/dev/null
stamp_content > "$STAMP"
echo "[setup_env] $VENV ready"
