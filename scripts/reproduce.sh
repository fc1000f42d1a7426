#!/usr/bin/env bash
# Regenerate every benchmark record (issue 27), saying how long each part takes.
#
#   scripts/reproduce.sh --quick [--dry-run] [PART...]   # quick forms -> build/reproduce/quick/
#   scripts/reproduce.sh --full  [--dry-run] [PART...]   # full forms  -> docs/bench/ (the records)
#
# --quick runs each benchmark's smallest form (a CI-sized check that it still runs and
# writes a record with its provenance; about 20 minutes on 2 cores), into
# build/reproduce/quick/bench/, never docs/bench/. It then renders a page from those
# records and checks it (make_results.py --check: every record has a commit and a date),
# and checks the committed page against the committed records.
# --full runs the forms the records in docs/bench/ were measured with (hours; the
# supernet comparison alone is 90 minutes). Run it on an idle machine: many figures are
# wall-clock budgets or timings.
#
# Resumable: a part finished at the current commit (its marker in
# build/reproduce/<mode>/done/) is skipped, and each part keeps its runs in its own
# workdir under build/reproduce/<mode>/work/, where the harness resumes its units.
# GPU parts are skipped without nvidia-smi. PART names limit the run to those parts.
set -euo pipefail

mode="" dry=0 only=()
for a in "$@"; do
  case "$a" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "reproduce.sh: unknown option $a (use --quick or --full, and --dry-run)" >&2; exit 2 ;;
    *) only+=("$a") ;;
  esac
done
[ -n "$mode" ] || { echo "reproduce.sh: give --quick or --full" >&2; exit 2; }

cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
base="$PWD/build/reproduce/$mode"  # absolute: parts run searches in other directories
if [ "$mode" = quick ]; then bench="$base/bench"; else bench=docs/bench; fi
mkdir -p "$bench" "$base/work" "$base/done"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
Q=$([ "$mode" = quick ] && echo 1 || echo 0)

run() { echo "   \$ $*"; [ "$dry" = 1 ] || "$@"; }
# The mid distillation student (docs/results.md, Distillation).
MID='{"width_mult":0.5,"depths":[1,2,2,2],"kernels":[3,3,3,3],"expansions":[1,4,4,4]}'
TINY=(dataset=digits search_space=tiny search.n_trials=4 train.epochs=1 compress.finetune_epochs=0)
# A supernet small enough to train, score and finalise in a quick run's budget: the
# space and data for every strategy of the run, the strategy's own keys for it alone.
TINY_SPACE=(search_space.width_mults=[0.25,0.5] search_space.depth_max=2
  search_space.expansions=[2,4] dataset.n_train=300 search.min_accuracy=0)
TINY_SUPERNET=(strategy.epochs=1 strategy.warmup_epochs=0 strategy.bn_calib_images=64
  strategy.finalists=2 strategy.max_finalists=2 strategy.finetune_epochs=1)

# One function per record: part_<name> OUT WORK. Each runs its quick form when Q=1.
part_baseline_lenet() {
  if ((Q)); then run "$PY" scripts/baseline_lenet.py --dataset digits --seeds 0 --out "$1"
  else run "$PY" scripts/baseline_lenet.py --seeds 0 1 2 --out "$1"; fi
}
part_compress() { run "$PY" scripts/bench_compress.py $( ((Q)) && echo --quick) --out "$1"; }
part_int8() { run "$PY" scripts/bench_int8.py $( ((Q)) && echo --quick) --out "$1"; }
part_latency_quick() { run "$PY" scripts/bench_latency.py --quick --out "$1"; }
part_latency() { run "$PY" scripts/bench_latency.py $( ((Q)) && echo --quick) --out "$1"; }
part_distill() {
  if ((Q)); then run "$PY" scripts/bench_distill.py --dataset digits --seeds 0 --temperature 4 --alpha 0.7 --epochs 1 --cache "$2" --out "$1"
  else run "$PY" scripts/bench_distill.py --cache "$2" --out "$1"; fi
}
part_distill_mid() {
  if ((Q)); then run "$PY" scripts/bench_distill.py --dataset digits --seeds 0 --temperature 4 --alpha 0.7 --epochs 1 --student "$MID" --cache "$2" --out "$1"
  else run "$PY" scripts/bench_distill.py --seeds $(seq 0 19) --student "$MID" --cache "$2" --out "$1"; fi
}
part_runner() {
  if ((Q)); then run "$PY" scripts/bench_runner.py --quick --only local --set dataset=digits search_space=tiny train.epochs=1 --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_runner.py --workdir "$2" --out "$1"; fi
}
part_search() {
  if ((Q)); then run "$PY" scripts/bench_search.py --quick --strategies joint,random --proposals 0 --budget-s 30 --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_search.py --jobs 2 --workdir "$2" --out "$1"; fi
}
part_search_long() {
  if ((Q)); then run "$PY" scripts/bench_search.py --quick --strategies joint,random --proposals 0 --budget-s 30 --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_search.py --strategies joint,random --budget-s 600 --jobs 2 --proposals 0 --workdir "$2" --out "$1"; fi
}
part_search_supernet() {
  if ((Q)); then run "$PY" scripts/bench_search.py --quick --strategies joint,supernet --proposals 0 --budget-s 90 --workdir "$2" --out "$1" --set "${TINY_SPACE[@]}" --supernet-set "${TINY_SUPERNET[@]}"
  else run "$PY" scripts/bench_search.py --strategies joint,supernet --budget-s 1800 --seeds 3 --jobs 2 --proposals 0 --workdir "$2" --out "$1"; fi
}
part_search_supernet_proxy() {
  if ((Q)); then run "$PY" scripts/bench_search.py --quick --strategies joint,supernet --proposals 0 --budget-s 90 --workdir "$2" --out "$1" --set "${TINY_SPACE[@]}" --supernet-set "${TINY_SUPERNET[@]}"
  else run "$PY" scripts/bench_search.py --strategies joint,supernet --budget-s 600 --seeds 1 --jobs 2 --proposals 0 --workdir "$2" --out "$1"; fi
}
part_supernet() {  # two scripts fill one record: the fidelity sections, then the costs
  run "$PY" scripts/bench_fidelity.py $( ((Q)) && echo --quick) --workdir "$2/fidelity" --out "$1"
  run "$PY" scripts/bench_supernet.py $( ((Q)) && echo --quick) --workdir "$2/costs" --out "$1"
}
part_supernet_shift() {  # the supernet's training recipe: shifted images, epochs
  if ((Q)); then run "$PY" scripts/bench_supernet_shift.py --quick --variants before,shift2_20 --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_supernet_shift.py --jobs 2 --workdir "$2" --out "$1"; fi
}
part_devices() {
  if ((Q)); then run "$PY" scripts/bench_devices.py --quick --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_devices.py --jobs 2 --n-trials 27 --seeds 3 --device-constraint round_robin --workdir "$2" --out "$1"; fi
}
part_faults() {
  if ((Q)); then run "$PY" scripts/bench_faults.py --faults sigterm_group --runner local --workdir "$2" --out "$1"
  else run "$PY" scripts/bench_faults.py --workdir "$2" --out "$1"; fi
}
part_stream_floor() {  # the same search on the in-memory digits: the floor of stream
  run "$PY" scripts/bench_stream.py --workdir "$2" --out "$1" --command "python -m nas.search dataset=digits search_space=tiny search.n_trials=2 train.epochs=1 compress.finetune_epochs=0 search.timeout_s=null search.trial_timeout_s=null search.min_accuracy=0 search.progress=false"
}
part_stream() {
  if ((Q)); then run "$PY" scripts/bench_stream.py --make --n 2000 --size 32 --folder "$2/folder" --workdir "$2/run" --out "$1"
  else run "$PY" scripts/bench_stream.py --make --workdir "$2" --out "$1"; fi
}
part_default_run() {  # the README's quick start, in an empty directory, then its record
  local cmd=(+hw=mobile); ((Q)) && cmd=("${TINY[@]}")
  run mkdir -p "$2"
  run bash -c "cd '$2' && PYTHONPATH='$PWD' '$PWD/$PY' -m nas.search ${cmd[*]}"
  run "$PY" scripts/record_default_run.py "$2" --command "python -m nas.search ${cmd[*]}" --out "$1"
}
part_cpu_default_run() {  # the CPU side of the GPU check: the default search on the CPU
  local cmd=(+hw=mobile train.device=cpu search.progress=false)
  ((Q)) && cmd=("${TINY[@]}" train.device=cpu)
  run mkdir -p "$2"
  run bash -c "cd '$2' && PYTHONPATH='$PWD' '$PWD/$PY' -m nas.search ${cmd[*]}"
  run "$PY" scripts/record_default_run.py "$2" --command "python -m nas.search ${cmd[*]}" --out "$1"
}
part_energy() {  # the default search without its time limits, then its front's energy
  local cmd=(+hw=mobile search.timeout_s=null search.trial_timeout_s=null)
  ((Q)) && cmd=(+hw=mobile "${TINY[@]}")
  run mkdir -p "$2"
  run bash -c "cd '$2' && PYTHONPATH='$PWD' '$PWD/$PY' -m nas.search ${cmd[*]}"
  run "$PY" scripts/bench_energy.py "$2" --command "python -m nas.search ${cmd[*]}" --out "$1"
}
part_adaptive() { run "$PY" scripts/bench_adaptive.py $( ((Q)) && echo --quick) --workdir "$2" --out "$1"; }
part_gpu_cpu_side() { run "$PY" scripts/bench_gpu.py --device cpu --threads 2 $( ((Q)) && echo --quick) --out "$1"; }
part_gpu() {  # GPU over CPU: the GPU side comes from scripts/gpu_check.sh on a GPU
  # machine (its gpu.json goes to docs/bench/); here it is null, and stays null.
  run "$PY" scripts/bench_gpu.py combine --cpu "$bench/gpu_cpu_side.json" --default-run "$bench/cpu_default_run.json" --out "$1"
}

PARTS=(baseline_lenet compress int8 latency_quick latency distill distill_mid runner search
  search_long search_supernet search_supernet_proxy supernet supernet_shift devices faults
  stream_floor
  stream default_run energy adaptive gpu_cpu_side cpu_default_run gpu)
total_start=$(date +%s) failed=()
for name in "${PARTS[@]}"; do
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  out="$bench/$name.json" marker="$base/done/$name"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$commit" ]; then
    echo "== $name: done at $commit, skipped"; continue
  fi
  echo "== $name"
  start=$(date +%s)
  # A part that exits non-zero (a crash, or a benchmark whose target is missed) does not
  # stop the others; it is not marked done, so a rerun tries it again.
  # (In a subshell outside any `||`, so that set -e still stops a part at its first error.)
  set +e; ( set -e; "part_$name" "$out" "$base/work/$name" ); rc=$?; set -e
  [ "$dry" = 1 ] && continue
  if [ "$rc" -ne 0 ]; then
    failed+=("$name (exit $rc)"); echo "== $name: exit $rc after $(( $(date +%s) - start )) s"; continue
  fi
  echo "$commit" >"$marker"
  echo "== $name: $(( $(date +%s) - start )) s"
done

if [ "$mode" = quick ] && [ ${#only[@]} -eq 0 ]; then
  echo "== page from the quick records, then the checks"
  run "$PY" scripts/make_results.py --bench-dir "$bench" --out "$base/results.md"
  run "$PY" scripts/make_results.py --check --bench-dir "$bench" --out "$base/results.md"
fi
[ "$mode" = quick ] && run "$PY" scripts/make_results.py --check
echo "== all parts: $(( $(date +%s) - total_start )) s"
if [ ${#failed[@]} -gt 0 ]; then echo "== parts that exited non-zero: ${failed[*]}" >&2; exit 1; fi
