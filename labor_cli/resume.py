"""Resumable runs: stop requests, the save cadence, resume checks, and how an interrupt exits.

warmup, adapt and extract keep a stopped or interrupted run's state in OUTPUT.resume.h5
(``artifacts.resume_path_for``): every --save-every iterations or images, and when Ctrl-C or
SIGTERM stops them. ``--resume`` continues from it, once ``check_same_run`` has found it made
by the same options. Any other Ctrl-C ends the command with one line and exit 130
(``interrupts_exit``).

Only the standard library and labor_cli.errors load with this module: ``labor_cli.main`` uses
it before anything else has loaded; rich loads when a message is printed.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from labor_cli.errors import Interrupted, LaborError

INTERRUPTED_EXIT_CODE = 130  # a shell's code for a command ended by SIGINT


def _say(message: str) -> None:
    """One message on stderr, never folded (a script reads it whole)."""
    from labor_cli.console import stderr

    stderr.print(message, soft_wrap=True)


# --- interrupts --------------------------------------------------------------------------------


class InterruptExit(SystemExit):
    """Exit 130, the interrupt already reported. A SystemExit, so that typer passes it on
    unchanged (a KeyboardInterrupt it would turn into a bare exit 130)."""

    def __init__(self) -> None:
        super().__init__(INTERRUPTED_EXIT_CODE)


@contextlib.contextmanager
def interrupts_exit(main_process: bool = True) -> Iterator[None]:
    """A Ctrl-C or SIGTERM inside: exit 130, with the line ``labor: interrupted`` unless the
    stage already said what it saved (``Interrupted``) or this is a process other than torchrun's
    rank 0 (``main_process`` false); never a traceback. Nested, the innermost one reports.

    A SystemExit 130 that is no InterruptExit is typer's own, for a Ctrl-C while it parses the
    command line: it gets the line too."""
    try:
        yield
    except InterruptExit:
        raise
    except KeyboardInterrupt as exc:
        if main_process and not isinstance(exc, Interrupted):
            print("labor: interrupted", file=sys.stderr)
        raise InterruptExit from None
    except SystemExit as exc:
        if exc.code != INTERRUPTED_EXIT_CODE:
            raise
        if main_process:
            print("labor: interrupted", file=sys.stderr)
        raise InterruptExit from None


class StopRequest:
    """SIGINT/SIGTERM set a flag; the run stops between units of work, so what it saves is whole."""

    def __init__(self, escalate: bool = True):
        # escalate: a second signal stops at once. Not under torchrun, whose agent passes a Ctrl-C
        # on to processes that already got it from the terminal (and kills them 30 s later).
        self.signal_name: str | None = None
        self.escalate = escalate
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and self.escalate:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# --- saving and stopping -----------------------------------------------------------------------


@dataclass(frozen=True)
class SaveCadence:
    """When a run saves for --resume: each time its count of units done (iterations, images)
    reaches or passes a multiple of ``every``, except at the end (``total``), where the run
    writes its output instead."""

    every: int
    total: int

    def due(self, before: int, done: int) -> bool:
        """Whether going from ``before`` to ``done`` units calls for a save."""
        return done < self.total and done // self.every > before // self.every


class ResumableRun:
    """A run that keeps its state for --resume: the save cadence, and (``listen``) the stop
    request that SIGINT/SIGTERM make, for the ``with`` block. The run itself saves; this says
    when, and ends a stopped run with the one line that says what was saved."""

    def __init__(
        self, resume_path: Path, every: int, total: int, *, listen: bool = True, escalate: bool = True
    ) -> None:
        self.resume_path = resume_path
        self.cadence = SaveCadence(every, total)
        self.stop_request = StopRequest(escalate) if listen else None

    def __enter__(self) -> ResumableRun:
        if self.stop_request is not None:
            self.stop_request.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.stop_request is not None:
            self.stop_request.__exit__(*exc_info)

    @property
    def signal_name(self) -> str | None:
        """The signal that asked this process to stop, if one did."""
        return self.stop_request.signal_name if self.stop_request is not None else None

    def save_due(self, before: int, done: int) -> bool:
        return self.cadence.due(before, done)

    def stopped(self, after: str, announce: bool = True, error: type[Interrupted] = Interrupted) -> NoReturn:
        """End the run, its state saved: say (``announce``) what stopped it, after what
        (``after``: "iteration 3", "3 of 10 images") and how to continue; raise ``error``."""
        if announce:
            _say(
                f"{self.signal_name or 'another process was signalled'}: stopped after {after}; "
                f"saved {self.resume_path}. Run the same command with --resume to continue."
            )
        raise error


# --- resuming ----------------------------------------------------------------------------------


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
        _say(f"{resume_path}: nothing saved yet (a save comes every --save-every {unit}); starting from the beginning")
    return False


def check_same_run(
    path: Path, saved: dict, now: dict, may_differ: tuple[str, ...] = (), defaults: dict | None = None
) -> None:
    """A resume file's stored config against this run's: every key but ``may_differ`` must agree.
    A key the saved config lacks (an option added since) counts as its value in ``defaults``."""
    saved = dict(saved)
    for key, default in (defaults or {}).items():
        if key not in saved:
            saved[key] = default
        elif isinstance(default, dict) and isinstance(saved[key], dict):
            saved[key] = {**default, **saved[key]}
    now = json.loads(json.dumps(now))  # tuples become lists, as in the saved JSON
    for key in sorted(set(saved) | set(now)):
        there, here = saved.get(key), now.get(key)
        if key in may_differ or there == here:
            continue
        if isinstance(there, dict) and isinstance(here, dict):  # name the option inside the group: train.lr
            key, there, here = next(
                (f"{key}.{k}", there.get(k), here.get(k))
                for k in sorted(set(there) | set(here))
                if there.get(k) != here.get(k)
            )
        raise LaborError(
            f"{path}: was saved by a different run ({key}: {there} there, {here} now); "
            "use the original options, or remove it to start afresh"
        )
