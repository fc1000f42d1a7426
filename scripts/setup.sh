#!/usr/bin/env bash
# Create .venv in the repository and install the project into it.
#   bash scripts/setup.sh          the product (what `python -m nas.search` needs)
#   bash scripts/setup.sh --dev    plus test/lint tools and, when running as root on
#                                  Debian, Chromium (the MLflow-UI browser test) and
#                                  PostgreSQL (the Optuna-storage tests start their own
#                                  throwaway server from its binaries)
# pip takes torch/torchvision from the machine's local wheels where a cap is set.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
extras=""
if [ "${1:-}" = "--dev" ]; then
    extras="[dev]"
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        pkgs=()
        command -v chromedriver >/dev/null || pkgs+=(chromium chromium-driver)
        # Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH;
        # tests/nas/cluster_fixtures.py looks there.
        compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null \
            || pkgs+=(postgresql)
        # scripts/ray_cluster.sh (the multi-node tests) signals process groups via pgrep.
        command -v pgrep >/dev/null || pkgs+=(procps)
        if [ "${#pkgs[@]}" -gt 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
        fi
    fi
fi
python3 -m venv "$repo/.venv"
"$repo/.venv/bin/pip" install -q --upgrade pip
"$repo/.venv/bin/pip" install -q -e "$repo$extras"
