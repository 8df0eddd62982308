"""Result tables and one-line summaries printed at the end of each stage."""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from labor_cli.console import stdout


def _pct(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def percent(value: float | None) -> str:
    """A percentage to one decimal, or two below 1% (a 40-point selection holds a fraction of a percent)."""
    if value is None:
        return "-"
    return f"{value:.2f}%" if abs(value) < 1 else f"{value:.1f}%"


def print_class_table(round_counts: dict[str, int], total_counts: dict[str, int] | None) -> None:
    columns = ["class", "this round"] + (["total"] if total_counts is not None else [])
    table = Table(*columns)
    for name, count in round_counts.items():
        total = total_counts[name] if total_counts is not None else 0
        if count or total:
            table.add_row(name, str(count), *([str(total)] if total_counts is not None else []))
    if table.row_count:
        stdout.print(table)


def print_toy_summary(directory: Path, summary: dict) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in summary.get("counts", {}).items())
    stdout.print(f"toy domain pair in {directory}: {counts} ({summary.get('seconds', 0):.1f} s)")
    layout = summary.get("source_layout", "gta5")
    stdout.print(f"  source: {layout}:{Path(directory) / 'source'}    target: cityscapes:{Path(directory) / 'target'}")


def print_evaluation(result, output: Path) -> None:
    table = Table("class", "IoU", title=f"{result.images} images")
    for name, value in zip(result.class_names, result.iou):
        table.add_row(name, _pct(value * 100))
    stdout.print(table)
    scores = "  ".join(f"{name} {_pct(value)}" for name, value in result.scores.items())
    stdout.print(f"{scores}   ({result.seconds:.1f} s) -> {output}")


# Recorded beside the losses in a training history: B's mask and the discrepancy weight.
MASK_HISTORY = ("mask_share", "mask_kept", "lambda_dis")


def print_training(result) -> None:
    """The losses and B's mask over the last 50 iterations. The mask is measured on the feature
    grid of the training images; `labor extract` measures it again at full resolution."""
    losses = "  ".join(
        f"{name} {value:.3f}" for name, value in result.final_losses.items() if value and name not in MASK_HISTORY
    )
    stdout.print(f"{result.iterations} iterations in {result.seconds:.0f} s; last losses: {losses} -> {result.output}")
    last = result.final_losses
    if "mask_kept" not in last:
        return
    budget = result.mask_budget
    line = f"  B's mask, last 50 iterations: heads differ on {100 * last['mask_share']:.2f}% of the target pixels"
    if budget > 0:
        line += f", {100 * last['mask_kept']:.2f}% kept within --mask-share {100 * budget:.2f}% of each image"
        if not 0.8 * budget <= last["mask_kept"] <= budget:
            line += " (outside 80-100% of it: a longer run, or another --lambda-dis to start from)"
    stdout.print(f"{line}; lambda_dis {last['lambda_dis']:.3g}")


def print_extract(result) -> None:
    top = sorted(result.class_share.items(), key=lambda item: -item[1])[:5]
    classes = ", ".join(f"{name} {share:.0f}%" for name, share in top if share > 0)
    budget = f", within --mask-share {result.mask_budget:.2f}%" if result.mask_budget > 0 else ""
    stdout.print(
        f"{result.images} images, mask {result.mask_share:.2f}% of pixels{budget} (B's heads differ on "
        f"{result.differ_share:.2f}%; by A's class: {classes}); "
        f"{result.bytes_per_image / 1024:.1f} KiB per image, {result.seconds:.1f} s -> {result.output}"
    )
