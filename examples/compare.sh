#!/usr/bin/env bash
# The comparison on the toy pair, at equal label budgets, for each seed:
#   source only; adversarial UDA (no labels); random 40 points; entropy 40 points;
#   LabOR-PPL 40 points (as they come, and at least PPL_SPACING pixels apart, default 8);
#   random at LabOR-SPL's pixel ratio; LabOR-SPL; all target pixels labeled.
# Every labeled method adapts the same adversarial warmup with the toy-adapt preset.
#
#   examples/compare.sh [RUNS_DIR] [SEEDS...]        e.g. examples/compare.sh runs/compare 0 1 2
# Steps whose artifact exists are kept (rerun to resume). Prints three tables: mIoU (mean and spread),
# where each selection falls (A's error there, share of A's wrong pixels it holds), IoU per class.
set -euo pipefail
RUNS=${1:-runs/compare}; shift || true
SEEDS=${*:-0 1 2}
LABOR=${LABOR:-labor}
PPL_SPACING=${PPL_SPACING:-8}  # pixels between LabOR-PPL points in the spaced variant (PAPER.md's choice)
DATA=$RUNS/toy
[ -e "$DATA" ] || $LABOR data toy "$DATA"
S="gta5:$DATA/source"; T="cityscapes:$DATA/target"
keep() { [ -e "$1" ]; }

for seed in $SEEDS; do
  d="$RUNS/seed$seed"; mkdir -p "$d"
  keep "$d/source-only.h5" || $LABOR warmup --source "$S" --target "$T" --config toy-warmup --lambda-adv 0 --seed "$seed" -o "$d/source-only.h5" -q
  keep "$d/uda.h5" || $LABOR warmup --source "$S" --target "$T" --config toy-warmup --seed "$seed" -o "$d/uda.h5" -q
  keep "$d/masks.h5" || $LABOR extract -m "$d/uda.h5" --target "$T" -o "$d/masks.h5" -q
  keep "$d/sel-random40.h5" || $LABOR select --masks "$d/masks.h5" --mode random --points 40 --seed "$seed" -o "$d/sel-random40.h5" -q
  keep "$d/sel-entropy40.h5" || $LABOR select --masks "$d/masks.h5" --mode entropy --points 40 --seed "$seed" -o "$d/sel-entropy40.h5" -q
  keep "$d/sel-ppl40.h5" || $LABOR select --masks "$d/masks.h5" --mode ppl --points 40 --seed "$seed" -o "$d/sel-ppl40.h5" -q
  keep "$d/sel-ppl40-spaced.h5" || $LABOR select --masks "$d/masks.h5" --mode ppl --points 40 --min-spacing "$PPL_SPACING" --seed "$seed" -o "$d/sel-ppl40-spaced.h5" -q
  keep "$d/sel-spl.h5" || $LABOR select --masks "$d/masks.h5" --mode spl -o "$d/sel-spl.h5" -q
  keep "$d/lab-spl.h5" || $LABOR label --selection "$d/sel-spl.h5" --target "$T" --masks "$d/masks.h5" -o "$d/lab-spl.h5" -q
  ratio=$(python3 -c "import h5py,json,sys; f=h5py.File(sys.argv[1]); print(json.loads(f.attrs['summary'])['labeled_share_percent']/100)" "$d/lab-spl.h5")
  keep "$d/sel-random-spl-ratio.h5" || $LABOR select --masks "$d/masks.h5" --mode random --ratio "$ratio" --seed "$seed" -o "$d/sel-random-spl-ratio.h5" -q
  keep "$d/sel-all.h5" || $LABOR select --masks "$d/masks.h5" --mode random --ratio 1.0 --seed "$seed" -o "$d/sel-all.h5" -q
  for m in random40 entropy40 ppl40 ppl40-spaced random-spl-ratio all; do
    keep "$d/lab-$m.h5" || $LABOR label --selection "$d/sel-$m.h5" --target "$T" --masks "$d/masks.h5" -o "$d/lab-$m.h5" -q
  done
  for m in random40 entropy40 ppl40 ppl40-spaced random-spl-ratio spl all; do
    keep "$d/model-$m.h5" || $LABOR adapt -m "$d/uda.h5" --labels "$d/lab-$m.h5" --source "$S" --target "$T" --config toy-adapt --seed "$seed" -o "$d/model-$m.h5" -q
  done
  for m in source-only uda; do keep "$d/eval-$m.h5" || $LABOR evaluate -m "$d/$m.h5" --target "$T" -o "$d/eval-$m.h5" -q >/dev/null; done
  for m in random40 entropy40 ppl40 ppl40-spaced random-spl-ratio spl all; do
    keep "$d/eval-$m.h5" || $LABOR evaluate -m "$d/model-$m.h5" --target "$T" -o "$d/eval-$m.h5" -q >/dev/null
  done
done

python3 - "$RUNS" "$PPL_SPACING" $SEEDS <<'PY'
import json, statistics, sys
from pathlib import Path
import h5py
runs, spacing, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
rows = [("source only", "source-only", None), ("adversarial UDA, no labels", "uda", None),
        ("random, 40 points / image", "random40", "random40"), ("entropy, 40 points / image", "entropy40", "entropy40"),
        ("LabOR-PPL, 40 points / image", "ppl40", "ppl40"),
        (f"LabOR-PPL, 40 points / image, min spacing {spacing} px", "ppl40-spaced", "ppl40-spaced"), ("random, at SPL's pixel ratio", "random-spl-ratio", "random-spl-ratio"),
        ("LabOR-SPL, whole mask", "spl", "spl"), ("all target pixels labeled", "all", "all")]
def score(path):
    with h5py.File(path) as f:
        return next(v for k, v in json.loads(f.attrs["scores"]).items() if k.startswith("mIoU"))
def share(path):
    with h5py.File(path) as f:
        return json.loads(f.attrs["summary"])["labeled_share_percent"]
print(f"| method | labeled target pixels (%) | mIoU, toy target val (mean ± sd over seeds {', '.join(seeds)}) | per seed |")
print("|---|---|---|---|")
for title, name, labels in rows:
    values = [score(runs / f"seed{s}" / f"eval-{name}.h5") for s in seeds]
    shares = [share(runs / f"seed{s}" / f"lab-{labels}.h5") for s in seeds] if labels else [0.0]
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    print(f"| {title} | {statistics.mean(shares):.3f} | {statistics.mean(values):.1f}{spread} | {', '.join(f'{v:.1f}' for v in values)} |")
print()
print("| selection | A's error on the selected pixels (%) | A's error on all pixels (%) | A's wrong pixels selected (%) |")
print("|---|---|---|---|")
for title, name, labels in rows:
    if not labels or labels == "all":
        continue
    summaries = []
    for s in seeds:
        with h5py.File(runs / f"seed{s}" / f"lab-{labels}.h5") as f:
            summaries.append(json.loads(f.attrs["summary"]))
    selected = statistics.mean(x["error_rate_selected_percent"] for x in summaries)
    overall = statistics.mean(x["error_rate_all_percent"] for x in summaries)
    covered = statistics.mean(x["errors_covered_percent"] for x in summaries)
    print(f"| {title} | {selected:.1f} | {overall:.1f} | {covered:.2f} |")

print()
columns = [(title, name) for title, name, _ in rows]
print("| class | " + " | ".join(name for _, name in columns) + " |")
print("|---|" + "---|" * len(columns))
per_class = {}
for _, name in columns:
    runs_iou = []
    for s in seeds:
        with h5py.File(runs / f"seed{s}" / f"eval-{name}.h5") as f:
            class_names = json.loads(f.attrs["class_names"])
            runs_iou.append(f["iou"][()])
    per_class[name] = [100 * statistics.mean(float(r[k]) for r in runs_iou) for k in range(len(class_names))]
for k, class_name in enumerate(class_names):
    print(f"| {class_name} | " + " | ".join(f"{per_class[name][k]:.1f}" for _, name in columns) + " |")
PY
