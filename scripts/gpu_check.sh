#!/usr/bin/env bash
# The GPU check (issue 16): training throughput and the default search on a GPU machine.
#
# Prepare here (where pip reaches the registry), once:
#   bash scripts/gpu_wheels.sh        # the default search's missing wheels -> shared/wheels/
# then on the device machine (shared/ travels with the tree; nothing to carry):
#   bash scripts/gpu_check.sh         # ~6 min on an H200; results in $OUT (./gpu_check_out)
#
# 1. scripts/bench_gpu.py --device cuda: samples/s of a training step of the largest and
#    the median mbconv candidate and of one supernet sandwich step, at fp32, bf16 and
#    fp16 (torch and timm only; no wheel needed)        -> gpu_side.json, bench.log
# 2. the wheels of shared/wheels/ installed with pip (--no-index, into /tmp/gpu_site),
#    then the default search `python -m nas.search $GPU_CHECK_ARGS train.device=cuda`
#    in a fresh directory, timed                         -> gpu_job.json, search.log,
#                                                           mlflow.db, pareto.csv
# 3. bench_gpu.py combine: GPU over 2 CPU cores (docs/bench/gpu_cpu_side.json and
#    docs/bench/cpu_default_run.json, both measured on the 2-core machine) and each
#    side's breakdown of a trial's time
#                                                        -> gpu.json (for docs/bench/)
# A step that fails is logged and its figures stay null; the later steps still run.
#
# GPU_CHECK_ARGS: the search's overrides, "+hw=mobile" by default, the README's quick
#   start and the command docs/bench/cpu_default_run.json recorded, so trials/minute
#   compare.
# GPU_CHECK_SEARCH_TIMEOUT: seconds for step 2 (default 420; the search itself stops
#   starting trials at search.timeout_s=250).
# GPU_CHECK_BENCH_ARGS: extra bench_gpu.py arguments (e.g. --quick for a smoke run).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$repo/gpu_check_out}"
py="${PYTHON:-python3}"
search_args="${GPU_CHECK_ARGS-+hw=mobile}"
search_timeout="${GPU_CHECK_SEARCH_TIMEOUT:-420}"
device="${GPU_CHECK_DEVICE:-cuda}"
wheels="$repo/shared/wheels"
site=/tmp/gpu_site
src=/tmp/gpu_src
work=/tmp/gpu_search
mkdir -p "$out"
export PYTHONUNBUFFERED=1
cd "$repo" || exit 1

log() { echo "gpu_check.sh: $*" | tee -a "$out/bench.log" >&2; }

# -- 0. the machine -------------------------------------------------------------------
{
    date -u +%FT%TZ
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    "$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
        "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
    nproc
} >"$out/bench.log" 2>&1

# -- 1. training throughput (torch + timm only) ----------------------------------------
t0=$(date +%s)
# shellcheck disable=SC2086  # GPU_CHECK_BENCH_ARGS is a list of words
timeout 240 "$py" scripts/bench_gpu.py --device "$device" --out "$out/gpu_side.json" \
    ${GPU_CHECK_BENCH_ARGS:-} >>"$out/bench.log" 2>&1 \
    || log "bench_gpu.py failed (exit $?); gpu_side.json is missing"
log "step 1 (throughput) took $(($(date +%s) - t0)) s"

# -- 2. the default search on the GPU --------------------------------------------------
t0=$(date +%s)
rm -rf "$site" "$src" "$work"
mkdir -p "$site" "$src" "$work"
if compgen -G "$wheels/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl >>"$out/bench.log" 2>&1 \
        || log "pip install of shared/wheels failed"
else
    log "no wheels in $wheels (run scripts/gpu_wheels.sh here first); trying without"
fi
# The project from source without installing it: nas.conf is ./conf (pyproject's
# package-dir), so the packages are copied with conf/ placed as nas/conf.
cp -r nas compress search_spaces "$src"/
rm -rf "$src/nas/conf" && cp -r conf "$src/nas/conf"
export PYTHONPATH="$src:$site${PYTHONPATH:+:$PYTHONPATH}"
log "step 2 setup (wheels, sources) took $(($(date +%s) - t0)) s"
# shellcheck disable=SC2086  # search_args is a list of overrides
cmd="python -m nas.search $search_args train.device=$device search.progress=false"
start=$(date +%s.%N)
(cd "$work" && timeout "$search_timeout" "$py" -m nas.search $search_args \
    "train.device=$device" search.progress=false) >"$out/search.log" 2>&1
rc=$?
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "step 2 (search) exit $rc in $wall s"
[ -f "$work/mlflow.db" ] && cp "$work/mlflow.db" "$out/mlflow.db"
pareto="$(find "$work/outputs" -maxdepth 2 -name pareto.csv 2>/dev/null | head -1)"
[ -n "$pareto" ] && cp "$pareto" "$out/pareto.csv"
# The trial count: the "Study NAME: N trials (...)" line the search prints at its end.
n_trials="$(sed -n 's/^Study [^:]*: \([0-9][0-9]*\) trials.*/\1/p' "$out/search.log" | tail -1)"
if [ "$rc" = 0 ] && [ -n "$n_trials" ]; then
    printf '{"command": "%s", "exit": %s, "n_trials": %s, "wall_seconds": %s}\n' \
        "$cmd" "$rc" "$n_trials" "$wall" >"$out/gpu_job.json"
else
    log "the search did not finish (exit $rc): no gpu_job.json; see search.log"
fi

# -- 3. the record ---------------------------------------------------------------------
gpu_run=()
[ -f "$out/mlflow.db" ] && gpu_run=(--gpu-run "$out/mlflow.db")
gpu_job=()
[ -f "$out/gpu_job.json" ] && gpu_job=(--gpu-job "$out/gpu_job.json")
"$py" scripts/bench_gpu.py combine --cpu docs/bench/gpu_cpu_side.json \
    --default-run docs/bench/cpu_default_run.json \
    --gpu "$out/gpu_side.json" "${gpu_job[@]}" "${gpu_run[@]}" \
    --out "$out/gpu.json" >/dev/null 2>>"$out/bench.log" \
    || log "combine failed"
log "done: $(ls "$out" | tr '\n' ' ')"
tail -n 25 "$out/bench.log"
[ -f "$out/gpu.json" ] && cat "$out/gpu.json"
exit 0
