"""What the stages' summaries share: percentages, scores and the per-class count table.

Each command prints its own summary in the module that runs it (``print_STAGE`` at the end of the
stage's driver in stages/, called by cli.py), so a stage's output reads beside the code that made it."""

from __future__ import annotations

import math

from rich.table import Table

from labor_cli.console import stdout


def score(value: float | None) -> str:
    """A score in percent to two decimals (an IoU, an mIoU), or - where there is none (a class absent from the split)."""
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
