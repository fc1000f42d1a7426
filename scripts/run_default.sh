#!/usr/bin/env bash
# Install the project into .venv and run the default search (+hw=mobile on mnist5k).
# Outputs (mlflow.db, the study journal, artifacts) go to the current directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python3 -m venv "$repo/.venv"
"$repo/.venv/bin/pip" install -q --upgrade pip
"$repo/.venv/bin/pip" install -q -e "$repo"
"$repo/.venv/bin/python" -m nas.search +hw=mobile "$@"
