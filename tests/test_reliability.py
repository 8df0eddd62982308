"""Interruptions and failures never lose work: SIGTERM/SIGINT, non-finite losses, crafted files."""

import os
import pickle
import signal

import h5py
import numpy as np
import pytest
import torch
from conftest import warmup_options

from labor_cli import artifacts
from labor_cli.errors import LaborError
from labor_cli.options import ExtractOptions
from labor_cli.stages.train import resume_path_for, run_training_stage


def _warmup(toy_source, toy_target, output, **kwargs):
    return run_training_stage(warmup_options(toy_source, toy_target, output, **kwargs))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_whole_checkpoint_and_resume_finishes_the_run(
    tmp_path, toy_source, toy_target, monkeypatch, capsys, signum
):
    import labor_cli.training.loop as training

    real_step, calls = training.training_step, []

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        result = real_step(*args, **kwargs)
        if len(calls) == 4:
            os.kill(os.getpid(), signum)  # arrives mid-run; the loop stops after this iteration
        return result

    monkeypatch.setattr(training, "training_step", step_then_signal)
    output = tmp_path / "w.h5"
    with pytest.raises(KeyboardInterrupt):
        _warmup(toy_source, toy_target, output)
    assert not output.exists()
    saved = artifacts.load_checkpoint(resume_path_for(output))
    assert saved.state.iteration == 4 and len(saved.state.history["seg_src"]) == 4
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(training, "training_step", real_step)
    _warmup(toy_source, toy_target, output, resume=True)
    assert artifacts.load_checkpoint(output).state.iteration == 6
    assert not resume_path_for(output).exists()


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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_extract_cleanly_and_resume_equals_an_uninterrupted_run(
    tmp_path, toy_target, warm_checkpoint, monkeypatch, capsys, signum
):
    import labor_cli.stages.extract as extract

    def run(output, **kwargs):
        return extract.run_extract(
            ExtractOptions(
                model=warm_checkpoint, target=toy_target, output=output, device="cpu", quiet=True, **kwargs, workers=0
            )
        )

    run(tmp_path / "whole.h5")
    real, calls = extract.extract_image, []

    def image_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)  # the extraction stops after this image
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "extract_image", image_then_signal)
    output = tmp_path / "masks.h5"
    with pytest.raises(KeyboardInterrupt):
        run(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.resume.h5", "whole.h5"]  # no partial file, no output
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(extract, "extract_image", real)
    with pytest.raises(LaborError, match="different run"):
        run(output, resume=True, candidates_per_class=7)
    run(output, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.h5", "whole.h5"]
    with h5py.File(output) as resumed, h5py.File(tmp_path / "whole.h5") as whole:
        assert "resume_state" not in resumed.attrs
        assert resumed.attrs["summary"] == whole.attrs["summary"]
        names = []
        whole.visit(lambda name: names.append(name) if isinstance(whole[name], h5py.Dataset) else None)
        assert len(names) > 10
        for name in names:
            np.testing.assert_array_equal(resumed[name][()], whole[name][()], err_msg=name)


def test_resume_with_nothing_saved_starts_from_the_beginning_in_extract_and_adapt(
    tmp_path, toy_source, toy_target, warm_checkpoint
):
    """Through the executable, as a retry loop runs it: extract killed before its first save,
    then --resume; adapt likewise. Each runs whole, says so in one line, and writes what a run
    without --resume writes."""
    import subprocess
    import sys

    def labor(*args):
        done = subprocess.run([sys.executable, "-m", "labor_cli", *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stderr

    extract = ["extract", "-m", warm_checkpoint, "--target", toy_target, "--device", "cpu", "--quiet"]
    labor(*extract, "-o", tmp_path / "plain.h5")
    err = labor(*extract, "-o", tmp_path / "masks.h5", "--resume")
    assert f"{tmp_path / 'masks.resume.h5'}: nothing saved yet" in err and "starting from the beginning" in err
    assert len(err.strip().splitlines()) == 1, err
    with h5py.File(tmp_path / "masks.h5") as resumed, h5py.File(tmp_path / "plain.h5") as plain:
        assert resumed.attrs["summary"] == plain.attrs["summary"]
        np.testing.assert_array_equal(resumed["mask"][()], plain["mask"][()])
        np.testing.assert_array_equal(resumed["prediction"][()], plain["prediction"][()])
    assert not (tmp_path / "masks.resume.h5").exists()

    labor("select", "--masks", tmp_path / "plain.h5", "--mode", "random", "--points", 5, "-o", tmp_path / "sel.h5")
    labor("label", "--selection", tmp_path / "sel.h5", "--target", toy_target, "-o", tmp_path / "labels.h5")
    adapt = ["adapt", "-m", warm_checkpoint, "--labels", tmp_path / "labels.h5", "--source", toy_source]
    adapt += ["--target", toy_target, "--iterations", 2, "--source-batch", 1, "--target-batch", 1, "--quiet"]
    err = labor(*adapt, "-o", tmp_path / "adapted.h5", "--resume")
    assert f"{tmp_path / 'adapted.resume.h5'}: nothing saved yet" in err
    assert artifacts.load_checkpoint(tmp_path / "adapted.h5").state.iteration == 2


def test_kill_9_loses_at_most_the_work_since_the_last_save(tmp_path, toy_source, toy_target, warm_checkpoint):
    """kill -9 mid-warmup: the last periodic save survives whole, and --resume finishes the run
    with the same weights as an uninterrupted one (conftest's warm_checkpoint, same options)."""
    import subprocess
    import sys
    import time

    from labor_cli.stages.train import resume_path_for

    output = tmp_path / "w.h5"
    # the tests' torch settings (conftest.py), so that the weights compare bit for bit
    code = "import torch; torch.set_num_threads(2); torch.backends.mkldnn.enabled = False; from labor_cli.cli import main; main()"
    argv = [
        sys.executable,
        "-c",
        code,
        "warmup",
        "--source",
        toy_source,
        "--target",
        toy_target,
        "-o",
        str(output),
        "--arch",
        "small",
        "--iters",
        "6",
        "--lr",
        "2e-3",
        "--source-batch",
        "2",
        "--target-batch",
        "2",
        "--save-every",
        "1",
        "--log-every",
        "2",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    result = subprocess.run(argv + ["--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not resume.exists()
    resumed, whole = artifacts.load_checkpoint(output), artifacts.load_checkpoint(warm_checkpoint)
    assert resumed.state.iteration == 6 and len(resumed.state.history["seg_src"]) == 6
    np.testing.assert_array_equal(resumed.state.history["seg_src"][: saved.iteration], saved.history["seg_src"])
    for name, tensor in whole.networks.segmenter.state_dict().items():
        assert torch.equal(resumed.networks.segmenter.state_dict()[name], tensor), name
