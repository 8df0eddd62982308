#!/usr/bin/env bash
# The comparison on the toy pairs at equal label budgets, for each pair and seed:
#   source only; adversarial UDA (no labels);
#   one round of 40 points per image: random, entropy, LabOR-PPL (PPL_SPACING px apart), ours (balanced: its
#     default strata, A's classes then their runner-up classes, and the class strata alone),
#     and two ceilings that read the target's ground truth (examples/oracle_select.py): class budgets from the
#     true classes (oracle40), and the same with A's wrong pixels first (oracle-errors40);
#   one round at LabOR-SPL's pixel ratio: LabOR-SPL, random, ours (both); all target pixels labeled;
#   five rounds of 8 points per image (ROUND_ITERS adapt iterations each, labels accumulate): random, LabOR-PPL, ours
#     (class strata, and class pairs: balanced-pair).
# Every one-round method adapts the same UDA warmup with the toy-adapt preset (300 iterations).
#
#   examples/compare.sh [RUNS_DIR] [SEEDS...]        e.g. examples/compare.sh runs/compare 0 1 2
# Environment: PAIRS="photo night" (the toy's two kinds of shift), METHODS (one-round methods, default all; "" none),
# ROUND_METHODS="random ppl balanced balanced-pair" and ROUND_SEEDS (default: SEEDS), BASELINES="source-only uda",
# WARMUP_SEED (set: every seed adapts that seed's warmup, so the seeds vary the selection and the adapt round only),
# FIGURES=DIR (draw, per pair, mIoU against the labeled share and IoU per class into DIR; needs labor[plot]),
# TABLES_ONLY=1 (print the tables and draw the figures from the artifacts already there; run nothing),
# LABOR (the command, default labor), PYTHON (one that imports labor_cli, as the activated .venv's python3 does; default python3).
# Steps whose artifact exists are kept (rerun to resume, or to add methods and seeds). Prints, per pair: mIoU
# (mean, sd, per seed), where each selection falls (A's error there and the share of A's wrong pixels it holds,
# next to random's and entropy's at the same budget), and IoU per class. Raw numbers: RUNS_DIR/results.json.
set -euo pipefail
RUNS=${1:-runs/compare}; shift || true
SEEDS=${*:-0 1 2}
PAIRS=${PAIRS:-photo night}
METHODS=${METHODS-random40 entropy40 ppl40 balanced40 balanced-pair40 oracle40 oracle-errors40 spl random-spl-ratio balanced-spl-ratio balanced-pair-spl-ratio all}
ROUND_METHODS=${ROUND_METHODS-random ppl balanced balanced-pair}
ROUND_SEEDS=${ROUND_SEEDS:-$SEEDS}
BASELINES=${BASELINES-source-only uda}
LABOR=${LABOR:-labor}
PYTHON=${PYTHON:-python3}
PPL_SPACING=${PPL_SPACING:-8}  # pixels between LabOR-PPL points (docs/method.md's choice)
ROUNDS=${ROUNDS:-5}; ROUND_POINTS=${ROUND_POINTS:-8}; ROUND_ITERS=${ROUND_ITERS:-60}
HERE=$(dirname "$0")
keep() { [ -e "$1" ]; }

share_of() {  # the labeled share of a labels artifact, as a fraction of the pixels
  $PYTHON -c "import h5py,json,sys; print(json.loads(h5py.File(sys.argv[1]).attrs['summary'])['labeled_share_percent']/100)" "$1"
}

select_options() {  # the options of `labor select` for a one-round method
  case $1 in
    random40) echo --mode random --points 40 --seed "$seed" ;;
    entropy40) echo --mode entropy --points 40 ;;
    ppl40) echo --mode ppl --points 40 --min-spacing "$PPL_SPACING" ;;
    balanced40) echo --mode balanced --strata class --points 40 --seed "$seed" ;;
    balanced-pair40) echo --mode balanced --strata class-pair --points 40 --seed "$seed" ;;
    spl) echo --mode spl ;;
    random-spl-ratio) echo --mode random --ratio "$(spl_ratio)" --seed "$seed" ;;
    balanced-spl-ratio) echo --mode balanced --strata class --ratio "$(spl_ratio)" --seed "$seed" ;;
    balanced-pair-spl-ratio) echo --mode balanced --strata class-pair --ratio "$(spl_ratio)" --seed "$seed" ;;
    all) echo --mode random --ratio 1.0 ;;
    *) echo "unknown method $1" >&2; exit 2 ;;
  esac
}

make_selection() {  # make_selection METHOD OUTPUT: `labor select`, or a ceiling that reads the ground truth
  case $1 in
    oracle40) $PYTHON "$HERE/oracle_select.py" "$masks" "$T" --points 40 --seed "$seed" -o "$2" >/dev/null ;;
    oracle-errors40) $PYTHON "$HERE/oracle_select.py" "$masks" "$T" --points 40 --seed "$seed" --errors-first -o "$2" >/dev/null ;;
    *) $LABOR select --masks "$masks" $(select_options "$1") -o "$2" -q >/dev/null ;;
  esac
}

spl_ratio() {
  keep "$d/sel-spl.h5" || $LABOR select --masks "$masks" --mode spl -o "$d/sel-spl.h5" -q >/dev/null
  keep "$d/lab-spl.h5" || $LABOR label --selection "$d/sel-spl.h5" --target "$T" --masks "$masks" -o "$d/lab-spl.h5" -q >/dev/null
  share_of "$d/lab-spl.h5"
}

rounds() {  # rounds NAME MODE [select options...]: ROUNDS rounds of ROUND_POINTS points from the UDA warmup
  local name=$1 mode=$2; shift 2
  local model=$uda labels="" r
  keep "$d/eval-$name-5x8.h5" && return
  for r in $(seq 1 "$ROUNDS"); do
    local p=$d/$name-5x8-r$r exclude=() merge=()
    [ -n "$labels" ] && exclude=(--exclude "$labels") && merge=(--merge "$labels")
    keep "$p-masks.h5" || $LABOR extract -m "$model" --target "$T" "${exclude[@]}" -o "$p-masks.h5" -q
    keep "$p-sel.h5" || $LABOR select --masks "$p-masks.h5" --mode "$mode" --points "$ROUND_POINTS" "$@" -o "$p-sel.h5" -q
    keep "$p-lab.h5" || $LABOR label --selection "$p-sel.h5" --target "$T" --masks "$p-masks.h5" "${merge[@]}" -o "$p-lab.h5" -q
    keep "$p-model.h5" || $LABOR adapt -m "$model" --labels "$p-lab.h5" --source "$S" --target "$T" --config toy-adapt \
      --iters "$ROUND_ITERS" --save-every "$ROUND_ITERS" --seed "$seed" -o "$p-model.h5" -q
    model=$p-model.h5; labels=$p-lab.h5
  done
  keep "$d/lab-$name-5x8.h5" || cp "$labels" "$d/lab-$name-5x8.h5"
  $LABOR evaluate -m "$model" --target "$T" -o "$d/eval-$name-5x8.h5" -q >/dev/null
}

for pair in $PAIRS; do
  [ -n "${TABLES_ONLY:-}" ] && break  # tables and figures from what is there; nothing is run
  DATA=$RUNS/$pair/data
  keep "$DATA" || $LABOR data toy "$DATA" --shift "$pair" >/dev/null
  S="gta5:$DATA/source"; T="cityscapes:$DATA/target"
  for seed in $SEEDS; do
    d="$RUNS/$pair/seed$seed"; mkdir -p "$d"
    w=$RUNS/$pair/seed${WARMUP_SEED:-$seed}; uda=$w/uda.h5; masks=$w/masks.h5
    keep "$uda" || $LABOR warmup --source "$S" --target "$T" --config toy-warmup --seed "${WARMUP_SEED:-$seed}" -o "$uda" -q
    keep "$masks" || $LABOR extract -m "$uda" --target "$T" -o "$masks" -q
    baselines=$BASELINES
    [ -n "${WARMUP_SEED:-}" ] && [ "$WARMUP_SEED" != "$seed" ] && baselines=""  # the warmup's seed has them
    for m in $baselines; do
      [ "$m" = source-only ] && { keep "$d/source-only.h5" || $LABOR warmup --source "$S" --target "$T" --config toy-warmup \
        --lambda-adv 0 --seed "$seed" -o "$d/source-only.h5" -q; }
      keep "$d/eval-$m.h5" || $LABOR evaluate -m "$d/$m.h5" --target "$T" -o "$d/eval-$m.h5" -q >/dev/null
    done
    for m in $METHODS; do
      keep "$d/sel-$m.h5" || make_selection "$m" "$d/sel-$m.h5"
      keep "$d/lab-$m.h5" || $LABOR label --selection "$d/sel-$m.h5" --target "$T" --masks "$masks" -o "$d/lab-$m.h5" -q >/dev/null
      keep "$d/model-$m.h5" || $LABOR adapt -m "$uda" --labels "$d/lab-$m.h5" --source "$S" --target "$T" \
        --config toy-adapt --seed "$seed" -o "$d/model-$m.h5" -q
      keep "$d/eval-$m.h5" || $LABOR evaluate -m "$d/model-$m.h5" --target "$T" -o "$d/eval-$m.h5" -q >/dev/null
    done
    case " $ROUND_SEEDS " in *" $seed "*)
      for m in $ROUND_METHODS; do
        case $m in
          ppl) rounds ppl ppl --min-spacing "$PPL_SPACING" ;;
          balanced) rounds balanced balanced --strata class --seed "$seed" ;;
          balanced-pair) rounds balanced-pair balanced --strata class-pair --seed "$seed" ;;
          *) rounds "$m" "$m" --seed "$seed" ;;
        esac
      done ;;
    esac
  done
done

$PYTHON "$HERE/compare_tables.py" "$RUNS" --seeds $SEEDS --pairs $PAIRS --spacing "$PPL_SPACING"

if [ -n "${FIGURES:-}" ]; then
  mkdir -p "$FIGURES"
  for pair in $PAIRS; do
    r=$RUNS/$pair/seed
    $LABOR plot budget --label "adversarial UDA=${r}*/eval-uda.h5" \
      --label "random=${r}*/eval-random40.h5" --label "random=${r}*/eval-random-spl-ratio.h5" \
      --label "ours (balanced)=${r}*/eval-balanced-pair40.h5" --label "ours (balanced)=${r}*/eval-balanced-pair-spl-ratio.h5" \
      --label "ours, class strata=${r}*/eval-balanced40.h5" --label "ours, class strata=${r}*/eval-balanced-spl-ratio.h5" \
      --label "LabOR (PPL, SPL)=${r}*/eval-ppl40.h5" --label "LabOR (PPL, SPL)=${r}*/eval-spl.h5" \
      --label "ceiling: true classes=${r}*/eval-oracle40.h5" --label "all pixels=${r}*/eval-all.h5" \
      -o "$FIGURES/compare-$pair-budget.png" --size 900x600 --force
    $LABOR plot classes --label "random=${r}*/eval-random40.h5" --label "LabOR-PPL=${r}*/eval-ppl40.h5" \
      --label "ours (balanced)=${r}*/eval-balanced-pair40.h5" --label "ceiling: true classes=${r}*/eval-oracle40.h5" \
      -o "$FIGURES/compare-$pair-classes.png" --size 1400x600 --force
  done
fi
