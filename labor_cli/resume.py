"""Continuing a stopped run: whether there is a save to continue from.

warmup, adapt and extract keep a stopped or interrupted run's state in OUTPUT.resume.h5
(``artifacts.resume_path_for``): every --save-every iterations or images, and when Ctrl-C or
SIGTERM stops them. ``--resume`` continues from it.
"""

from __future__ import annotations

from pathlib import Path

from labor_cli.console import stderr


def continue_saved_run(resume_path: Path, resume: bool, unit: str, say: bool = True) -> bool:
    """Whether to continue from ``resume_path``: ``--resume`` was given and a save is there.

    ``--resume`` with nothing saved yet (a run killed before its first save) starts from the
    beginning and says so in one line (``say``: this process prints), so that a script that
    retries a killed command with ``--resume`` never fails for want of a save."""
    if not resume:
        return False
    if resume_path.exists():
        return True
    if say:
        stderr.print(
            f"{resume_path}: nothing saved yet (a save comes every --save-every {unit}); starting from the beginning",
            soft_wrap=True,
        )
    return False
