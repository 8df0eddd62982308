#!/usr/bin/env bash
# LabOR's active loop: ROUNDS rounds of extract -> select -> label -> adapt, labels accumulating
# (a pixel labeled in one round is excluded from the next). Steps whose output exists are kept,
# so an interrupted loop continues where it stopped.
#
#   examples/loop.sh SOURCE TARGET START_MODEL RUNS_DIR [ROUNDS [MODE [POINTS [adapt options...]]]]
#   examples/loop.sh gta5:data/toy/source cityscapes:data/toy/target runs/warmup.h5 runs/loop 3 ppl 8 --config toy-adapt
#
# MODE: ppl, entropy or random take POINTS per image per round; spl takes the whole mask.
set -euo pipefail
SOURCE=$1; TARGET=$2; MODEL=$3; RUNS=$4
ROUNDS=${5:-5}; MODE=${6:-ppl}; POINTS=${7:-8}
shift $(( $# < 7 ? $# : 7 ))
LABOR=${LABOR:-labor}
labels=""
for round in $(seq 1 "$ROUNDS"); do
  dir="$RUNS/round$round"
  mkdir -p "$dir"
  [ -e "$dir/masks.h5" ] || $LABOR extract --model "$MODEL" --target "$TARGET" ${labels:+--exclude "$labels"} -o "$dir/masks.h5" -q
  if [ "$MODE" = spl ]; then budget=(); else budget=(--points "$POINTS"); fi
  [ -e "$dir/selection.h5" ] || $LABOR select --masks "$dir/masks.h5" --mode "$MODE" "${budget[@]}" --seed "$round" -o "$dir/selection.h5" -q
  [ -e "$dir/labels.h5" ] || $LABOR label --selection "$dir/selection.h5" --target "$TARGET" ${labels:+--merge "$labels"} --masks "$dir/masks.h5" -o "$dir/labels.h5"
  [ -e "$dir/model.h5" ] || $LABOR adapt --model "$MODEL" --labels "$dir/labels.h5" --source "$SOURCE" --target "$TARGET" -o "$dir/model.h5" -q "$@"
  labels="$dir/labels.h5"
  MODEL="$dir/model.h5"
done
echo "final model: $MODEL  labels: $labels"
