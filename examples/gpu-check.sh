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
#      folded (as shipped), folded with scale and shift recomputed at every call (b4ade52: the
#      host's cost of that), and unfolded (the fold's before/after, with profiles), with cuDNN
#      autotuning off, and timed again after a profiler session (the 164 -> 246 ms regression);
#   4. torchrun --nproc_per_node 1 on CUDA: warmup, extract and evaluate through the NCCL path
#      (small arch, tiny toy pair);
#   5. examples/rehearsal.sh on CUDA: the whole chain with DeepLab-v2 R101 at the real sizes
#      (toy images drawn at 1914x1052, 1280x760 with 16-bit labels, 2048x1024), each stage's
#      peak host memory, time per iteration or image and bytes per image (RESULTS/rehearsal).
# Then one summary table, also in RESULTS/summary.json, and the rehearsal's table
# (RESULTS/rehearsal/summary.json). JSON, logs and profiles go to RESULTS.
# Through the device tool (results come back from $OUT):
#   run(command="bash examples/gpu-check.sh $OUT/gpu-check", timeout_s=540)
# STEPS="1 3" runs some steps only. A dry run of the flow on a CPU (small arch, tiny sizes, and
# LIMIT_SCALE times the time limits):
#   DEVICE=cpu LIMIT_SCALE=10 PYTHON=.venv/bin/python examples/gpu-check.sh /tmp/gpu-check-dry
set -uo pipefail
RESULTS=${1:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
HERE=$(cd "$(dirname "$0")" && pwd)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 RESULTS DEVICE HERE PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit (times LIMIT_SCALE), say how it went
  local name=$1 limit=$(( $2 * ${LIMIT_SCALE:-1} )) started=$SECONDS status
  shift 2
  timeout "$limit" "$@"
  status=$?
  local how="FAILED or out of time (exit $status)"
  [ $status = 0 ] && how=ok
  echo "$name: $how ($((SECONDS - started)) s)" | tee -a "$RESULTS/steps.txt"
}
want() { [[ " ${STEPS:-1 2 3 4 5} " == *" $1 "* ]]; }
if [ "$DEVICE" = cpu ]; then  # a dry run: the flow, not the numbers
  BENCH=(--device cpu --repeats 1 --warmup 0) COMPILED=(--device cpu --repeats 1 --warmup 0)
  E2E=(--e2e-images 4 --workers 0 --batch-size 2)
  REHEARSAL=(SIZE=tiny ARCH=small ITERS=2 EXTRACT_BATCH=2)
else
  BENCH=(--repeats 6 --warmup 2) E2E=(--e2e-images 300 --workers 12 --batch-size 4) COMPILED=()
  REHEARSAL=(SIZE=full ARCH=deeplabv2-r101 ITERS=3 EXTRACT_BATCH=4)
fi
: > "$RESULTS/steps.txt"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
} | tee "$RESULTS/gpu.txt"

want 1 && step "1. bench eager + e2e + profiles" 130 bash -c \
  '"$PYTHON" -m labor_cli bench "$@" --compile off --profile "$RESULTS/profile" --json \
     > "$RESULTS/bench-eager.json" 2> "$RESULTS/bench-eager.log"' \
  _ "${BENCH[@]}" "${E2E[@]}"
want 2 && step "2. bench --compile on" 190 bash -c \
  'started=$SECONDS
   TORCH_LOGS=recompiles "$PYTHON" -m labor_cli bench "$@" --compile on --json \
     > "$RESULTS/bench-compiled.json" 2> "$RESULTS/bench-compiled.log"
   s=$?; echo $((SECONDS - started)) > "$RESULTS/bench-compiled.seconds"; exit $s' \
  _ "${COMPILED[@]}"

want 3 && step "3. probes: fold, cuDNN autotuning, profiler residue" 60 \
  bash -c '"$PYTHON" "$HERE/gpu_check_probes.py" "$RESULTS" "$DEVICE" > "$RESULTS/probes.log" 2>&1'

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
  run1 adapt -m "$WORK/w.h5" --labels "$WORK/l.h5" --source "$S" --target "$T" --iters 20 --device "$DEVICE" \
    --workers 2 -o "$WORK/a.h5" -q
  run1 evaluate -m "$WORK/a.h5" --target "$T" --device "$DEVICE" --workers 2 -o "$WORK/e.h5" -q
  "$PYTHON" -m labor_cli inspect "$WORK/e.h5" | head -20
}
export -f chain
want 4 && step "4. torchrun --nproc_per_node 1: warmup, extract, adapt, evaluate" 40 \
  env NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT bash -c 'chain > "$RESULTS/chain.log" 2>&1'
want 5 && step "5. examples/rehearsal.sh on $DEVICE" 120 \
  env "${REHEARSAL[@]}" DEVICE="$DEVICE" PYTHON="$PYTHON" FORCE=1 \
  bash -c '"$HERE/rehearsal.sh" "$RESULTS/rehearsal" > "$RESULTS/rehearsal.log" 2>&1'
grep -h "torch.compile failed" "$RESULTS"/*.log || true

"$PYTHON" "$HERE/gpu_check_summary.py" "$RESULTS" | tee "$RESULTS/summary.txt"
if want 5; then  # the rehearsal's table, also when its time ran out (the stages that finished)
  echo
  "$PYTHON" "$HERE/rehearsal.py" table "$RESULTS/rehearsal" --facts "{\"device\": \"$DEVICE\"}" \
    | tee "$RESULTS/rehearsal.txt"
fi
