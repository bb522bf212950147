#!/usr/bin/env bash
# The test command: lint, type checks, then the unit and integration tiers (GPU tests skip
# without CUDA). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DAMO_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.cache/torch_extensions}
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
ruff check damo components pipelines tests benchmarks scripts
mypy damo
python -m pytest "$@"
