#!/usr/bin/env bash
# The README's figures, from a short run on the toy pair: for 2 seeds, a short adversarial warmup,
# then 2 rounds of LabOR-PPL and 2 rounds of random points (20 points per image per round) from it;
# then `labor plot` (curves, budget, classes) and `labor show` (panels) into docs/figures.
# Short on purpose (a few minutes on 2 cores): it shows what the commands draw, not the results
# (those are the README's comparison, examples/compare.sh).
#
#   examples/figures.sh [RUNS_DIR] [FIGURES_DIR]        e.g. examples/figures.sh runs/figures docs/figures
# Steps whose artifact exists are kept (rerun to resume); the figures are redrawn every time.
set -euo pipefail
RUNS=${1:-runs/figures}; FIGURES=${2:-docs/figures}
LABOR=${LABOR:-labor}
WARMUP_ITERS=${WARMUP_ITERS:-150}; ADAPT_ITERS=${ADAPT_ITERS:-60}
HERE=$(dirname "$0")
DATA=$RUNS/toy
[ -e "$DATA" ] || $LABOR data toy "$DATA"
S="gta5:$DATA/source"; T="cityscapes:$DATA/target"
mkdir -p "$FIGURES"

for seed in 0 1; do
  d="$RUNS/seed$seed"; mkdir -p "$d"
  [ -e "$d/warmup.h5" ] || $LABOR warmup --source "$S" --target "$T" --config toy-warmup --iters "$WARMUP_ITERS" \
    --seed "$seed" --workers 0 -o "$d/warmup.h5" -q
  [ -e "$d/eval-warmup.h5" ] || $LABOR evaluate -m "$d/warmup.h5" --target "$T" --workers 0 -o "$d/eval-warmup.h5" -q
  for mode in ppl random; do
    LABOR=$LABOR "$HERE/loop.sh" "$S" "$T" "$d/warmup.h5" "$d/$mode" 2 "$mode" 20 --config toy-adapt \
      --iters "$ADAPT_ITERS" --seed "$seed" --workers 0 > /dev/null
    for round in 1 2; do
      e="$d/$mode/round$round/eval.h5"
      [ -e "$e" ] || $LABOR evaluate -m "$d/$mode/round$round/model.h5" --target "$T" --workers 0 -o "$e" -q
    done
  done
done

$LABOR plot curves "$RUNS/seed0/warmup.losses.csv" -o "$FIGURES/curves.png" --size 1000x600 --smooth 10 --force
$LABOR plot budget --label "LabOR-PPL=$RUNS/seed*/ppl/round*/eval.h5" --label "random points=$RUNS/seed*/random/round*/eval.h5" \
  --label "adversarial warmup=$RUNS/seed*/eval-warmup.h5" -o "$FIGURES/budget.png" --size 900x600 --force
$LABOR plot classes --label "LabOR-PPL=$RUNS/seed*/ppl/round2/eval.h5" --label "random points=$RUNS/seed*/random/round2/eval.h5" \
  --label "adversarial warmup=$RUNS/seed*/eval-warmup.h5" -o "$FIGURES/classes.png" --size 1200x600 --force
$LABOR show "$RUNS/seed0/ppl/round1/masks.h5" --target "$T" --limit 1 -o "$RUNS/show-masks" --force -q
$LABOR show "$RUNS/seed0/ppl/round1/selection.h5" --target "$T" --limit 1 -o "$RUNS/show-selection" --force -q
cp "$RUNS"/show-masks/*.png "$FIGURES/show-masks.png"
cp "$RUNS"/show-selection/*.png "$FIGURES/show-selection.png"
ls -l "$FIGURES"
