#!/usr/bin/env bash
# Check labor on a CUDA machine: the whole chain's GPU paths on the tiny toy pair, then
# `labor bench` at the paper's shapes (reference fp32 path vs the default bf16 path), and
# `labor extract` end to end on synthetic 2048x1024 PNGs. Writes JSON and logs to RESULTS.
#   examples/gpu-check.sh [RESULTS_DIR]
set -euo pipefail
RESULTS=${1:-runs/gpu-check}
WORK=$(mktemp -d)
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
labor() { python3 -m labor_cli "$@"; }
T="cityscapes:$WORK/toy/target"
S="gta5:$WORK/toy/source"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$RESULTS/gpu.txt"

# 1. the chain on CUDA (small arch, tiny pair): every stage's GPU path runs
{
  labor data toy "$WORK/toy" --size tiny
  labor warmup --source "$S" --target "$T" --arch small --iters 20 --device cuda -o "$WORK/w.h5" -q
  labor extract -m "$WORK/w.h5" --target "$T" --device cuda -o "$WORK/m.h5" -q
  labor select --masks "$WORK/m.h5" --mode ppl --points 40 -o "$WORK/s.h5" -q
  labor label --selection "$WORK/s.h5" --target "$T" --masks "$WORK/m.h5" -o "$WORK/l.h5" -q
  labor adapt -m "$WORK/w.h5" --labels "$WORK/l.h5" --source "$S" --target "$T" --iters 20 --device cuda -o "$WORK/a.h5" -q
  labor evaluate -m "$WORK/a.h5" --target "$T" --device cuda -o "$WORK/e.h5" -q
} > "$RESULTS/chain.log" 2>&1 && echo "chain on CUDA: ok" || { echo "chain on CUDA: FAILED"; tail -20 "$RESULTS/chain.log"; }

# 2. paper shapes: A = DeepLab-v2 R101, separate B, D; source 2x720x1280, target 2x512x1024
labor bench --repeats 10 --warmup 3 --e2e-images 300 --workers 12 --batch-size 4 --json > "$RESULTS/bench.json"
labor bench --repeats 10 --warmup 3 --selector-backbone shared --e2e-images 300 --workers 12 --batch-size 4 --json > "$RESULTS/bench-shared.json"
# 3. torch.compile on the default path (compilation time not counted)
timeout 240 python3 -m labor_cli bench --repeats 10 --warmup 3 --compile --json > "$RESULTS/bench-compile.json" || echo "compile bench: failed or timed out"
python3 - "$RESULTS" <<'PY'
import json, sys, pathlib
for name in ("bench.json", "bench-shared.json", "bench-compile.json"):
    path = pathlib.Path(sys.argv[1]) / name
    if not path.exists() or not path.stat().st_size:
        continue
    data = json.loads(path.read_text())
    print(f"== {name} on {data['device']}")
    for r in data["results"]:
        print(f"  {r['workload']:8s} {r['path']:10s} {r['ms']:8.1f} ms {r['images_per_s']:7.1f} img/s peak {r['peak_memory_gib'] or 0:6.2f} GiB {r['tflops']:6.1f} TFLOP/s")
    print("  speed-up", {k: round(v, 2) for k, v in data["speedup"].items()})
    if data.get("extract_end_to_end"):
        print("  extract end to end", data["extract_end_to_end"])
PY
