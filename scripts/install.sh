#!/usr/bin/env bash
# Idempotent install: a venv in .venv with damo (editable) and its dev extras.
# Re-running is a no-op unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DAMO_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.damo-install-stamp"
# NLTK data (WordNet 3.0) for the official CHAIR/AMBER matching; idempotent, so it runs every time.
bash scripts/install_nltk_data.sh
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "damo: environment in $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch and torchvision first and together: torch 2.14.1 / torchvision 0.29.1 lie on this machine's
# disk (pip takes them from there), and they are the only pair whose torchvision imports here
# (open_clip needs torchvision). Installing them in one command stops pip from pairing a CPU torch
# with an incompatible torchvision.
"$VENV/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$VENV/bin/python" -m pip install --quiet -e ".[dev]"
# DeepSpeed JIT-compiles its ops with gcc on first use; one folder for the project so that the
# test suite and the local run pay each build once.
mkdir -p .cache/torch_extensions
echo "$want" > "$stamp"
echo "damo: installed into $VENV"
