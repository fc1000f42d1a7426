#!/usr/bin/env bash
# Create .venv in the repository and install the project into it.
#   bash scripts/setup.sh          the product (what `python -m nas.search` needs)
#   bash scripts/setup.sh --dev    plus test/lint tools, and Debian's Chromium for the
#                                  MLflow-UI browser test (installed when running as root)
# pip takes torch/torchvision from the machine's local wheels where a cap is set.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
extras=""
if [ "${1:-}" = "--dev" ]; then
    extras="[dev]"
    if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null \
        && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
fi
python3 -m venv "$repo/.venv"
"$repo/.venv/bin/pip" install -q --upgrade pip
"$repo/.venv/bin/pip" install -q -e "$repo$extras"
