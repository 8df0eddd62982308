"""Crashes, races and resource faults (issue #17): kill -9 at random moments, two runs on one
output, a full disk, a GPU out of memory, --resume with other options, a bare Ctrl-C.

The full crash test is examples/crash_test.py (warmup, extract and adapt, several runs); here a
reduced form of it runs extract. Everything else runs labor in this process (``main(argv)``)."""

from __future__ import annotations

import errno
import importlib.util
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import torch

from labor_cli import artifacts
from labor_cli.cli import main
from labor_cli.options import ExtractOptions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RUN = ["--device", "cpu", "--workers", "0", "-q"]


def crash_test():
    if "crash_test" not in sys.modules:
        spec = importlib.util.spec_from_file_location("crash_test", EXAMPLES / "crash_test.py")
        sys.modules["crash_test"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(sys.modules["crash_test"])
    return sys.modules["crash_test"]


def run_labor(argv, capsys):
    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def extract_argv(checkpoint, target, output, *extra):
    return ["extract", "-m", checkpoint, "--target", target, "-o", output, "--batch-size", "1", *RUN, *extra]


@pytest.fixture(scope="module")
def whole_masks(tmp_path_factory, warm_checkpoint, toy_target) -> Path:
    """An uninterrupted extraction (this process, the settings of examples/crash_test.py's runs)."""
    from labor_cli.stages.extract import run_extract

    output = tmp_path_factory.mktemp("whole") / "masks.h5"
    run_extract(
        ExtractOptions(model=warm_checkpoint, target=toy_target, output=output, device="cpu", quiet=True, workers=0)
    )
    return output


# --- kill -9 ------------------------------------------------------------------------------------


def test_extract_killed_at_random_moments_resumes_to_the_same_artifact(
    tmp_path, warm_checkpoint, toy_target, whole_masks
):
    """The reduced crash test: `labor extract` killed -9 at seeded random moments, resumed each
    time; never a partial file at the output, and the end result equals an uninterrupted run's."""
    crash = crash_test()
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
    crash = crash_test()
    changed = tmp_path / "changed.h5"
    shutil.copyfile(whole_masks, changed)
    with h5py.File(changed, "a") as f:
        f["candidates/similarity"][0] += 1
    assert crash.differences(changed, whole_masks) == ["dataset candidates/similarity"]


def test_an_extraction_that_dies_keeps_its_periodic_save(
    tmp_path, capsys, monkeypatch, warm_checkpoint, toy_target, whole_masks
):
    """The resume file is saved every --save-every images, so a run that dies (here a full disk
    on the third image) loses only the images since; --resume then finishes it, identical."""
    import labor_cli.artifacts.masks as masks

    real_add, calls = masks.MasksWriter.add, []

    def add_until_the_disk_is_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(masks.MasksWriter, "add", add_until_the_disk_is_full)
    output = tmp_path / "masks.h5"
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, output, "--save-every", "1"), capsys)
    line = one_line(err)
    assert code == 1 and "masks.h5: disk full while writing" in line and "masks.resume.h5, is kept" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.resume.h5"]
    with h5py.File(tmp_path / "masks.resume.h5") as f:
        assert '"written": 2' in f.attrs["resume_state"]
    monkeypatch.setattr(masks.MasksWriter, "add", real_add)
    # a resume file an older labor saved (no runner-up map) is refused, not completed without it
    older = tmp_path / "older"
    older.mkdir()
    shutil.copyfile(tmp_path / "masks.resume.h5", older / "masks.resume.h5")
    with h5py.File(older / "masks.resume.h5", "a") as f:
        del f["runner_up"]
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, older / "masks.h5", "--resume"), capsys)
    assert code == 1 and "masks.resume.h5: was saved by an older labor (no runner-up map)" in one_line(err)
    shutil.rmtree(older)
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, output, "--resume"), capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]
    assert not crash_test().differences(output, whole_masks)


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
    argv = [
        "warmup",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "-o",
        output,
        "--arch",
        "small",
        "--iters",
        "3",
        "--source-batch",
        "1",
        "--target-batch",
        "1",
        "--save-every",
        "1",
        *RUN,
    ]
    code, err = run_labor(argv, capsys)
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
    import labor_cli.stages.extract as extract
    import labor_cli.training.loop as training

    def allocate(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.75 GiB total)")

    if command == "extract":
        monkeypatch.setattr(extract, "extract_image", allocate)
        argv = extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5")
        lower = "--batch-size"
    else:
        monkeypatch.setattr(training, "training_step", allocate)
        argv = [
            "warmup",
            "--source",
            toy_source,
            "--target",
            toy_target,
            "-o",
            tmp_path / "o.h5",
            "--arch",
            "small",
            "--iters",
            "2",
            "--source-batch",
            "1",
            "--target-batch",
            "1",
            *RUN,
        ]
        lower = "--source-batch/--target-batch"
    code, err = run_labor(argv, capsys)
    line = one_line(err)
    assert code == 1 and line.startswith("labor: error: out of GPU memory (CUDA out of memory")
    assert f"try a smaller {lower} or --precision bf16" in line
    assert list(tmp_path.iterdir()) == []


# --- --resume with other options, Ctrl-C ----------------------------------------------------------


def test_resume_with_options_that_change_the_run_is_refused(tmp_path, capsys, warm_checkpoint, toy_source, toy_target):
    output = tmp_path / "w.h5"
    shutil.copyfile(warm_checkpoint, tmp_path / "w.resume.h5")  # conftest's warmup: --lr 2e-3
    argv = [
        "warmup",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "-o",
        output,
        "--arch",
        "small",
        "--iters",
        "6",
        "--lr",
        "0.01",
        "--source-batch",
        "2",
        "--target-batch",
        "2",
        "--save-every",
        "3",
        "--log-every",
        "2",
        "--resume",
        *RUN,
    ]
    code, err = run_labor(argv, capsys)
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
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5"), capsys)
    assert code == 130 and err == "labor: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_a_reported_stop_gets_no_second_line(tmp_path, capsys, monkeypatch, warm_checkpoint, toy_target):
    import labor_cli.stages.extract as extract
    from labor_cli.errors import Interrupted

    def stopped(*args, **kwargs):
        print("SIGINT: stopped; saved ...", file=sys.stderr)
        raise Interrupted

    monkeypatch.setattr(extract, "write_masks", stopped)
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, tmp_path / "o.h5"), capsys)
    assert code == 130 and err == "SIGINT: stopped; saved ...\n"


# --- two runs at once --------------------------------------------------------------------------------


def test_a_second_run_on_the_same_output_stops_with_one_line(tmp_path, capsys, warm_checkpoint, toy_target):
    """Held by a run in progress (here this process), OUTPUT.lock stops a second run at once:
    on the output, and on its resume file (the same lock)."""
    output = tmp_path / "masks.h5"
    with artifacts.output_lock(output):
        for extra in ([], ["--resume"], ["--force"]):
            code, err = run_labor(extract_argv(warm_checkpoint, toy_target, output, *extra), capsys)
            line = one_line(err)
            assert code == 1 and "masks.h5: another labor run (pid" in line and "is writing it" in line, line
        assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5.lock"]
    assert list(tmp_path.iterdir()) == []  # the lock file goes with the lock


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path, capsys, warm_checkpoint, toy_target, whole_masks):
    output = tmp_path / "masks.h5"
    (tmp_path / "masks.h5.lock").write_text("99999999\n")  # the file stays after kill -9; its flock does not
    (tmp_path / ".masks.h5.0badcafe.partial").write_bytes(b"half an artifact")  # and so does its temporary file
    code, err = run_labor(extract_argv(warm_checkpoint, toy_target, output), capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]


def test_two_processes_on_one_output_one_wins(tmp_path, warm_checkpoint, toy_target, whole_masks):
    """Two `labor extract` processes started together on one output: one writes it, whole; the
    other stops with one line (the lock, or, if the first has finished, 'already exists')."""
    output = tmp_path / "masks.h5"
    crash = crash_test()
    argv = [sys.executable, "-c", crash.LABOR, *map(str, extract_argv(warm_checkpoint, toy_target, output))]
    processes = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 1], results
    line = one_line(next(err for code, err in results if code == 1))
    assert "another labor run" in line or "already exists" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5"]
    assert not crash.differences(output, whole_masks)
