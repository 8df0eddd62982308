"""labor_cli.resume on its own: the save cadence, the stop request, the same-run check, and the
exit of an interrupted command (known answers on hand-made runs)."""

from __future__ import annotations

import os
import signal

import pytest

from labor_cli.errors import Interrupted, LaborError
from labor_cli.resume import InterruptExit, ResumableRun, SaveCadence, check_same_run, interrupts_exit


def saves(cadence: SaveCadence, start: int, step: int) -> list[int]:
    """The counts at which a run from ``start`` that does ``step`` units at a time saves."""
    due, done = [], start
    while done < cadence.total:
        before, done = done, min(done + step, cadence.total)
        if cadence.due(before, done):
            due.append(done)
    return due


def test_the_cadence_saves_at_each_multiple_and_never_at_the_end():
    assert saves(SaveCadence(every=10, total=35), start=0, step=1) == [10, 20, 30]
    assert saves(SaveCadence(every=10, total=30), start=0, step=1) == [10, 20]  # 30: the output, no save
    # In batches of 4: the first count at or past each multiple (12 passes 10, 20 is one, 32 passes 30).
    assert saves(SaveCadence(every=10, total=35), start=0, step=4) == [12, 20, 32]
    # Resumed from a stop at 13: the multiples still, not 13 + 10.
    assert saves(SaveCadence(every=10, total=35), start=13, step=1) == [20, 30]
    assert saves(SaveCadence(every=1, total=4), start=0, step=1) == [1, 2, 3]
    assert saves(SaveCadence(every=100, total=35), start=0, step=1) == []


def test_a_run_saves_at_n_and_2n_then_on_the_stop_request(tmp_path, capsys):
    """A loop used as the training loop uses it: SIGTERM during unit 25 stops it after 25, with
    the saves at 10 and 20 before and one line that says where the save is."""
    resume_path = tmp_path / "out.resume.h5"
    saved, done = [], 0
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted), ResumableRun(resume_path, every=10, total=100) as run:
        while done < 100:
            done += 1
            if done == 25:
                os.kill(os.getpid(), signal.SIGTERM)
            if run.save_due(done - 1, done):
                saved.append(done)
            if run.signal_name is not None:
                saved.append(f"stop at {done}")
                run.stopped(f"iteration {done}")
    assert saved == [10, 20, "stop at 25"]
    assert capsys.readouterr().err == (
        f"SIGTERM: stopped after iteration 25; saved {resume_path}. Run the same command with --resume to continue.\n"
    )
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler goes with the block


def test_a_second_signal_stops_at_once_unless_told_not_to(tmp_path):
    with pytest.raises(KeyboardInterrupt), ResumableRun(tmp_path / "r.h5", every=5, total=10) as run:
        os.kill(os.getpid(), signal.SIGINT)
        assert run.signal_name == "SIGINT"
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the second signal did not interrupt")
    with ResumableRun(tmp_path / "r.h5", every=5, total=10, escalate=False) as run:  # torchrun's processes
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert run.signal_name == "SIGINT"


def test_a_run_that_does_not_listen_leaves_signals_alone(tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    with ResumableRun(tmp_path / "r.h5", every=5, total=10, listen=False) as run:
        assert signal.getsignal(signal.SIGINT) is previous
        assert run.signal_name is None


def test_another_process_s_stop_is_named_so_and_a_quiet_one_says_nothing(tmp_path, capsys):
    run = ResumableRun(tmp_path / "r.h5", every=5, total=10)
    with pytest.raises(Interrupted):
        run.stopped("iteration 4")
    assert capsys.readouterr().err.startswith("another process was signalled: stopped after iteration 4; saved ")
    with pytest.raises(Interrupted):
        run.stopped("iteration 4", announce=False)
    assert capsys.readouterr().err == ""


def exit_of(raised: BaseException, main_process: bool = True) -> int:
    with pytest.raises(SystemExit) as exited, interrupts_exit(main_process):
        raise raised
    return exited.value.code


@pytest.mark.parametrize(
    "raised, main_process, line",
    [
        (KeyboardInterrupt(), True, "labor: interrupted\n"),
        (SystemExit(130), True, "labor: interrupted\n"),  # typer's, for a Ctrl-C while it parses
        (Interrupted(), True, ""),  # the stage said what it saved
        (KeyboardInterrupt(), False, ""),  # torchrun's other processes
    ],
)
def test_an_interrupt_exits_130_with_at_most_one_line(capsys, raised, main_process, line):
    assert exit_of(raised, main_process) == 130
    assert capsys.readouterr().err == line


def test_nested_interrupt_exits_report_once_and_other_exits_pass(capsys):
    with pytest.raises(InterruptExit), interrupts_exit(), interrupts_exit():
        raise KeyboardInterrupt
    assert capsys.readouterr().err == "labor: interrupted\n"
    assert exit_of(SystemExit(2)) == 2
    assert capsys.readouterr().err == ""


def test_the_same_run_check_refuses_a_changed_option_and_accepts_one_that_may_differ(tmp_path):
    path = tmp_path / "w.resume.h5"
    saved = {"device": "cuda", "seed": 0, "train": {"lr": 0.002, "iterations": 10}, "size": [4, 6]}  # as read from JSON
    check_same_run(path, saved, {**saved, "device": "cpu"}, may_differ=("device",))
    check_same_run(path, saved, {**saved, "size": (4, 6)})  # a tuple now equals its JSON list there
    with pytest.raises(
        LaborError, match=r"w\.resume\.h5: was saved by a different run \(device: cuda there, cpu now\)"
    ):
        check_same_run(path, saved, {**saved, "device": "cpu"})
    with pytest.raises(LaborError, match=r"\(train\.lr: 0\.002 there, 0\.01 now\)"):
        check_same_run(path, saved, {**saved, "train": {"lr": 0.01, "iterations": 10}}, may_differ=("device",))
