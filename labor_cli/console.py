"""Terminal output: progress bars and messages go to stderr, result tables to stdout."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _console(to_stderr: bool) -> Console:
    """Piped to a file or a log, rich assumes 80 columns and folds table cells over several
    lines ("refere…"); 120 keeps each row on one line. A terminal's own width, or COLUMNS, wins."""
    console = Console(stderr=to_stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=to_stderr, width=120)
    return console


stdout = _console(to_stderr=False)
stderr = _console(to_stderr=True)


def progress_bar(disable: bool = False) -> Progress:
    """A bar with count, elapsed time and ETA; its task description carries the live figures."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr,
        disable=disable,
        transient=False,
    )
