"""Terminal output: progress bars and messages go to stderr, result tables to stdout."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stdout = Console()
stderr = Console(stderr=True)


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
