#!/usr/bin/env bash
# Measure labor on one CUDA machine in one go (at most about 9 minutes), most important first;
# each step has its own time limit, and a step that fails or runs out is reported while the next
# one runs:
#   1. `labor bench` eager at the paper's shapes: the reference path (fp32, eager, channels-first)
#      against the default path (bf16, channels_last, FrozenBN folded into the convolutions),
#      `labor extract` end to end on synthetic 2048x1024 PNGs (whole run, steady rate, start-up),
#      then profiles of every row and a timeline and thread stacks of a profiled extraction;
#   2. `labor bench --compile on` with its defaults (target: done within 4 minutes), compiled rows
#      beside the eager ones, compile time and break-even per workload, TORCH_LOGS=recompiles;
#   3. probes in one fresh process: the default warmup and adapt iterations with the FrozenBN
#      folded and unfolded (the fold's before/after, with profiles), with cuDNN autotuning off,
#      and timed again after a profiler session (the 164 -> 246 ms warmup regression);
#   4. torchrun --nproc_per_node 1 on CUDA: warmup, extract and evaluate through the NCCL path
#      (small arch, tiny toy pair).
# Then one summary table, also in RESULTS/summary.json. JSON, logs and profiles go to RESULTS.
# Through the device tool (results come back from $OUT):
#   run(command="bash examples/gpu-check.sh $OUT/gpu-check", timeout_s=570)
# STEPS="1 3" runs some steps only. A dry run of the flow on a CPU (small arch, tiny sizes, and
# LIMIT_SCALE times the time limits):
#   DEVICE=cpu LIMIT_SCALE=10 PYTHON=.venv/bin/python examples/gpu-check.sh /tmp/gpu-check-dry
set -uo pipefail
RESULTS=${1:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 RESULTS DEVICE
labor() { "$PYTHON" -m labor_cli "$@"; }
step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit (times LIMIT_SCALE), say how it went
  local name=$1 limit=$(( $2 * ${LIMIT_SCALE:-1} )) started=$SECONDS status
  shift 2
  timeout "$limit" "$@"
  status=$?
  echo "$name: $([ $status = 0 ] && echo ok || echo "FAILED or out of time (exit $status)") ($((SECONDS - started)) s)" | tee -a "$RESULTS/steps.txt"
}
want() { [[ " ${STEPS:-1 2 3 4} " == *" $1 "* ]]; }
if [ "$DEVICE" = cpu ]; then  # a dry run: the flow, not the numbers
  BENCH=(--device cpu --repeats 1 --warmup 0) E2E=(--e2e-images 4 --workers 0 --batch-size 2) COMPILED=(--device cpu --repeats 1 --warmup 0)
else
  BENCH=(--repeats 6 --warmup 2) E2E=(--e2e-images 300 --workers 12 --batch-size 4) COMPILED=()
fi
: > "$RESULTS/steps.txt"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"; } | tee "$RESULTS/gpu.txt"

want 1 && step "1. bench eager + e2e + profiles" 150 bash -c \
  'labor() { "$PYTHON" -m labor_cli "$@"; }; labor bench "$@" --compile off --profile "$RESULTS/profile" --json > "$RESULTS/bench-eager.json" 2> "$RESULTS/bench-eager.log"' \
  _ "${BENCH[@]}" "${E2E[@]}"
want 2 && step "2. bench --compile on" 240 bash -c \
  'started=$SECONDS; TORCH_LOGS=recompiles "$PYTHON" -m labor_cli bench "$@" --compile on --json > "$RESULTS/bench-compiled.json" 2> "$RESULTS/bench-compiled.log"; s=$?; echo $((SECONDS - started)) > "$RESULTS/bench-compiled.seconds"; exit $s' \
  _ "${COMPILED[@]}"

want 3 && step "3. probes: fold, cuDNN autotuning, profiler residue" 65 bash -c '"$PYTHON" - "$RESULTS" "$DEVICE" > "$RESULTS/probes.log" 2>&1' <<'PY'
"""The default path's warmup and adapt iterations in one fresh process, on the same networks:
FrozenBN folded (as shipped) and unfolded (each FrozenBN applied to the activation, as before),
cuDNN autotuning off, and after a profiler session; host ms = time until the call returns,
before waiting for the GPU. Profiles of the unfolded rows come last (after every timing)."""
import json, statistics, sys, time
from pathlib import Path

import torch

from labor_cli.models import deeplab
from labor_cli.stages import bench

out, device = Path(sys.argv[1]), sys.argv[2]
torch_device, arch, shapes, paths, _ = bench._plan(None, device, "off", bench.WORKLOADS)
bench.configure_backends(torch_device)
prepared = bench._prepare(paths[1], arch, "separate", torch_device, shapes)
folded_conv_bn = deeplab.conv_bn
repeats = 6 if torch_device.type == "cuda" else 1
rows = {}


def unfolded_conv_bn(conv, norm, x):
    return norm(conv(x))


def timed(name, workload):
    step = prepared[workload]()[0]
    step()
    ms, peak = bench._time(step, torch_device, repeats, 2 if torch_device.type == "cuda" else 0)
    host = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        host.append((time.perf_counter() - started) * 1000)
        bench._synchronize(torch_device)
    rows[name] = {"ms": ms, "host_ms": statistics.median(host), "peak_gib": peak}
    print(f"{name}: {ms:.1f} ms, host {rows[name]['host_ms']:.1f} ms", flush=True)


for fold in (True, False):
    deeplab.conv_bn = folded_conv_bn if fold else unfolded_conv_bn
    for workload in ("warmup", "adapt"):
        timed(f"{workload} {'folded' if fold else 'unfolded'}", workload)
deeplab.conv_bn = folded_conv_bn
if torch_device.type == "cuda":
    torch.backends.cudnn.benchmark = False
    timed("warmup folded, cuDNN autotuning off", "warmup")
    torch.backends.cudnn.benchmark = True
bench._profile(prepared["warmup"]()[0], torch_device, out / "probe-profile-warmup.txt")
timed("warmup folded, after a profiler session", "warmup")
deeplab.conv_bn = unfolded_conv_bn
for workload in ("warmup", "adapt"):
    busy = bench._profile(prepared[workload]()[0], torch_device, out / "profile" / f"default-unfolded-{workload}.txt")
    rows[f"{workload} unfolded"]["gpu_busy_ms"] = busy
(out / "probes.json").write_text(json.dumps(rows, indent=1))
PY

T="cityscapes:$WORK/toy/target" S="gta5:$WORK/toy/source"
export WORK S T PYTHON
chain() {  # one process under torchrun: the process group path (NCCL on CUDA, gloo on a CPU)
  set -e
  run1() { "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1 -m labor_cli "$@"; }
  "$PYTHON" -m labor_cli data toy "$WORK/toy" --size tiny
  run1 warmup --source "$S" --target "$T" --arch small --iters 20 --device "$DEVICE" --workers 2 -o "$WORK/w.h5" -q
  run1 extract -m "$WORK/w.h5" --target "$T" --device "$DEVICE" --workers 2 -o "$WORK/m.h5" -q
  "$PYTHON" -m labor_cli select --masks "$WORK/m.h5" --mode ppl --points 40 -o "$WORK/s.h5" -q
  "$PYTHON" -m labor_cli label --selection "$WORK/s.h5" --target "$T" --masks "$WORK/m.h5" -o "$WORK/l.h5" -q
  run1 adapt -m "$WORK/w.h5" --labels "$WORK/l.h5" --source "$S" --target "$T" --iters 20 --device "$DEVICE" --workers 2 -o "$WORK/a.h5" -q
  run1 evaluate -m "$WORK/a.h5" --target "$T" --device "$DEVICE" --workers 2 -o "$WORK/e.h5" -q
  "$PYTHON" -m labor_cli inspect "$WORK/e.h5" | head -20
}
export -f chain
want 4 && step "4. torchrun --nproc_per_node 1: warmup, extract, adapt, evaluate" 75 \
  env NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT bash -c 'chain > "$RESULTS/chain.log" 2>&1'
grep -h "torch.compile failed" "$RESULTS"/*.log || true

"$PYTHON" - "$RESULTS" <<'PY' | tee "$RESULTS/summary.txt"
"""One table of everything, and the issue's targets."""
import json, sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None


eager, compiled, probes = load("bench-eager.json"), load("bench-compiled.json"), load("probes.json")
rows = (compiled or eager or {}).get("results", [])
device = (compiled or eager or {}).get("device", "?")
print(f"labor on {device} ({(out / 'gpu.txt').read_text().strip().splitlines()[-1]})")
summary = {"device": device, "steps": (out / "steps.txt").read_text().splitlines()}


def row(workload, path, is_compiled=False, source=rows):
    return next((r for r in source if r["workload"] == workload and r["path"] == path and r["compiled"] == is_compiled), None)


def fmt(value, pattern="{:.1f}"):
    return "-" if value is None else pattern.format(value)


print(f"{'workload':9s} {'reference':>10s} {'default':>10s} {'x':>6s} {'compiled':>10s} {'x':>6s} {'peak GiB ref->def':>18s}"
      f" {'GPU busy':>9s} {'compile s':>9s} {'pays after':>11s}")
table = {}
for workload in ("adapt", "warmup", "extract"):
    ref, default, comp = row(workload, "reference"), row(workload, "default"), row(workload, "default", True)
    if eager and not default:
        ref, default = row(workload, "reference", source=eager["results"]), row(workload, "default", source=eager["results"])
    busy = row(workload, "default", source=eager["results"]) if eager else None
    if not ref or not default:
        continue
    up = ref["ms"] / default["ms"]
    up_c = ref["ms"] / comp["ms"] if comp else None
    mem = default["peak_memory_gib"] / ref["peak_memory_gib"] if ref.get("peak_memory_gib") and default.get("peak_memory_gib") else None
    peaks = f"{fmt(ref['peak_memory_gib'], '{:.2f}')}->{fmt(default['peak_memory_gib'], '{:.2f}')} ({fmt(mem, '{:.2f}x')})"
    print(f"{workload:9s} {ref['ms']:8.1f}ms {default['ms']:8.1f}ms {up:5.2f}x {fmt(comp and comp['ms']):>8s}ms {fmt(up_c, '{:.2f}x'):>6s}"
          f" {peaks:>18s} {fmt(busy and busy.get('gpu_busy_ms')):>7s}ms {fmt(comp and comp['compile_s']):>9s}"
          f" {fmt(comp and comp['break_even_iterations'], '{:.0f} its'):>11s}")
    table[workload] = {"reference_ms": ref["ms"], "default_ms": default["ms"], "speedup": up, "compiled_ms": comp and comp["ms"],
                       "speedup_compiled": up_c, "peak_ratio": mem, "compile_s": comp and comp["compile_s"],
                       "break_even_iterations": comp and comp["break_even_iterations"]}
summary["bench"] = table
e2e = (eager or {}).get("extract_end_to_end")
if e2e:
    print(f"extract end to end: {e2e['images']} PNGs {e2e['native_size'][1]}x{e2e['native_size'][0]}: {e2e['images_per_s']:.1f} images/s "
          f"overall, {fmt(e2e['steady_images_per_s'])} steady, start-up {fmt(e2e['startup_s'])} s")
    summary["e2e"] = e2e
seconds = (out / "bench-compiled.seconds").read_text().strip() if (out / "bench-compiled.seconds").exists() else None
log = (out / "bench-compiled.log").read_text(errors="replace") if (out / "bench-compiled.log").exists() else ""
recompiles, dynamic = log.count("Recompiling function"), log.count("pow_by_natural") + log.count("automatic dynamic")
print(f"labor bench --compile on: {seconds or '?'} s (target <= 240), {recompiles} recompiles logged, {dynamic} dynamic-shape lines")
summary["compiled_bench"] = {"seconds": seconds and int(seconds), "recompiles": recompiles, "dynamic_lines": dynamic}
if probes:
    for name, values in probes.items():
        print(f"probe {name}: {values['ms']:.1f} ms (host {values['host_ms']:.1f} ms{', GPU busy %.1f ms' % values['gpu_busy_ms'] if values.get('gpu_busy_ms') else ''})")
    summary["probes"] = probes
chain = (out / "chain.log").read_text(errors="replace") if (out / "chain.log").exists() else ""
nccl = sum("NCCL INFO" in line for line in chain.splitlines())
print(f"torchrun chain: {[s for s in summary['steps'] if s.startswith('4.')] or ['not run']}, {nccl} NCCL INFO lines")
summary["chain_nccl_lines"] = nccl
adapt, extract = table.get("adapt", {}), table.get("extract", {})
targets = {
    "adapt >= 2x eager": (adapt.get("speedup") or 0) >= 2,
    "adapt >= 2.5x compiled": (adapt.get("speedup_compiled") or 0) >= 2.5,
    "adapt peak memory <= 0.6x": adapt.get("peak_ratio") is not None and adapt["peak_ratio"] <= 0.6,
    "extract >= 2.5x": (extract.get("speedup") or 0) >= 2.5,
    "e2e >= 60 images/s overall": bool(e2e) and e2e["images_per_s"] >= 60,
    "e2e >= 60 images/s steady": bool(e2e) and (e2e.get("steady_images_per_s") or 0) >= 60,
    "bench --compile on <= 240 s": seconds is not None and int(seconds) <= 240 and "2. bench --compile on: ok" in " ".join(summary["steps"]),
}
print("targets: " + ", ".join(f"{name} {'MET' if met else 'not met'}" for name, met in targets.items()))
summary["targets"] = targets
(out / "summary.json").write_text(json.dumps(summary, indent=1))
PY
