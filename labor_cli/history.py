"""The loss history of a training run as CSV, written while it runs: OUTPUT.losses.csv.

A checkpoint keeps its loss history, but a 40,000-iteration run saves one only every
``--save-every`` iterations; the CSV beside the output grows at every log interval, so a run
can be followed (``tail -f``) and plotted (``labor plot curves``) before it ends.

Format: a header row, then one row per iteration (the iteration number counts the steps done,
1 for the first), in the columns ``iteration``, the names of training.steps.HISTORY_NAMES (the losses,
the share of target pixels where B's heads differ, the share the mask keeps within --mask-share,
and the discrepancy weight used), ``lr``
(the learning rate of A's backbone at that step; empty where unknown). Losses are written in
the shortest decimal form that reads back to the same float32 (as the checkpoint stores them).

Resuming rewinds the file to the resumed iteration (rows after it, from the interrupted part
of the run, are dropped) and appends from there; a missing or foreign file is rebuilt from the
checkpoint's history. It stays with the resume file it complements: a run that stops with a
resume file keeps it, one that fails with none removes it (labor_cli.stages.train).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from labor_cli.errors import LaborError

# training.steps.HISTORY_NAMES (this module does not import torch); tests/test_history.py keeps them equal.
LOSS_COLUMNS = (
    "seg_src",
    "seg_tgt",
    "adv",
    "disc",
    "sel_src",
    "sel_pseudo",
    "dis",
    "mask_share",
    "mask_kept",
    "lambda_dis",
)
COLUMNS = ("iteration",) + LOSS_COLUMNS + ("lr",)


def loss_history_path(output: Path) -> Path:
    """runs/warmup.h5 -> runs/warmup.losses.csv."""
    output = Path(output)
    return output.with_name(output.stem + ".losses.csv")


def _float32(value: float) -> str:
    return str(np.float32(value))


class LossHistoryCSV:
    """Appends rows to OUTPUT.losses.csv, flushed at every call.

    ``start_iteration``: 0 for a new run (the file is started afresh), else the iteration a run
    resumes from: rows up to it are kept (or rebuilt from ``history``, the resumed checkpoint's
    loss history, when the file is missing or is not such a file) and later ones dropped.
    """

    def __init__(self, path: Path, start_iteration: int = 0, history: Mapping[str, Sequence[float]] | None = None):
        self.path = Path(path)
        kept = self._rows_up_to(start_iteration) if start_iteration > 0 else []
        if start_iteration > 0 and len(kept) != start_iteration:
            kept = self._rows_from_history(history or {}, start_iteration, previous=kept)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(kept)
        temporary = self.path.with_name(f".{self.path.name}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text.getvalue())
            os.replace(temporary, self.path)
            self.file = open(self.path, "a", newline="")  # noqa: SIM115 - open for the writer's lifetime
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise LaborError(f"{self.path}: cannot write the loss history ({exc.strerror or exc})") from exc
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.iteration = start_iteration

    def _rows_up_to(self, iteration: int) -> list[list[str]]:
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error):
            return []
        if not rows or tuple(rows[0]) != COLUMNS:
            return []
        kept = []
        for number, row in enumerate(rows[1:], start=1):
            if len(row) != len(COLUMNS) or row[0] != str(number) or number > iteration:
                break
            kept.append(row)
        return kept

    @staticmethod
    def _rows_from_history(
        history: Mapping[str, Sequence[float]], iteration: int, previous: list[list[str]]
    ) -> list[list[str]]:
        """Rows 1..iteration from a checkpoint's history; the learning rates of ``previous`` rows are kept."""
        rates = {int(row[0]): row[-1] for row in previous}
        rows = []
        for i in range(iteration):
            losses = [
                _float32(history[name][i]) if name in history and i < len(history[name]) else ""
                for name in LOSS_COLUMNS
            ]
            rows.append([str(i + 1)] + losses + [rates.get(i + 1, "")])
        return rows

    def append(self, losses: Mapping[str, Sequence[float]], lr: float | Sequence[float] | None = None) -> None:
        """The losses of the iterations since the last call (``losses[name][k]`` is iteration
        ``self.iteration + k + 1``), and the learning rate: one for all of them or one each."""
        count = len(losses[LOSS_COLUMNS[0]])
        rates = [lr] * count if lr is None or np.isscalar(lr) else list(lr)
        for k in range(count):
            row = [str(self.iteration + k + 1)] + [_float32(losses[name][k]) for name in LOSS_COLUMNS]
            self.writer.writerow(row + ["" if rates[k] is None else repr(float(rates[k]))])
        self.iteration += count
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_loss_history_csv(path: Path) -> dict[str, np.ndarray]:
    """The columns of a loss-history CSV as arrays (float; NaN where a cell is empty)."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LaborError(f"{path}: cannot read the loss history ({exc})") from exc
    if not rows or tuple(rows[0][:1]) != ("iteration",) or "lr" not in rows[0]:
        raise LaborError(f"{path}: not a labor loss history (expected the columns {', '.join(COLUMNS)})")
    header, body = rows[0], [row for row in rows[1:] if row]
    if any(len(row) != len(header) for row in body):
        raise LaborError(f"{path}: rows of another length than the header")
    try:
        return {
            name: np.array([float(row[j]) if row[j] != "" else np.nan for row in body], dtype=np.float64)
            for j, name in enumerate(header)
        }
    except ValueError as exc:
        raise LaborError(f"{path}: not a number in the loss history ({exc})") from exc
