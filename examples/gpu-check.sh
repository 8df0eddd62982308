#!/usr/bin/env bash
# Check labor on a CUDA machine, most important numbers first, each step under its own time
# limit (a step that fails or runs out is reported and the next one runs):
#   1. `labor bench` at the paper's shapes without torch.compile: the reference path (fp32,
#      eager, channels-first) against bf16 + channels_last, `labor extract` end to end on
#      synthetic 2048x1024 PNGs, and a profile of every workload (where the time goes);
#   2. the same with torch.compile on every workload (warmup and adapt compile by default on
#      CUDA, extract does with --compile on; compile time not counted);
#   3. B sharing A's backbone;
#   4. the whole chain on CUDA (small arch, tiny toy pair, every stage's default GPU path).
# Writes JSON, logs and profiles to RESULTS and prints a summary. The steps' limits add up to
# about 11 minutes, more than one device-tool call may take: run them in two calls (the machine
# stays warm between them), writing under $OUT so the results come back:
#   STEPS="1 2" examples/gpu-check.sh "$OUT/gpu-check"      (at most 7.5 min)
#   STEPS="3 4" examples/gpu-check.sh "$OUT/gpu-check"      (at most 4 min)
set -uo pipefail
RESULTS=${1:-runs/gpu-check}
WORK=$(mktemp -d)
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
labor() { python3 -m labor_cli "$@"; }
step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, say how it went
  local name=$1 limit=$2 started=$SECONDS
  shift 2
  if timeout "$limit" "$@"; then echo "$name: ok ($((SECONDS - started)) s)"; else echo "$name: FAILED or out of time (exit $?, $((SECONDS - started)) s)"; fi
}
E2E=(--e2e-images 300 --workers 12 --batch-size 4)
want() { [[ " ${STEPS:-1 2 3 4} " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$RESULTS/gpu.txt"

want 1 && step "1. bench, eager" 200 bash -c "python3 -m labor_cli bench --repeats 10 --warmup 3 --compile off ${E2E[*]} --profile '$RESULTS/profile' --json > '$RESULTS/bench-eager.json' 2> '$RESULTS/bench-eager.log'"
want 2 && step "2. bench, compiled" 240 bash -c "python3 -m labor_cli bench --repeats 10 --warmup 3 --compile on --json > '$RESULTS/bench.json' 2> '$RESULTS/bench.log'"
want 3 && step "3. bench, shared backbone" 90 bash -c "python3 -m labor_cli bench --repeats 10 --warmup 3 --compile off --selector-backbone shared --json > '$RESULTS/bench-shared.json' 2> '$RESULTS/bench-shared.log'"

T="cityscapes:$WORK/toy/target"
S="gta5:$WORK/toy/source"
chain() {
  set -e
  labor data toy "$WORK/toy" --size tiny
  labor warmup --source "$S" --target "$T" --arch small --iters 20 --device cuda -o "$WORK/w.h5" -q
  labor extract -m "$WORK/w.h5" --target "$T" --device cuda -o "$WORK/m.h5" -q
  labor select --masks "$WORK/m.h5" --mode ppl --points 40 -o "$WORK/s.h5" -q
  labor label --selection "$WORK/s.h5" --target "$T" --masks "$WORK/m.h5" -o "$WORK/l.h5" -q
  labor adapt -m "$WORK/w.h5" --labels "$WORK/l.h5" --source "$S" --target "$T" --iters 20 --device cuda -o "$WORK/a.h5" -q
  labor evaluate -m "$WORK/a.h5" --target "$T" --device cuda -o "$WORK/e.h5" -q
}
export -f chain labor
export WORK S T
want 4 && step "4. the chain on CUDA" 150 bash -c "chain > '$RESULTS/chain.log' 2>&1"
grep -h "torch.compile failed" "$RESULTS"/*.log || true

python3 - "$RESULTS" <<'PY'
import json, sys, pathlib
for name in ("bench-eager.json", "bench.json", "bench-shared.json"):
    path = pathlib.Path(sys.argv[1]) / name
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"== {name}: no result")
        continue
    print(f"== {name} on {data['device']}")
    for r in data["results"]:
        print(f"  {r['workload']:8s} {r['path']:10s} {'compiled' if r['compiled'] else 'eager':8s} {r['ms']:8.1f} ms {r['images_per_s']:7.1f} img/s "
              f"peak {r['peak_memory_gib'] or 0:6.2f} GiB {r['tflops']:6.1f} TFLOP/s {r['host_syncs']} host syncs")
    print("  speed-up", {k: round(v, 2) for k, v in data["speedup"].items()})
    if data.get("extract_end_to_end"):
        print("  extract end to end", data["extract_end_to_end"])
PY
