#!/usr/bin/env bash
# Install the project with its dev extras into .venv and run the test suite.
# pip takes torch/torchvision from the machine's local wheels where a cap is set.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
.venv/bin/python -m pytest "$@"
