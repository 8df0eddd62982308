#!/usr/bin/env bash
# A rehearsal of the paper-scale run at the real sizes, with DeepLab-v2 ResNet-101 (random
# weights: --init none, nothing downloaded), on a few toy images drawn at the datasets' sizes:
# GTA5 1914x1052, SYNTHIA RAND-CITYSCAPES 1280x760 (16-bit labels), Cityscapes 2048x1024
# (`labor data toy --size full`). Every stage of the chain runs at the protocol's sizes and batch
# sizes (training GTA5 1280x720, SYNTHIA 1280x760, Cityscapes 1024x512; extraction and evaluation
# against the full 2048x1024 labels; batch 2 + 2, SYNTHIA's warmup 1 + 1 as AdaptSegNet's):
#   data toy (GTA5 and SYNTHIA layouts), data check, warmup GTA5 -> Cityscapes, warmup SYNTHIA ->
#   Cityscapes (synthia16), extract, select ppl / spl / balanced, label, annotate through its
#   HTTP API, adapt, evaluate (both models), predict, and cityscapesScripts' official evaluator.
# Each stage's peak memory, time per unit and artifact bytes per image go to RUN/stages.jsonl;
# one table at the end, also RUN/summary.json. Exits 1 at the first stage that fails.
#
#   examples/rehearsal.sh [RUN]                    (make rehearsal: nice -n 10, RUN=runs/rehearsal)
# Environment: DEVICE (cpu; cuda on a GPU), ITERS (training iterations, 1), ARCH (deeplabv2-r101),
# LR (1e-8: a ResNet with random weights and frozen batch-norm statistics has logits of about 1e5,
# and the protocol's 2.5e-4 makes its outputs NaN after one step; the cost does not depend on it),
# SIZE (the toy preset, full; tiny with ARCH=small checks the flow in a minute), EXTRACT_BATCH (1),
# WORKERS (loader workers; default labor's), PYTHON (.venv/bin/python if there, else python3),
# FORCE=1 (replace an existing RUN).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${1:-runs/rehearsal}
DEVICE=${DEVICE:-cpu} ITERS=${ITERS:-1} ARCH=${ARCH:-deeplabv2-r101} SIZE=${SIZE:-full} LR=${LR:-1e-8}
EXTRACT_BATCH=${EXTRACT_BATCH:-1}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x "$ROOT/.venv/bin/python" ] && PYTHON="$ROOT/.venv/bin/python"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -e "$RUN" ] && [ -n "$(ls -A "$RUN" 2>/dev/null)" ]; then
  [ "${FORCE:-0}" = 1 ] || { echo "rehearsal: $RUN exists and is not empty; remove it or pass FORCE=1" >&2; exit 2; }
  rm -rf "$RUN"
fi
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
LABOR=("$PYTHON" -m labor_cli)
ON=(--device "$DEVICE")
[ -n "${WORKERS:-}" ] && ON+=(--workers "$WORKERS")
GTA5="gta5:$RUN/data/gta5/source" SYNTHIA="synthia:$RUN/data/synthia/source" TARGET="cityscapes:$RUN/data/gta5/target"
read -r TRAIN VAL < <("$PYTHON" -c "from labor_cli.data.toy import PRESETS; t = PRESETS['$SIZE']['target']; print(t['train'], t['val'])")
SOURCE_IMAGES=$("$PYTHON" -c "from labor_cli.data.toy import PRESETS; s = PRESETS['$SIZE']['source']; print(s['train'] + s['val'])")
PAIR_IMAGES=$((SOURCE_IMAGES + TRAIN + VAL))

table() {
  local facts
  facts=$(printf '{"build": "%s", "date": "%s", "device": "%s", "arch": "%s", "size": "%s", "iterations": %s, "cpus": %s, "cpu": "%s"}' \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(date -u +%Y-%m-%d)" "$DEVICE" "$ARCH" "$SIZE" \
    "$ITERS" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)")
  echo
  echo "rehearsal: $ARCH on $DEVICE, toy preset $SIZE, $ITERS training iteration(s); $RUN"
  "$PYTHON" "$HERE/rehearsal.py" table "$RUN" --facts "$facts"
}
measure() {  # measure NAME [helper options] -- COMMAND...: one stage; the first failure ends the rehearsal
  "$PYTHON" "$HERE/rehearsal.py" stage "$RUN" "$@" || { echo "rehearsal: stage $1 failed" >&2; table; exit 1; }
}
training() {  # training NAME OUTPUT LABOR-ARGS...: a training stage, timed per iteration from its losses CSV
  local name=$1 out=$2
  shift 2
  measure "$name" --units "$ITERS" --unit iteration --artifact "$out" --progress-file "${out%.h5}.losses.csv" \
    --note "checkpoint" -- "${LABOR[@]}" "$@" --iters "$ITERS" --lr "$LR" --log-every 1 "${ON[@]}" -o "$out" -q
}

measure "data toy, GTA5 layout" --units "$PAIR_IMAGES" --unit image --artifact "$RUN/data/gta5" --images "$PAIR_IMAGES" \
  -- "${LABOR[@]}" data toy "$RUN/data/gta5" --size "$SIZE"
measure "data toy, SYNTHIA layout" --units "$PAIR_IMAGES" --unit image --artifact "$RUN/data/synthia" \
  --images "$PAIR_IMAGES" -- "${LABOR[@]}" data toy "$RUN/data/synthia" --size "$SIZE" --source-layout synthia
measure "data check synthia" --units "$SOURCE_IMAGES" --unit image -- "${LABOR[@]}" data check "$SYNTHIA"

training "warmup GTA5->CS (2+2)" "$RUN/warmup.h5" warmup --source "$GTA5" --target "$TARGET" --arch "$ARCH" --init none
training "warmup SYNTHIA->CS (1+1)" "$RUN/warmup-synthia.h5" warmup --source "$SYNTHIA" --target "$TARGET" \
  --arch "$ARCH" --init none --source-batch 1 --target-batch 1

measure "extract" --units "$TRAIN" --unit image --artifact "$RUN/masks.h5" --images "$TRAIN" \
  -- "${LABOR[@]}" extract -m "$RUN/warmup.h5" --target "$TARGET" --batch-size "$EXTRACT_BATCH" "${ON[@]}" \
  -o "$RUN/masks.h5" -q
for mode in ppl spl balanced; do
  budget=(--points 40)
  [ "$mode" = spl ] && budget=()
  measure "select $mode" --units "$TRAIN" --unit image --artifact "$RUN/selection-$mode.h5" --images "$TRAIN" \
    -- "${LABOR[@]}" select --masks "$RUN/masks.h5" --mode "$mode" "${budget[@]}" -o "$RUN/selection-$mode.h5" -q
done
measure "label ppl" --units "$TRAIN" --unit image --artifact "$RUN/labels.h5" --images "$TRAIN" \
  -- "${LABOR[@]}" label --selection "$RUN/selection-ppl.h5" --target "$TARGET" --masks "$RUN/masks.h5" \
  -o "$RUN/labels.h5" -q
"$PYTHON" "$HERE/rehearsal.py" annotate "$RUN" --selection "$RUN/selection-ppl.h5" --target "$TARGET" \
  --output "$RUN/labels-person.h5" --points 10 --images "$TRAIN" -- "${LABOR[@]}" \
  || { echo "rehearsal: stage annotate failed" >&2; table; exit 1; }

training "adapt (2+2)" "$RUN/adapt.h5" adapt -m "$RUN/warmup.h5" --labels "$RUN/labels.h5" --source "$GTA5" \
  --target "$TARGET"
measure "evaluate adapt" --units "$VAL" --unit image --artifact "$RUN/eval.h5" \
  -- "${LABOR[@]}" evaluate -m "$RUN/adapt.h5" --target "$TARGET" --split val "${ON[@]}" -o "$RUN/eval.h5" -q
measure "evaluate SYNTHIA warmup" --units "$VAL" --unit image --artifact "$RUN/eval-synthia.h5" \
  -- "${LABOR[@]}" evaluate -m "$RUN/warmup-synthia.h5" --target "$TARGET" --split val "${ON[@]}" \
  -o "$RUN/eval-synthia.h5" -q
measure "predict" --units "$VAL" --unit image --artifact "$RUN/pred-val" --images "$VAL" \
  -- "${LABOR[@]}" predict -m "$RUN/adapt.h5" --target "$TARGET" --split val "${ON[@]}" -o "$RUN/pred-val" -q
# csEvalPixelLevelSemanticLabeling, instance-level scores included, through examples/cityscapes_eval.py
# (cityscapesScripts 2.3.0 calls np.in1d, which NumPy 2.4 removed).
mkdir -p "$RUN/cityscapes-eval"
measure "cityscapesScripts evaluator" --units "$VAL" --unit image --artifact "$RUN/cityscapes-eval" \
  -- env CITYSCAPES_DATASET="$RUN/data/gta5/target" CITYSCAPES_RESULTS="$RUN/pred-val" \
  CITYSCAPES_EXPORT_DIR="$RUN/cityscapes-eval" "$PYTHON" "$HERE/cityscapes_eval.py"
table
