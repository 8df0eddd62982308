"""Interruptions and failures never lose work: SIGTERM/SIGINT, non-finite losses, crafted files."""

import os
import pickle
import signal

import h5py
import numpy as np
import pytest
import torch

from conftest import tiny_train_config
from labor_cli import artifacts
from labor_cli.errors import LaborError
from labor_cli.stages.train import resume_path_for, run_training_stage


def _warmup(toy_source, toy_target, output, **kwargs):
    return run_training_stage("warmup", toy_source, toy_target, output, tiny_train_config(), arch="small",
                              device="cpu", workers=0, quiet=True, **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_whole_checkpoint_and_resume_finishes_the_run(tmp_path, toy_source, toy_target, monkeypatch, capsys, signum):
    import labor_cli.training as training

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


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, toy_source, toy_target, monkeypatch):
    import labor_cli.training as training

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
