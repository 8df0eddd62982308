#!/usr/bin/env bash
# SPL's budget on several toy pairs and run lengths: B's mask at the end of warmup and after extract.
# Usage: examples/steer_check.sh RUNS_DIR [PAIR:SEED:ITERATIONS ...]
#   PAIR is photo or night; default runs: photo:7:750 night:3:750 photo:0:200 night:0:1500.
# Prints, per run, warmup's last-50-iteration shares (where B's heads differ, kept within
# --mask-share) and extract's, against the budget +-20% (docs/method.md, "SPL at its budget").
# Finished steps are kept: a rerun only prints. About 10 minutes per 750 iterations on 2 cores.
set -euo pipefail
runs=${1:?usage: examples/steer_check.sh RUNS_DIR [PAIR:SEED:ITERATIONS ...]}
shift
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(photo:7:750 night:3:750 photo:0:200 night:0:1500)
labor=${LABOR:-labor}
mkdir -p "$runs"
for spec in "${specs[@]}"; do
    IFS=: read -r pair seed iterations <<<"$spec"
    data="$runs/$pair$seed"
    run="$runs/$pair$seed-$iterations"
    [ -d "$data" ] || "$labor" data toy "$data" --seed "$seed" --shift "$pair" >/dev/null
    [ -f "$run.h5" ] || "$labor" warmup --source "gta5:$data/source" --target "cityscapes:$data/target" \
        --config toy-warmup --iterations "$iterations" --quiet -o "$run.h5" >/dev/null
    [ -f "$run-masks.h5" ] || "$labor" extract -m "$run.h5" --target "cityscapes:$data/target" --quiet \
        -o "$run-masks.h5" >/dev/null
    python - "$spec" "$run.h5" "$run-masks.h5" <<'PY'
import json, sys
import h5py
import numpy as np
spec, checkpoint, masks = sys.argv[1:]
with h5py.File(checkpoint, "r") as f:
    budget = json.loads(f.attrs["config"])["train"]["mask_share"]
    history = {name: f[f"training/history/{name}"][()] for name in ("mask_share", "mask_kept")}
with h5py.File(masks, "r") as f:
    summary = json.loads(f.attrs["summary"])
kept, differ = (100 * float(np.mean(history[name][-50:])) for name in ("mask_kept", "mask_share"))
low, high = 80 * budget, 100 * budget
verdict = "inside" if low <= kept <= 120 * budget and low <= summary["mask_share_percent"] <= 120 * budget else "OUTSIDE"
print(f"{spec}: warmup kept {kept:.2f}% (heads differ {differ:.2f}%), extract mask "
      f"{summary['mask_share_percent']:.2f}% (heads differ {summary['differ_share_percent']:.2f}%); "
      f"budget {100 * budget:.2f}% +-20%: {verdict}")
PY
done
