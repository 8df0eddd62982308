#!/usr/bin/env bash
# warmup, extract, adapt and evaluate on N GPUs of one machine with torchrun (one process per GPU,
# process r on cuda:r, NCCL). The paper's batch of 2 + 2 is global here: each process takes
# 1 + 1 with N=2 (--source-batch and --target-batch are per process; global = N x them).
# Only rank 0 writes artifacts and prints; extract writes one artifact equal to a
# one-process run's; Ctrl-C or SIGTERM to torchrun stops all processes after the same
# iteration (at the next --log-every), rank 0 saves, and --resume continues (same N).
#
#   examples/torchrun.sh N /data/GTA5 /data/cityscapes [runs/ddp] [INIT]
set -euo pipefail
N=$1; GTA5=$2; CITYSCAPES=$3; RUNS=${4:-runs/ddp}; INIT=${5:-imagenet}
SOURCE="gta5:$GTA5"; TARGET="cityscapes:$CITYSCAPES"
PER_PROCESS=$(( 2 / N > 0 ? 2 / N : 1 ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
run() { torchrun --standalone --nproc_per_node "$N" -m labor_cli "$@"; }
mkdir -p "$RUNS"

[ -e "$RUNS/warmup.h5" ] || run warmup --source "$SOURCE" --target "$TARGET" --arch deeplabv2-r101 --init "$INIT" \
  --source-batch "$PER_PROCESS" --target-batch "$PER_PROCESS" --iters 20000 --save-every 1000 -o "$RUNS/warmup.h5" \
  || { echo "warmup stopped; rerun the same command with --resume"; exit 1; }
run evaluate --model "$RUNS/warmup.h5" --target "$TARGET" --split val -o "$RUNS/warmup-eval.h5" --force
run extract --model "$RUNS/warmup.h5" --target "$TARGET" --batch-size 4 -o "$RUNS/r1/masks.h5" --force
# select and label need no GPU: one process
labor select --masks "$RUNS/r1/masks.h5" --mode ppl --points 8 -o "$RUNS/r1/selection.h5" --force
labor label --selection "$RUNS/r1/selection.h5" --target "$TARGET" -o "$RUNS/r1/labels.h5" --force
run adapt --model "$RUNS/warmup.h5" --labels "$RUNS/r1/labels.h5" --source "$SOURCE" --target "$TARGET" \
  --source-batch "$PER_PROCESS" --target-batch "$PER_PROCESS" --iters 4000 --save-every 1000 -o "$RUNS/r1/model.h5" --force
run evaluate --model "$RUNS/r1/model.h5" --target "$TARGET" --split val -o "$RUNS/r1/eval.h5" --force
