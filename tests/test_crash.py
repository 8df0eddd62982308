"""Crashes, races and resource faults: kill -9 at random moments, a full disk or a signal in the
middle of a run, two runs on one output, a GPU out of memory, --resume with other options, a bare
Ctrl-C. A run that dies must leave no partial output and lose at most the work since its last
save, and a second run must never spoil the first one's output.

The full crash test is examples/crash_test.py (warmup, extract and adapt, several runs); here a
reduced form of it runs extract. Everything else runs labor in this process (``main(argv)``)."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pytest
import torch
from helpers import crash_test_module, extract_command, one_line, run_main, warmup_command

from labor_cli import artifacts

RUN = dict(batch_size=1)  # examples/crash_test.py's extract runs


def extract_argv(checkpoint, target, output, *extra):
    return [*extract_command(checkpoint, target, output, **RUN), *extra]


# --- kill -9 ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_extract_killed_at_random_moments_resumes_to_the_same_artifact(
    tmp_path, warm_checkpoint, toy_target, whole_masks
):
    """The reduced crash test: `labor extract` killed -9 at seeded random moments, resumed each
    time; never a partial file at the output, and the end result equals an uninterrupted run's."""
    crash = crash_test_module()
    output = tmp_path / "masks.h5"
    argv = extract_argv(warm_checkpoint, toy_target, output, "--save-every", "1")
    started = time.monotonic()
    crash.labor(*extract_argv(warm_checkpoint, toy_target, tmp_path / "timed.h5"))
    span = time.monotonic() - started  # one uninterrupted run, start to end
    assert not crash.differences(tmp_path / "timed.h5", whole_masks)  # the executable computes what this process does
    report = crash.crash_run("extract", argv, output, whole_masks, kills=2, rng=random.Random("ci-0"), span=span)
    assert report.identical, report.problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5", "timed.h5"]


def test_crash_test_sees_a_difference(tmp_path, whole_masks):
    """The comparison the crash test relies on finds a single changed value."""
    crash = crash_test_module()
    changed = tmp_path / "changed.h5"
    shutil.copyfile(whole_masks, changed)
    with h5py.File(changed, "a") as f:
        f["candidates/similarity"][0] += 1
    assert crash.differences(changed, whole_masks) == ["dataset candidates/similarity"]


def disk_full_on_the_third_image(monkeypatch):
    """MasksWriter.add fails with a full disk on the third image."""
    import labor_cli.artifacts.masks as masks

    real_add, calls = masks.MasksWriter.add, []

    def add_until_the_disk_is_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(masks.MasksWriter, "add", add_until_the_disk_is_full)


def signal_on_the_second_image(signum):
    def interrupt(monkeypatch):
        """The signal arrives as the second image starts: the extraction stops after it."""
        import labor_cli.extraction.scores as scores

        real, calls = scores.extract_image, []

        def image_then_signal(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signum)
            return real(*args, **kwargs)

        monkeypatch.setattr(scores, "extract_image", image_then_signal)

    return interrupt


@pytest.mark.parametrize(
    "interrupt, code, needles",
    [
        (disk_full_on_the_third_image, 1, ["masks.h5: disk full while writing", "masks.resume.h5, is kept"]),
        (signal_on_the_second_image(signal.SIGTERM), 130, ["SIGTERM: stopped after 2 of", "--resume"]),
        (signal_on_the_second_image(signal.SIGINT), 130, ["SIGINT: stopped after 2 of", "--resume"]),
    ],
    ids=["disk-full", "SIGTERM", "SIGINT"],
)
def test_an_interrupted_extraction_resumes_to_the_same_artifact(
    tmp_path, capsys, monkeypatch, warm_checkpoint, toy_target, whole_masks, interrupt, code, needles
):
    """An extraction stopped by a full disk or a signal keeps what it wrote in its resume file
    (saved every --save-every images and at a signal), never a partial output; --resume refuses a
    resume file of other options or of an older labor, and finishes the run identical to an
    uninterrupted one."""
    output = tmp_path / "masks.h5"
    with monkeypatch.context() as patch:
        interrupt(patch)
        got, _, err = run_main(extract_argv(warm_checkpoint, toy_target, output, "--save-every", "1"), capsys)
    line = one_line(err)
    assert got == code and all(needle in line for needle in needles), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.resume.h5"]
    with h5py.File(tmp_path / "masks.resume.h5") as f:
        assert '"written": 2' in f.attrs["resume_state"]
    # other options than the run's are refused
    got, _, err = run_main(
        extract_argv(warm_checkpoint, toy_target, output, "--resume", "--candidates-per-class", 7), capsys
    )
    assert got == 1 and "masks.resume.h5: was saved by a different run" in one_line(err)
    # a resume file an older labor saved (no runner-up map) is refused, not completed without it
    older = tmp_path / "older"
    older.mkdir()
    shutil.copyfile(tmp_path / "masks.resume.h5", older / "masks.resume.h5")
    with h5py.File(older / "masks.resume.h5", "a") as f:
        del f["runner_up"]
    got, _, err = run_main(extract_argv(warm_checkpoint, toy_target, older / "masks.h5", "--resume"), capsys)
    assert got == 1 and "masks.resume.h5: was saved by an older labor (no runner-up map)" in one_line(err)
    shutil.rmtree(older)
    got, _, err = run_main(extract_argv(warm_checkpoint, toy_target, output, "--resume"), capsys)
    assert got == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]
    with h5py.File(output) as resumed:
        assert "resume_state" not in resumed.attrs
        datasets = []
        resumed.visit(lambda name: datasets.append(name) if isinstance(resumed[name], h5py.Dataset) else None)
        assert len(datasets) > 10
    assert not crash_test_module().differences(output, whole_masks)


def test_a_full_disk_during_a_checkpoint_save_keeps_the_last_one(tmp_path, capsys, monkeypatch, toy_source, toy_target):
    import labor_cli.artifacts.checkpoint as checkpoint

    real_write, calls = checkpoint.write_checkpoint, []

    def write_until_the_disk_is_full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(artifacts, "write_checkpoint", write_until_the_disk_is_full)
    output = tmp_path / "w.h5"
    argv = warmup_command(toy_source, toy_target, output, iterations=3, source_batch=1, target_batch=1, save_every=1)
    code, _, err = run_main(argv, capsys)
    line = one_line(err)
    assert code == 1 and "w.resume.h5: disk full while writing; nothing was written" in line, line
    # The loss-history CSV stays with the resume file it complements.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.losses.csv", "w.resume.h5"]
    assert artifacts.load_checkpoint(tmp_path / "w.resume.h5").state.iteration == 1  # the save before, whole


# --- GPU out of memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["extract", "warmup"])
def test_out_of_memory_names_what_to_lower(
    tmp_path, capsys, monkeypatch, warm_checkpoint, toy_source, toy_target, command
):
    """torch.OutOfMemoryError where the work allocates (injected: this runs on the CPU)."""
    import labor_cli.extraction.scores as scores
    import labor_cli.training.loop as training

    def allocate(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.75 GiB total)")

    if command == "extract":
        monkeypatch.setattr(scores, "extract_image", allocate)
        argv = extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5")
        lower = "--batch-size"
    else:
        monkeypatch.setattr(training, "training_step", allocate)
        argv = warmup_command(toy_source, toy_target, tmp_path / "o.h5", iterations=2, source_batch=1, target_batch=1)
        lower = "--source-batch/--target-batch"
    code, _, err = run_main(argv, capsys)
    line = one_line(err)
    assert code == 1 and line.startswith("labor: error: out of GPU memory (CUDA out of memory")
    assert f"try a smaller {lower} or --precision bf16" in line
    assert list(tmp_path.iterdir()) == []


# --- --resume with other options, Ctrl-C ----------------------------------------------------------


def test_resume_with_options_that_change_the_run_is_refused(tmp_path, capsys, warm_checkpoint, toy_source, toy_target):
    output = tmp_path / "w.h5"
    shutil.copyfile(warm_checkpoint, tmp_path / "w.resume.h5")  # the tests' warmup: --lr 2e-3
    argv = warmup_command(toy_source, toy_target, output, lr=0.01, resume=True)
    code, _, err = run_main(argv, capsys)
    line = one_line(err)
    assert code == 1 and "w.resume.h5: was saved by a different run (train.lr: 0.002 there, 0.01 now)" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.resume.h5"]


@pytest.mark.parametrize("where", ["parsing", "loading"])
def test_a_bare_ctrl_c_says_interrupted(tmp_path, capsys, monkeypatch, warm_checkpoint, toy_target, where):
    """A Ctrl-C before the stage installs its handler: typer alone exits 130 without a word."""
    import labor_cli.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "parsing":
        monkeypatch.setattr(cli, "options_from_command_line", interrupted)
    else:
        monkeypatch.setattr(artifacts, "load_checkpoint", interrupted)
    code, _, err = run_main(extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5"), capsys)
    assert code == 130 and err == "labor: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_a_reported_stop_gets_no_second_line(tmp_path, capsys, monkeypatch, warm_checkpoint, toy_target):
    import labor_cli.extraction.writer as writer
    from labor_cli.errors import Interrupted

    def stopped(*args, **kwargs):
        print("SIGINT: stopped; saved ...", file=sys.stderr)
        raise Interrupted

    monkeypatch.setattr(writer, "write_masks", stopped)
    code, _, err = run_main(extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5"), capsys)
    assert code == 130 and err == "SIGINT: stopped; saved ...\n"


# --- two runs at once --------------------------------------------------------------------------------


def test_a_second_run_on_the_same_output_stops_with_one_line(tmp_path, capsys, warm_checkpoint, toy_target):
    """Held by a run in progress (here this process), OUTPUT.lock stops a second run at once:
    on the output, and on its resume file (the same lock)."""
    output = tmp_path / "masks.h5"
    with artifacts.output_lock(output):
        for extra in ([], ["--resume"], ["--force"]):
            code, _, err = run_main(extract_argv(warm_checkpoint, toy_target, output, *extra), capsys)
            line = one_line(err)
            assert code == 1 and "masks.h5: another labor run (pid" in line and "is writing it" in line, line
        assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5.lock"]
    assert list(tmp_path.iterdir()) == []  # the lock file goes with the lock


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path, capsys, warm_checkpoint, toy_target, whole_masks):
    output = tmp_path / "masks.h5"
    (tmp_path / "masks.h5.lock").write_text("99999999\n")  # the file stays after kill -9; its flock does not
    (tmp_path / ".masks.h5.0badcafe.partial").write_bytes(b"half an artifact")  # and so does its temporary file
    code, _, err = run_main(extract_argv(warm_checkpoint, toy_target, output), capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]


def test_two_processes_on_one_output_one_wins(tmp_path, warm_checkpoint, toy_target, whole_masks):
    """Two `labor extract` processes started together on one output: one writes it, whole; the
    other stops with one line (the lock, or, if the first has finished, 'already exists')."""
    output = tmp_path / "masks.h5"
    crash = crash_test_module()
    argv = [sys.executable, "-c", crash.LABOR, *map(str, extract_argv(warm_checkpoint, toy_target, output))]
    processes = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 1], results
    line = one_line(next(err for code, err in results if code == 1))
    assert "another labor run" in line or "already exists" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]
    assert not crash.differences(output, whole_masks)
