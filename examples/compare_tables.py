"""The tables of examples/compare.sh, from its artifacts: mIoU per method (mean, sd, per seed),
where each selection falls next to random and entropy at the same budget, and IoU per class.

    python3 examples/compare_tables.py RUNS_DIR --seeds 0 1 2 --pairs photo night [--spacing 8]

Reads only the artifacts' attributes and datasets with h5py; writes RUNS_DIR/results.json too.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import h5py

# (title, evaluation name, labels name or None)
METHODS = [
    ("source only", "source-only", None),
    ("adversarial UDA, no labels", "uda", None),
    ("random, 40 points / image", "random40", "random40"),
    ("entropy, 40 points / image", "entropy40", "entropy40"),
    ("LabOR-PPL, 40 points / image, {spacing} px apart", "ppl40", "ppl40"),
    ("**ours (balanced: class-pair strata, the default), 40 points / image**", "balanced-pair40", "balanced-pair40"),
    ("ours, class strata (`--strata class`), 40 points / image", "balanced40", "balanced40"),
    ("ceiling: true classes balanced, 40 points / image (reads the ground truth)", "oracle40", "oracle40"),
    ("ceiling: the same, A's wrong pixels first (reads the ground truth)", "oracle-errors40", "oracle-errors40"),
    ("LabOR-SPL, whole mask", "spl", "spl"),
    ("random, at SPL's pixel ratio", "random-spl-ratio", "random-spl-ratio"),
    (
        "**ours (balanced: class-pair strata, the default), at SPL's pixel ratio**",
        "balanced-pair-spl-ratio",
        "balanced-pair-spl-ratio",
    ),
    ("ours, class strata, at SPL's pixel ratio", "balanced-spl-ratio", "balanced-spl-ratio"),
    ("all target pixels labeled", "all", "all"),
    ("random, 5 rounds of 8 points", "random-5x8", "random-5x8"),
    ("LabOR-PPL, 5 rounds of 8 points", "ppl-5x8", "ppl-5x8"),
    ("ours (balanced, class-pair strata), 5 rounds of 8 points", "balanced-pair-5x8", "balanced-pair-5x8"),
    ("ours (balanced, class strata), 5 rounds of 8 points", "balanced-5x8", "balanced-5x8"),
]


def attrs_json(path: Path, name: str) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[name])


def evaluation(path: Path) -> tuple[float, list[str], list[float]]:
    with h5py.File(path, "r") as f:
        scores = json.loads(f.attrs["scores"])
        names = json.loads(f.attrs["class_names"])
        iou = [100 * float(v) for v in f["iou"][()]]
    miou = next(v for k, v in scores.items() if k.startswith("mIoU"))
    return miou, names, iou


def mean_sd(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.1f}{spread}"


def pair_tables(runs: Path, pair: str, seeds: list[str], spacing: str) -> dict:
    results = {}
    for title, name, labels in METHODS:
        # The seeds this method has run for (rounds may run on fewer seeds than the rest).
        seed_dirs = [runs / pair / f"seed{s}" for s in seeds if (runs / pair / f"seed{s}" / f"eval-{name}.h5").exists()]
        if not seed_dirs:
            continue
        evaluations = [evaluation(d / f"eval-{name}.h5") for d in seed_dirs]
        summaries = [attrs_json(d / f"lab-{labels}.h5", "summary") for d in seed_dirs] if labels else []
        results[name] = {
            "title": title.format(spacing=spacing),
            "seeds": [d.name.removeprefix("seed") for d in seed_dirs],
            "miou": [e[0] for e in evaluations],
            "class_names": evaluations[0][1],
            "iou": [statistics.mean(e[2][k] for e in evaluations) for k in range(len(evaluations[0][1]))],
            "labeled_percent": [s["labeled_share_percent"] for s in summaries] or [0.0],
            "error_rate_selected_percent": [s.get("error_rate_selected_percent") for s in summaries],
            "summaries": summaries,
        }
    return results


def print_pair(pair: str, results: dict, seeds: list[str]) -> None:
    print(f"### The {pair} pair\n")
    print("| method | labeled target pixels (%) | mIoU, toy target val (mean ± sd over seeds) | per seed |")
    print("|---|---|---|---|")
    for row in results.values():
        per_seed = ", ".join(f"{v:.1f}" for v in row["miou"])
        print(
            f"| {row['title']} | {statistics.mean(row['labeled_percent']):.3f} | {mean_sd(row['miou'])} | "
            f"{per_seed} (seeds {', '.join(row['seeds'])}) |"
        )
    print()
    print("Where each one-round selection falls (mean over seeds; `labor label --masks` prints these):\n")
    print(
        "| selection | A wrong on it (%) | share of A's wrong pixels (%) | random, same budget: wrong / share | "
        "entropy, same budget: wrong / share |"
    )
    print("|---|---|---|---|---|")

    def figure(summaries: list[dict], key: str, field: str) -> str:
        values = [s[key][field] for s in summaries if s.get(key) and s[key].get(field) is not None]
        if len(values) != len(summaries) or not values:
            return "-"
        mean = statistics.mean(values)
        return f"{mean:.2f}" if mean < 1 else f"{mean:.1f}"  # a 40-point selection holds a fraction of a percent

    for name, row in results.items():
        summaries = row["summaries"]
        if not summaries or name in ("all",) or name.endswith("5x8"):
            continue
        cells = [
            figure(summaries, "compared", f"{who}_{what}_percent")
            for who in ("selection", "random", "entropy")
            for what in ("error", "errors_covered")
        ]
        print(f"| {row['title']} | {cells[0]} | {cells[1]} | {cells[2]} / {cells[3]} | {cells[4]} / {cells[5]} |")
    print()
    names = next(iter(results.values()))["class_names"]
    columns = list(results)
    print("IoU per class (mean over seeds):\n")
    print("| class | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for k, class_name in enumerate(names):
        print(f"| {class_name} | " + " | ".join(f"{results[c]['iou'][k]:.1f}" for c in columns) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--pairs", nargs="+", default=["photo", "night"])
    parser.add_argument("--spacing", default="8")
    args = parser.parse_args()
    everything = {}
    for pair in args.pairs:
        results = pair_tables(args.runs, pair, args.seeds, args.spacing)
        if results:
            print_pair(pair, results, args.seeds)
            everything[pair] = {
                name: {k: v for k, v in row.items() if k != "summaries"} for name, row in results.items()
            }
    (args.runs / "results.json").write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
