"""Interruptions and failures never lose work: SIGTERM/SIGINT, non-finite losses, crafted files."""

import os
import pickle
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import torch
from helpers import (
    crash_test_module,
    executable_argv,
    extract_command,
    invoke,
    one_line,
    run_executable,
    warmup_command,
    warmup_options,
)

from labor_cli import artifacts
from labor_cli.errors import LaborError
from labor_cli.stages.train import resume_path_for, run_training_stage


def _warmup(toy_source, toy_target, output, **kwargs):
    return run_training_stage(warmup_options(toy_source, toy_target, output, **kwargs))


def assert_same_weights(a, b) -> None:
    """Two checkpoints hold the same weights, bit for bit, in every network."""
    a, b = artifacts.load_checkpoint(a).networks, artifacts.load_checkpoint(b).networks
    for network in ("segmenter", "selector", "discriminator"):
        weights = getattr(a, network).state_dict()
        for name, tensor in getattr(b, network).state_dict().items():
            assert torch.equal(weights[name], tensor), (network, name)


def signal_after_step(signum):
    def interrupt(real_step, calls):
        """The signal arrives during iteration 4; the loop stops after it and saves it."""
        result = real_step()
        if len(calls) == 4:
            os.kill(os.getpid(), signum)
        return result

    return interrupt


def crash_in_step_5(real_step, calls):
    """A crash during iteration 5, where no handler saves: the periodic save at 3 is what is left."""
    if len(calls) == 5:
        raise KeyboardInterrupt
    return real_step()


@pytest.mark.slow
@pytest.mark.parametrize(
    "interrupt, saved_at",
    [(signal_after_step(signal.SIGTERM), 4), (signal_after_step(signal.SIGINT), 4), (crash_in_step_5, 3)],
    ids=["SIGTERM", "SIGINT", "crash"],
)
def test_an_interrupted_warmup_resumes_to_the_uninterrupted_run(
    tmp_path, toy_source, toy_target, warm_checkpoint, monkeypatch, capsys, interrupt, saved_at
):
    """A signal mid-warmup saves the iteration it stopped at (4, between the periodic saves at 3
    and 6); a crash leaves the periodic save before it. Either way no output is written, and
    --resume finishes the run as the uninterrupted one (warm_checkpoint, same options): weights,
    loss history, and the loss-history CSV with the interrupted run's rows after the save dropped."""
    import labor_cli.training.loop as training
    from labor_cli.history import LOSS_COLUMNS, read_loss_history_csv

    real_step, calls = training.training_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        return interrupt(lambda: real_step(*args, **kwargs), calls)

    output, csv = tmp_path / "w.h5", tmp_path / "w.losses.csv"
    with monkeypatch.context() as patch:
        patch.setattr(training, "training_step", interrupted_step)
        with pytest.raises(KeyboardInterrupt):
            _warmup(toy_source, toy_target, output)
    assert not output.exists()
    saved = artifacts.load_checkpoint(resume_path_for(output))
    assert saved.state.iteration == saved_at and len(saved.state.history["seg_src"]) == saved_at
    assert ("--resume" in capsys.readouterr().err) == (interrupt is not crash_in_step_5)
    # flushed at the log points 2 and 4 and at the save: rows 1-4 and the header
    assert csv.read_text().splitlines()[-1].startswith("4,") and len(csv.read_text().splitlines()) == 5
    _warmup(toy_source, toy_target, output, resume=True)
    assert artifacts.load_checkpoint(output).state.iteration == 6
    assert not resume_path_for(output).exists()
    assert_same_weights(output, warm_checkpoint)
    assert csv.read_text() == warm_checkpoint.with_name(warm_checkpoint.stem + ".losses.csv").read_text()
    columns = read_loss_history_csv(csv)
    assert columns["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert np.allclose(columns["lr"], [2e-3 * (1 - i / 6) ** 0.9 for i in range(6)], rtol=1e-12)
    whole = artifacts.load_checkpoint(warm_checkpoint).state.history
    resumed = artifacts.load_checkpoint(output).state.history
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)
    # the CSV holds the losses; the checkpoint's history also keeps mask_share and lambda_dis
    assert all(np.array_equal(columns[k].astype(np.float32), whole[k]) for k in LOSS_COLUMNS)


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, toy_source, toy_target, monkeypatch
):
    import labor_cli.training.loop as training

    real_step, calls = training.training_step, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        losses = real_step(*args, **kwargs)
        if len(calls) >= 5:
            losses["seg_src"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(training, "training_step", poisoned)
    output = tmp_path / "w.h5"
    with pytest.raises(LaborError, match=r"loss seg_src became nan .*last good checkpoint is .*w.resume.h5"):
        _warmup(toy_source, toy_target, output)
    assert not output.exists()
    assert artifacts.load_checkpoint(resume_path_for(output)).state.iteration == 3  # the save before the NaN


def test_a_crafted_file_cannot_run_code_when_loaded(tmp_path, warm_checkpoint):
    """An attacker's pickle inside an artifact is never unpickled: loading reads numbers only."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = tmp_path / "crafted.h5"
    crafted.write_bytes(warm_checkpoint.read_bytes())
    with h5py.File(crafted, "a") as f:
        group = f["networks/segmenter"]
        first = group[sorted(k for k in group.keys())[0]]
        name = first.name
        del f[name]
        f.create_dataset(name, data=np.void(pickle.dumps(Exploit())))
    with pytest.raises(LaborError):
        artifacts.load_checkpoint(crafted)
    assert not marker.exists()


def test_init_weights_are_loaded_weights_only(tmp_path):
    """--init PATH uses torch.load(weights_only=True): a pickle that runs code is refused."""
    from labor_cli.models import build_backbone

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "weights.pth"
    torch.save({"conv1.weight": Exploit()}, path)
    with pytest.raises(LaborError, match="weights.pth"):
        build_backbone("deeplabv2-r50", str(path))
    assert not marker.exists()


@pytest.mark.parametrize("stage", [pytest.param("warmup", marks=pytest.mark.slow), "extract", "adapt"])
def test_resume_with_nothing_saved_starts_from_the_beginning(
    tmp_path, toy_source, toy_target, warm_checkpoint, whole_masks, stage
):
    """A run killed before its first save leaves no resume file. Through the executable, as a
    retry loop runs it: --resume then runs whole, says so in one line, leaves no resume file, and
    writes what a run without --resume writes (the session's warmup and extraction: same options
    and torch settings; extract with its default loader workers)."""
    output = tmp_path / "out.h5"
    if stage == "warmup":
        command = warmup_command(toy_source, toy_target, output)
    elif stage == "extract":
        command = extract_command(warm_checkpoint, toy_target, output, workers=None)
    else:
        invoke("select", "--masks", whole_masks, "--mode", "random", "--points", 5, "-o", tmp_path / "sel.h5")
        invoke("label", "--selection", tmp_path / "sel.h5", "--target", toy_target, "-o", tmp_path / "labels.h5")
        command = ["adapt", "-m", warm_checkpoint, "--labels", tmp_path / "labels.h5", "--source", toy_source]
        command += ["--target", toy_target, "--iterations", 2, "--source-batch", 1, "--target-batch", 1, "--quiet"]
        command += ["-o", output]
    line = one_line(run_executable(*command, "--resume", torch_settings=True).stderr)
    assert f"{tmp_path / 'out.resume.h5'}: nothing saved yet" in line and "starting from the beginning" in line, line
    assert not (tmp_path / "out.resume.h5").exists()
    if stage == "warmup":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "out.losses.csv"]
        assert artifacts.load_checkpoint(output).state.iteration == 6
        assert_same_weights(output, warm_checkpoint)
    elif stage == "extract":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]
        assert not crash_test_module().differences(output, whole_masks)
    else:
        assert artifacts.load_checkpoint(output).state.iteration == 2


@pytest.mark.slow
def test_kill_9_loses_at_most_the_work_since_the_last_save(tmp_path, toy_source, toy_target, warm_checkpoint):
    """kill -9 mid-warmup: the last periodic save survives whole, and --resume finishes the run
    with the same weights as an uninterrupted one (the session's warm_checkpoint, same options)."""
    output = tmp_path / "w.h5"
    command = warmup_command(toy_source, toy_target, output, save_every=1)
    process = subprocess.Popen(executable_argv(*command, torch_settings=True), stdout=subprocess.DEVNULL)
    resume = resume_path_for(output)
    deadline = time.monotonic() + 240
    while not resume.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()  # SIGKILL: no handler runs
    process.wait()
    if output.exists():
        pytest.skip("the run finished before it could be killed")
    saved = artifacts.load_checkpoint(resume).state
    assert 1 <= saved.iteration < 6
    run_executable(*command, "--resume", torch_settings=True)
    assert not resume.exists()
    resumed = artifacts.load_checkpoint(output).state
    assert resumed.iteration == 6 and len(resumed.history["seg_src"]) == 6
    np.testing.assert_array_equal(resumed.history["seg_src"][: saved.iteration], saved.history["seg_src"])
    assert_same_weights(output, warm_checkpoint)
