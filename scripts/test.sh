#!/usr/bin/env bash
# Install the project with its dev extras into .venv and run the test suite.
# pip takes torch/torchvision from the machine's local wheels where a cap is set.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test (tests/nas/test_browser.py) drives the MLflow UI in Debian's headless
# Chromium; without it (and without root to install it) that one test is skipped.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
.venv/bin/python -m pytest "$@"
