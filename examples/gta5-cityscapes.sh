#!/usr/bin/env bash
# The paper-scale run: GTA5 -> Cityscapes, DeepLab-v2 R101 from ImageNet weights, PAPER.md's
# protocol (SGD lr 2.5e-4, heads 10x, momentum 0.9, weight decay 5e-4, poly 0.9; Adam 1e-4 for
# D; lambda_adv 0.001; batch 2 + 2; 1280x720 source, 1024x512 target), then 5 rounds of 8 PPL
# points per image (40 in all), as RIPU schedules its rounds: 20k + 5 x 4k = 40k iterations. Needs a CUDA GPU; not run in CI.
#
#   examples/gta5-cityscapes.sh /data/GTA5 /data/cityscapes [runs/paper] [INIT]
# INIT: imagenet (torchvision downloads the weights) or a local torchvision ResNet-101 state dict.
set -euo pipefail
GTA5=$1; CITYSCAPES=$2; RUNS=${3:-runs/paper}; INIT=${4:-imagenet}
SOURCE="gta5:$GTA5"; TARGET="cityscapes:$CITYSCAPES"
mkdir -p "$RUNS"
[ -e "$RUNS/warmup.h5" ] || labor warmup --source "$SOURCE" --target "$TARGET" --arch deeplabv2-r101 --init "$INIT" \
  --iters 20000 --save-every 1000 -o "$RUNS/warmup.h5" || { echo "warmup stopped; rerun with the same command (it resumes: add --resume)"; exit 1; }
labor evaluate --model "$RUNS/warmup.h5" --target "$TARGET" --split val -o "$RUNS/warmup-eval.h5" --force
"$(dirname "$0")/loop.sh" "$SOURCE" "$TARGET" "$RUNS/warmup.h5" "$RUNS/loop" 5 ppl 8 --iters 4000 --save-every 1000
labor evaluate --model "$RUNS/loop/round5/model.h5" --target "$TARGET" --split val -o "$RUNS/final-eval.h5" --force
