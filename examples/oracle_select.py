"""Ceilings for a selection at a fixed budget: selections that read the target's ground truth,
which no real selection can, to measure how much room a better selection has on a pair.

    python examples/oracle_select.py MASKS TARGET --points 40 --seed 0 [--errors-first] -o SELECTION

Per image, the budget is split over the classes of the ground truth (not A's prediction) in
proportion to each class's area to the power --balance-power (0.5: `labor select --mode
balanced --strata class`'s rule, with every class known exactly), by the same largest-remainder
rule; inside a class the pixels are drawn uniformly, or, with --errors-first, A's wrong pixels
first (then the rest). Pixels labeled in earlier rounds (the masks' excluded pixels) are never drawn. Writes a
selection artifact that `labor label` answers like any other; examples/compare.sh runs these as
methods `oracle40` and `oracle-errors40`. Needs the labels of the target's split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from labor_cli import artifacts, selection
from labor_cli.data.datasets import open_dataset
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.selection import excluded_linear


def oracle_pick(
    truth: np.ndarray, prediction: np.ndarray, n: int, rng, power: float, errors_first: bool, excluded: np.ndarray
) -> np.ndarray:
    """Linear indices of n pixels, class budgets from the ground truth's class areas."""
    flat = truth.reshape(-1).astype(np.int64)
    available = np.ones(flat.size, dtype=bool)
    available[excluded] = False
    available &= flat != IGNORE_INDEX
    pixels = np.flatnonzero(available)
    order = np.argsort(flat[pixels], kind="stable")
    _, starts, areas = np.unique(flat[pixels][order], return_index=True, return_counts=True)
    budgets = selection.class_budgets(areas, n, power)
    # A random order inside each class; with errors_first, A's wrong pixels come before its right ones.
    key = rng.random(flat.size) + (errors_first * (prediction.reshape(-1) == flat))
    picks = [np.zeros(0, np.int64)]
    for start, area, budget in zip(starts, areas, budgets):
        members = pixels[order[start : start + area]]
        picks.append(members[np.argsort(key[members], kind="stable")[:budget]])
    return np.concatenate(picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("masks", type=Path)
    parser.add_argument("target", help="the target dataset, KIND:PATH, with labels")
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--balance-power", type=float, default=0.5)
    parser.add_argument("--errors-first", action="store_true")
    parser.add_argument("--split", default="train")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    with artifacts.Masks(args.masks) as masks:
        dataset = open_dataset(args.target, args.split, class_set=masks.class_set, reads=("labels",))
        ys, xs, predicted, counts = [], [], [], []
        for i, image_id in enumerate(masks.image_ids):
            prediction = masks.prediction(i)
            truth = dataset.read_label(dataset.index_of(image_id))
            excluded = excluded_linear(masks, i, prediction.shape)
            rng = selection.image_rng(args.seed, i)
            linear = oracle_pick(truth, prediction, args.points, rng, args.balance_power, args.errors_first, excluded)
            y, x = np.divmod(linear, prediction.shape[1])
            ys.append(y), xs.append(x), predicted.append(prediction[y, x]), counts.append(len(linear))
        pixel_set = artifacts.PixelSet(
            image_ids=list(masks.image_ids),
            sizes=masks.sizes.astype(np.int32),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            y=np.concatenate(ys).astype(np.int32),
            x=np.concatenate(xs).astype(np.int32),
            label=None,
            class_set=masks.class_set,
            class_names=list(masks.class_names),
            predicted=np.concatenate(predicted).astype(np.uint8),
        )
        mode = "oracle-errors-first" if args.errors_first else "oracle"
        config = {"mode": mode, "points": args.points, "seed": args.seed, "balance_power": args.balance_power}
        with artifacts.create_artifact(args.output, "selection", config, [masks.parent()]) as f:
            artifacts.write_pixel_set(f, pixel_set)
            f.attrs["summary"] = json.dumps({"mode": mode, "selected": int(sum(counts))})
    print(f"{mode}: {sum(counts)} pixels in {len(counts)} images -> {args.output}")


if __name__ == "__main__":
    main()
