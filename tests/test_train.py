import numpy as np
import pytest
import torch
from helpers import tiny_train_config, warmup_options

from labor_cli import artifacts
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.runtime import resolve_device, resolve_precision
from labor_cli.stages.train import resume_path_for, run_training_stage


def _weights(path):
    networks = artifacts.load_checkpoint(path).networks
    return {
        f"{name}.{k}": v
        for name in ("segmenter", "selector", "discriminator")
        for k, v in getattr(networks, name).state_dict().items()
    }


def _warmup(toy_source, toy_target, output, **kwargs):
    return run_training_stage(warmup_options(toy_source, toy_target, output, **kwargs))


@pytest.mark.slow
def test_warmup_changes_the_weights_and_lowers_the_source_loss(tmp_path, toy_source, toy_target):
    config = tiny_train_config(iterations=30, lr=5e-3, log_every=5, save_every=100)
    result = _warmup(toy_source, toy_target, tmp_path / "w.h5", config=config)
    checkpoint = artifacts.load_checkpoint(tmp_path / "w.h5")
    torch.manual_seed(0)
    from labor_cli.models import build_networks

    fresh = build_networks("small", 19)
    changed = [
        not torch.equal(v, fresh.segmenter.state_dict()[k])
        for k, v in checkpoint.networks.segmenter.state_dict().items()
    ]
    assert all(changed)
    history = checkpoint.state.history["seg_src"]
    assert len(history) == 30
    assert history[-5:].mean() < 0.8 * history[:5].mean()
    assert checkpoint.state.history["adv"].min() > 0 and checkpoint.state.history["dis"].min() > 0
    assert result.iterations == 30 and checkpoint.state.iteration == 30
    assert not resume_path_for(tmp_path / "w.h5").exists()  # the run's periodic save is cleaned up


@pytest.mark.slow
def test_same_command_twice_gives_the_same_weights(tmp_path, toy_source, toy_target):
    _warmup(toy_source, toy_target, tmp_path / "a.h5")
    _warmup(toy_source, toy_target, tmp_path / "b.h5")
    a, b = _weights(tmp_path / "a.h5"), _weights(tmp_path / "b.h5")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_device_and_precision_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(LaborUsageError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(LaborError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(LaborUsageError):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.slow
def test_bf16_autocast_runs_on_the_cpu(tmp_path, toy_source, toy_target):
    run_training_stage(
        warmup_options(toy_source, toy_target, tmp_path / "w.h5", tiny_train_config(iterations=2), precision="bf16")
    )
    assert artifacts.load_checkpoint(tmp_path / "w.h5").state.iteration == 2


def test_bad_inputs_fail_clearly_and_leave_nothing(tmp_path, toy_source, toy_target, toy_pair):
    output = tmp_path / "out" / "w.h5"
    with pytest.raises(LaborError, match="nowhere"):
        _warmup(f"gta5:{tmp_path / 'nowhere'}", toy_target, output)
    with pytest.raises(LaborError, match="target's labels have no"):
        # a SYNTHIA-labeled target cannot label terrain, truck, train of the 19-class source
        synthia = tmp_path / "synthia"
        (synthia / "RGB").mkdir(parents=True)
        (synthia / "GT" / "LABELS").mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (64, 64)).save(synthia / "RGB" / "0000000.png")
        Image.fromarray(np.full((64, 64), 3, dtype=np.uint16)).save(synthia / "GT" / "LABELS" / "0000000.png")
        _warmup(toy_source, f"synthia:{synthia}", output)
    with pytest.raises(LaborUsageError):
        _warmup(toy_source, toy_target, output, config=tiny_train_config(iterations=0))
    import labor_cli.artifacts.provenance as provenance

    with pytest.MonkeyPatch.context() as patch:  # CI runs as root, who may write anywhere
        patch.setattr(provenance.os, "access", lambda path, mode: False)
        with pytest.raises(LaborError, match="permission denied"):
            _warmup(toy_source, toy_target, output)
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_hflip_flips_images_and_labels_together_as_seed_and_iteration_decide():
    from labor_cli.distributed import Rank
    from labor_cli.training.data import flip_source

    images = torch.arange(4 * 3 * 2 * 5, dtype=torch.float32).view(4, 3, 2, 5)
    labels = torch.arange(4 * 2 * 5).view(4, 2, 5)
    out = flip_source({"image": images, "label": labels}, seed=0, iteration=7)
    flipped = [not torch.equal(out["image"][i], images[i]) for i in range(4)]
    for i in range(4):
        expected = images[i].flip(-1) if flipped[i] else images[i]
        assert torch.equal(out["image"][i], expected)
        assert torch.equal(out["label"][i], labels[i].flip(-1) if flipped[i] else labels[i])
    again = flip_source({"image": images, "label": labels}, seed=0, iteration=7)
    assert torch.equal(again["image"], out["image"])  # a resumed run flips the same images
    draws = [
        [
            not torch.equal(flip_source({"image": images, "label": labels}, 0, it)["image"][i], images[i])
            for i in range(4)
        ]
        for it in range(20)
    ]
    assert 0 < sum(map(sum, draws)) < 80  # some flipped, some not
    # two processes with 2 images each take the slices of the one-process draw of 4
    halves = [
        flip_source({"image": images[2 * r : 2 * r + 2], "label": labels[2 * r : 2 * r + 2]}, 0, 7, Rank(r, 2, r))[
            "image"
        ]
        for r in range(2)
    ]
    assert torch.equal(torch.cat(halves), out["image"])


def test_mask_share_steering_has_known_answers():
    from labor_cli.training.loop import MaskShareSteering

    # The steering aims at FILL = 0.95 of the budget: 0.02 -> 0.019, read from the kept share.
    config = tiny_train_config(mask_share=0.02, log_every=2, lambda_dis=0.01)
    history = {"mask_share": [0.5, 0.5], "mask_kept": [0.00475, 0.00475], "lambda_dis": []}
    steering = MaskShareSteering(config, {"mask_kept": [], "lambda_dis": []}, 0, torch.device("cpu"))
    assert steering.weight == pytest.approx(0.01)
    steering.update(history, 2)  # sqrt(0.019 / 0.00475) = 2; the share where the heads differ is not read
    assert steering.weight == pytest.approx(0.02) and steering.tensor.item() == pytest.approx(0.02)
    steering.update(history, 3)  # not a multiple of log_every: unchanged
    assert steering.weight == pytest.approx(0.02)
    steering.update({"mask_kept": [0.0, 0.0]}, 4)  # no mask at all: at most sqrt(10) a step
    assert steering.weight == pytest.approx(0.02 * 10**0.5, rel=1e-6)
    steering.update({"mask_kept": [0.02, 0.02]}, 6)  # a full budget: down by sqrt(0.95)
    assert steering.weight == pytest.approx(0.02 * 10**0.5 * 0.95**0.5, rel=1e-6)
    steering.weight = 9.0
    steering.update({"mask_kept": [0.0, 0.0]}, 8)
    assert steering.weight == 10.0  # clamped
    fixed = MaskShareSteering(tiny_train_config(mask_share=0.0, lambda_dis=0.3), {}, 0, torch.device("cpu"))
    fixed.update({"mask_kept": [0.5, 0.5]}, 2)
    assert fixed.weight == pytest.approx(0.3)
    # A resumed run starts from the weight last used, steered again if it stopped at a log point.
    resumed = MaskShareSteering(
        config, {"mask_kept": [0.00475, 0.00475], "lambda_dis": [0.04, 0.04]}, 2, torch.device("cpu")
    )
    assert resumed.weight == pytest.approx(0.08)


@pytest.mark.slow
def test_warmup_steers_lambda_dis_and_b_learns_pseudo_labels_from_pseudo_from(tmp_path, toy_source, toy_target):
    config = tiny_train_config(iterations=8, pseudo_from=5, mask_share=0.3, log_every=2, save_every=100)
    _warmup(toy_source, toy_target, tmp_path / "w.h5", config=config)
    history = artifacts.load_checkpoint(tmp_path / "w.h5").state.history
    assert (history["sel_pseudo"][:5] == 0).all() and (history["sel_pseudo"][5:] > 0).all()
    weights = history["lambda_dis"]
    assert weights[0] == weights[1] == np.float32(0.01)  # steered at iterations 2, 4, 6 only
    assert weights[2] == weights[3] != weights[1] and weights[4] == weights[5] != weights[3]
    shares, kept = history["mask_share"], history["mask_kept"]
    assert ((shares >= 0) & (shares <= 1)).all()
    assert ((kept <= shares + 1e-7) & (kept <= np.float32(0.3) + 1e-7)).all()  # each image capped at 30%
    wanted = 0.95 * 0.3
    expected = np.float32(0.01 * (wanted / max(float(np.mean(kept[:2])), wanted / 10)) ** 0.5)
    assert weights[2] == pytest.approx(expected, rel=1e-6)
    fixed = tiny_train_config(iterations=4, mask_share=0.0, lambda_dis=0.05, save_every=100)
    _warmup(toy_source, toy_target, tmp_path / "f.h5", config=fixed)
    history = artifacts.load_checkpoint(tmp_path / "f.h5").state.history
    assert (history["lambda_dis"] == np.float32(0.05)).all()
    assert (history["sel_pseudo"][:2] == 0).all() and (history["sel_pseudo"][2:] > 0).all()  # default: from half


@pytest.mark.slow
def test_resume_at_a_log_point_steers_as_the_uninterrupted_run(tmp_path, toy_source, toy_target, monkeypatch):
    config = tiny_train_config(save_every=4, log_every=2, mask_share=0.3)
    _warmup(toy_source, toy_target, tmp_path / "straight.h5", config=config)
    import labor_cli.training.loop as training

    real_step, calls = training.training_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # after the save at iteration 4 (a log point, where the weight was steered)
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "training_step", interrupted_step)
    output = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        _warmup(toy_source, toy_target, output, config=config)
    monkeypatch.setattr(training, "training_step", real_step)
    _warmup(toy_source, toy_target, output, config=config, resume=True)
    a = artifacts.load_checkpoint(tmp_path / "straight.h5").state.history
    b = artifacts.load_checkpoint(output).state.history
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(set(a["lambda_dis"].tolist())) == 3  # steered at 2 and 4 (6 is the end)
    straight, resumed = _weights(tmp_path / "straight.h5"), _weights(output)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_the_training_summary_lists_the_losses_apart_from_the_mask(capsys):
    """The losses line holds the non-zero losses only; B's mask shares and weight get their own line."""
    from pathlib import Path

    from labor_cli.stages.train import StageResult, print_training

    final = {"seg_src": 0.5, "seg_tgt": 0.0, "dis": 0.25, "mask_share": 0.031, "mask_kept": 0.02, "lambda_dis": 0.4}
    print_training(StageResult(Path("w.h5"), 10, 3.0, final, "cityscapes19", 0.022))
    losses, mask = " ".join(capsys.readouterr().out.split()).split("B's mask")
    assert "last losses: seg_src 0.500 dis 0.250 -> w.h5" in losses and "mask" not in losses
    assert "heads differ on 3.10%" in mask and "2.00% kept" in mask and "lambda_dis 0.4" in mask
