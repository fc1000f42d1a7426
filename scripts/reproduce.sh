#!/usr/bin/env bash
# Regenerate every benchmark record (issue 27), saying how long each part takes.
#
#   scripts/reproduce.sh --quick [--dry-run] [PART...]   # quick forms -> build/reproduce/quick/bench/
#   scripts/reproduce.sh --full  [--dry-run] [PART...]   # full forms  -> docs/bench/ (the real records)
#
# Resumable: a part whose record was written at the current commit (its marker in
# build/reproduce/<mode>/done/) is skipped, and each part's runs keep their own workdir
# under build/reproduce/<mode>/work/ (the harness resumes its units there). --quick
# never overwrites docs/bench/: it renders its own page from its records, then checks
# the committed page with make_results.py --check. GPU parts are skipped without
# nvidia-smi. PART names limit the run to those parts.
set -euo pipefail

mode="" dry=0 only=()
for a in "$@"; do
  case "$a" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "reproduce.sh: unknown option $a (use --quick or --full, --dry-run)" >&2; exit 2 ;;
    *) only+=("$a") ;;
  esac
done
[ -n "$mode" ] || { echo "reproduce.sh: give --quick or --full" >&2; exit 2; }

cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
base="build/reproduce/$mode"
work="$base/work"
if [ "$mode" = quick ]; then bench="$base/bench"; Q=--quick; else bench=docs/bench; Q=; fi
mkdir -p "$bench" "$work" "$base/done"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# name | needs | quick args | full args   (each part: one script and its arguments;
# OUT is the record, WORK the part's workdir)
PARTS=(
  "baseline_lenet|cpu|scripts/baseline_lenet.py --dataset digits --out OUT|scripts/baseline_lenet.py --out OUT"
  "compress|cpu|scripts/bench_compress.py --quick --out OUT|scripts/bench_compress.py --out OUT"
  "latency_quick|cpu|scripts/bench_latency.py --quick --out OUT|scripts/bench_latency.py --quick --out OUT"
  "latency|cpu|scripts/bench_latency.py --quick --out OUT|scripts/bench_latency.py --out OUT"
  "distill|cpu|scripts/bench_distill.py --dataset digits --seeds 0 --temperature 4 --alpha 0.7 --epochs 1 --cache WORK --out OUT|scripts/bench_distill.py --cache WORK --out OUT"
  "distill_mid|cpu|scripts/bench_distill.py --dataset digits --seeds 0 --temperature 4 --alpha 0.7 --epochs 1 --cache WORK --out OUT|scripts/bench_distill.py --epochs 3 --cache WORK --out OUT"
  "runner|cpu|scripts/bench_runner.py --quick --set dataset=digits search_space=tiny train.epochs=1 --workdir WORK --out OUT|scripts/bench_runner.py --workdir WORK --out OUT"
  "search|cpu|scripts/bench_search.py --quick --strategies joint,random --workdir WORK --out OUT|scripts/bench_search.py --jobs 2 --workdir WORK --out OUT"
  "search_long|cpu|scripts/bench_search.py --quick --strategies joint --workdir WORK --out OUT|scripts/bench_search.py --budget-s 600 --jobs 2 --workdir WORK --out OUT"
  "search_supernet|cpu|scripts/bench_search.py --quick --strategies joint,supernet --proposals 0 --workdir WORK --out OUT|scripts/bench_search.py --strategies joint,supernet --budget-s 600 --seeds 3 --jobs 2 --proposals 0 --workdir WORK --out OUT"
  "search_supernet_proxy|cpu|scripts/bench_search.py --quick --strategies joint,supernet --proposals 0 --workdir WORK --out OUT|scripts/bench_search.py --strategies joint,supernet --budget-s 600 --seeds 1 --jobs 2 --proposals 0 --workdir WORK --out OUT"
  "supernet|cpu|scripts/bench_supernet.py --quick --workdir WORK --out OUT|scripts/bench_supernet.py --workdir WORK --out OUT"
  "devices|cpu|scripts/bench_devices.py --quick --workdir WORK --out OUT|scripts/bench_devices.py --jobs 2 --workdir WORK --out OUT"
  "faults|cpu|scripts/bench_faults.py --faults sigterm_group --runner local --workdir WORK --out OUT|scripts/bench_faults.py --workdir WORK --out OUT"
  "stream_floor|cpu|scripts/bench_stream.py --command python -m nas.search dataset=digits search_space=tiny search.n_trials=2 train.epochs=1 --workdir WORK --out OUT|scripts/bench_stream.py --command python -m nas.search dataset=digits search_space=tiny search.n_trials=2 train.epochs=1 --workdir WORK --out OUT"
  "stream|cpu|scripts/bench_stream.py --make --workdir WORK --out OUT|scripts/bench_stream.py --make --workdir WORK --out OUT"
  "default_run|cpu|scripts/record_default_run.py --out OUT|scripts/record_default_run.py --out OUT"
  "adaptive|cpu|scripts/bench_adaptive.py --workdir WORK --out OUT|scripts/bench_adaptive.py --workdir WORK --out OUT"
  "gpu_cpu_side|gpu|scripts/bench_gpu.py --device cpu --quick --out OUT|scripts/bench_gpu.py --device cpu --threads 2 --out OUT"
  "gpu|gpu|scripts/bench_gpu.py --device cuda --quick --out OUT|scripts/bench_gpu.py --device cuda --out OUT"
)

has_gpu=0; command -v nvidia-smi >/dev/null 2>&1 && has_gpu=1
total_start=$(date +%s)
for part in "${PARTS[@]}"; do
  IFS='|' read -r name needs quick full <<<"$part"
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  args="$quick"; [ "$mode" = full ] && args="$full"
  out="$bench/$name.json"
  args="${args//OUT/$out}"; args="${args//WORK/$work/$name}"
  marker="$base/done/$name"
  if [ "$needs" = gpu ] && [ "$has_gpu" = 0 ]; then
    echo "== $name: skipped, needs a GPU (no nvidia-smi): $PY $args"; continue
  fi
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$commit" ] && [ -f "$out" ]; then
    echo "== $name: done at $commit, skipped"; continue
  fi
  echo "== $name: $PY $args"
  [ "$dry" = 1 ] && continue
  start=$(date +%s)
  # shellcheck disable=SC2086  # the arguments are words by design
  $PY $args
  echo "$commit" >"$marker"
  echo "== $name: $(( $(date +%s) - start )) s"
done

if [ "$mode" = quick ] && [ ${#only[@]} -eq 0 ]; then  # a page needs every record
  page=("$PY" scripts/make_results.py --bench-dir "$bench" --out "$base/results.md")
  check=("$PY" scripts/make_results.py --check)
  echo "== page: ${page[*]}"; echo "== check: ${check[*]}"
  if [ "$dry" = 0 ]; then "${page[@]}"; "${check[@]}"; fi
fi
echo "== all parts: $(( $(date +%s) - total_start )) s"
