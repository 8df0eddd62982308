"""Evaluation protocols (labor_cli/protocols.py): `labor predict` and `labor evaluate` under each
`--protocol` give, pixel for pixel, what that code's evaluation script gives.

The scripts are re-implemented below, plainly and from their descriptions (docs/method.md,
"Evaluation protocols"): AdaptSegNet's evaluate_cityscapes.py with its cityscapesDataSet, ADVENT's
eval_UDA.py with its BaseDataset, RIPU's test.py with its test transform. They run on hand-made
Cityscapes-layout images, with a tiny network (the session's small-arch checkpoint); the input
sizes are scaled down from the scripts' (2048x1024 -> 1024x512 is a factor of 1/2, -> 1280x640 of
5/8) so that the network runs in milliseconds, and the logits are upsampled to each label's size,
as the scripts do. The network takes labor's input (RGB / 255, ImageNet mean and std), as a
converted checkpoint does: it maps that to Caffe's BGR minus mean inside (tests/test_convert.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import invoke, run_executable
from PIL import Image
from torch import nn

from labor_cli.cli import main
from labor_cli.protocols import PROTOCOLS

# RIPU's core/configs/defaults.py (INPUT.PIXEL_MEAN, PIXEL_STD): ImageNet's, as labor normalises.
PIXEL_MEAN = [0.485, 0.456, 0.406]
PIXEL_STD = [0.229, 0.224, 0.225]
# The Cityscapes label ids the hand-made labels use, and their train ids (0 is "unlabeled": ignored).
TRAIN_ID = {7: 0, 11: 2, 21: 8, 23: 10, 26: 13}
IMAGES = ("handcity_000000_000001", "handcity_000000_000002")
SIZES = {"labor": (48, 24), "adaptsegnet": (32, 16), "advent": (32, 16), "ripu": (40, 20)}  # inputs of 64x32 images


# --- the hand-made dataset -----------------------------------------------------------------


def street(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 64x32 street: sky, buildings, a hedge, a road and a car, with edges that fall between
    pixels of the smaller input grids; its label in Cityscapes label ids."""
    rng = np.random.default_rng(seed)
    image = np.zeros((32, 64, 3), np.float64)
    label = np.zeros((32, 64), np.uint8)
    rows = np.arange(32)[:, None, None]
    image[:] = [70, 130, 180] + rows * [2, 1, 0]  # sky, lighter towards the horizon
    label[:] = 23
    horizon = 13 + seed
    image[7:horizon, 5 + 3 * seed : 29] = [90, 80, 75]  # a building
    label[7:horizon, 5 + 3 * seed : 29] = 11
    image[9:horizon, 37:57] = [50, 120, 40]  # a hedge
    label[9:horizon, 37:57] = 21
    image[horizon:] = [128, 64, 128] - (rows[horizon:] - horizon) * [2, 1, 2]  # the road
    label[horizon:] = 7
    car = slice(horizon + 3, horizon + 10), slice(19 + 5 * seed, 34 + 5 * seed)
    image[car] = [20, 30, 140]
    label[car] = 26
    label[30:, 50:] = 0  # unlabeled: ignored
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    root = tmp_path_factory.mktemp("handmade") / "cityscapes"
    for seed, name in enumerate(IMAGES):
        image, label = street(seed)
        (root / "leftImg8bit" / "val" / "handcity").mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / "val" / "handcity").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "leftImg8bit" / "val" / "handcity" / f"{name}_leftImg8bit.png")
        Image.fromarray(label).save(root / "gtFine" / "val" / "handcity" / f"{name}_gtFine_labelIds.png")
    (root / "labor-dataset.json").write_text(json.dumps({"train_size": list(SIZES["labor"])}))
    return root


def image_file(root, name):
    return root / "leftImg8bit" / "val" / "handcity" / f"{name}_leftImg8bit.png"


def train_ids(label_ids: np.ndarray) -> np.ndarray:
    out = np.full(label_ids.shape, 255, np.int64)
    for label_id, train_id in TRAIN_ID.items():
        out[label_ids == label_id] = train_id
    return out


def ground_truth(root, name) -> np.ndarray:
    return train_ids(np.array(Image.open(root / "gtFine" / "val" / "handcity" / f"{name}_gtFine_labelIds.png")))


@pytest.fixture(scope="module")
def network(warm_checkpoint):
    from labor_cli.artifacts import load_checkpoint

    return load_checkpoint(warm_checkpoint).networks.segmenter.eval()


# --- the scripts, re-implemented ---------------------------------------------------------------


def network_input(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 float32 RGB 0..255 -> 1 x 3 x H x W, normalised as the network takes it."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    return x.div(255.0).sub(torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)).div(torch.tensor(PIXEL_STD).view(1, 3, 1, 1))


@torch.no_grad()
def adaptsegnet_script(model, file, label_size, crop_size, resample=Image.BICUBIC, align_corners=True):
    """evaluate_cityscapes.py: cityscapesDataSet resizes the RGB image to crop_size (1024, 512) with
    Image.BICUBIC and hands float32 on; the multi-level model's output2 is upsampled by
    nn.Upsample(size=(1024, 2048), mode='bilinear', align_corners=True), the label's size; then
    np.argmax over the classes."""
    image = Image.open(file).convert("RGB")
    image = image.resize(crop_size, resample)
    image = np.asarray(image, np.float32)
    output2 = model(network_input(image))
    interp = nn.Upsample(size=label_size, mode="bilinear", align_corners=align_corners)
    output = interp(output2).cpu().data[0].numpy()
    output = output.transpose(1, 2, 0)
    return np.asarray(np.argmax(output, axis=2), dtype=np.uint8)


@torch.no_grad()
def advent_script(model, file, label_size, input_size, models=None, model_weights=(1.0,)):
    """eval_UDA.py (eval_single, fixed_test_size): BaseDataset._load_img resizes the RGB image to
    TEST.INPUT_SIZE_TARGET (1024, 512) with Image.BICUBIC; for each model, pred_main = model(image)[1]
    is upsampled by nn.Upsample(size=OUTPUT_SIZE_TARGET, the label's (1024, 2048), align_corners=True)
    and weighted by its MODEL_WEIGHT, the weighted outputs summed (advent+minent_pretrained.yml:
    two models, 0.5 each); np.argmax."""
    image = np.asarray(Image.open(file).convert("RGB").resize(input_size, Image.BICUBIC), np.float32)
    interp = nn.Upsample(size=label_size, mode="bilinear", align_corners=True)
    output = None
    for one, model_weight in zip(models or [model], model_weights):
        pred_main = one(network_input(image))
        output_ = interp(pred_main).cpu().data[0].numpy()
        if output is None:
            output = model_weight * output_
        else:
            output += model_weight * output_
    return np.argmax(output.transpose(1, 2, 0), axis=2)


@torch.no_grad()
def ripu_script(model, file, label_size, input_size, flip=True):
    """test.py: the test transform is Resize((h, w), resize_label=False) (torchvision's resize of the
    Pillow image with Image.BICUBIC), ToTensor, Normalize(PIXEL_MEAN, PIXEL_STD); inference(...,
    flip=True) runs the image and its mirror in one batch, upsamples with F.interpolate(size=the
    label's, bilinear, align_corners=True), takes the softmax, averages the two (the mirror's
    flipped back) and pred.max(1)[1]."""
    from torchvision.transforms import functional as TF

    image = Image.open(file).convert("RGB").resize(input_size, Image.BICUBIC)
    image = TF.normalize(TF.to_tensor(image), mean=PIXEL_MEAN, std=PIXEL_STD)[None]
    if flip:
        image = torch.cat([image, torch.flip(image, [3])], 0)
    output = model(image)
    output = F.interpolate(output, size=label_size, mode="bilinear", align_corners=True)
    output = F.softmax(output, dim=1)
    output = (output[0] + output[1].flip(2)) / 2 if flip else output[0]
    return output.unsqueeze(dim=0).max(1)[1][0].numpy()


@torch.no_grad()
def labor_as_it_was(model, file, label_size, input_size):
    """labor's own evaluation: Pillow bilinear to the dataset's training size, logits upsampled
    with align_corners=False."""
    image = np.asarray(Image.open(file).convert("RGB").resize(input_size, Image.BILINEAR), np.float32)
    logits = F.interpolate(model(network_input(image)), size=label_size, mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].numpy()


SCRIPTS = {"labor": labor_as_it_was, "adaptsegnet": adaptsegnet_script, "advent": advent_script, "ripu": ripu_script}


def fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """compute_iou.py's (and ADVENT's utils/func.py's) confusion: rows ground truth, columns prediction."""
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def predicted_train_ids(folder, name) -> np.ndarray:
    from labor_cli.data.labels import CITYSCAPES_LABELS

    label_ids = np.array(Image.open(folder / f"{name}_pred_labelIds.png"))
    out = np.full(label_ids.shape, 255, np.int64)
    for label in CITYSCAPES_LABELS:
        if label.train_id != 255:
            out[label_ids == label.label_id] = label.train_id
    return out


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_each_protocol_predicts_and_scores_as_its_script(tmp_path, handmade, warm_checkpoint, network, protocol):
    size = SIZES[protocol]
    given_size = [] if protocol == "labor" else ["--input-size", f"{size[0]}x{size[1]}"]
    common = ["-m", warm_checkpoint, "--target", f"cityscapes:{handmade}", "--device", "cpu", "--workers", 0, "-q"]
    invoke("predict", *common, "-o", tmp_path / "pred", "--protocol", protocol, *given_size)
    invoke(
        "evaluate",
        *common,
        "-o",
        tmp_path / "eval.h5",
        "--protocol",
        protocol,
        *given_size,
        "--predictions",
        tmp_path / "evaluated",
    )

    script = SCRIPTS[protocol]
    confusion = np.zeros((19, 19), np.int64)
    for name in IMAGES:
        truth = ground_truth(handmade, name)
        expected = script(network, image_file(handmade, name), truth.shape, size)
        assert np.array_equal(predicted_train_ids(tmp_path / "pred", name), expected), name
        assert np.array_equal(predicted_train_ids(tmp_path / "evaluated", name), expected), name
        confusion += fast_hist(truth.flatten(), expected.flatten().astype(np.int64), 19)
    from labor_cli.artifacts import read_any

    with read_any(tmp_path / "eval.h5") as f:
        assert np.array_equal(f["confusion"][()], confusion)
        config = json.loads(f.attrs["config"])
    assert config["protocol"] == protocol and config["input_size"] == list(size)
    assert config["protocol_settings"] == PROTOCOLS[protocol].settings()
    assert config["precision"] == "fp32"
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert record["protocol"] == protocol and record["protocol_settings"] == PROTOCOLS[protocol].settings()


def test_the_settings_matter_on_these_images(handmade, network):
    """Each setting a protocol fixes changes some pixels of the hand-made images, so the comparison
    above would fail for a protocol that got one wrong: the filter, align_corners, the flip."""
    differs = {"bilinear input": 0, "align_corners=False": 0, "no flip": 0, "adaptsegnet against labor": 0}
    for name in IMAGES:
        file, shape = image_file(handmade, name), ground_truth(handmade, name).shape
        adaptsegnet = adaptsegnet_script(network, file, shape, SIZES["adaptsegnet"])
        bilinear = adaptsegnet_script(network, file, shape, SIZES["adaptsegnet"], resample=Image.BILINEAR)
        unaligned = adaptsegnet_script(network, file, shape, SIZES["adaptsegnet"], align_corners=False)
        differs["bilinear input"] += int((adaptsegnet != bilinear).sum())
        differs["align_corners=False"] += int((adaptsegnet != unaligned).sum())
        ripu = ripu_script(network, file, shape, SIZES["ripu"])
        differs["no flip"] += int((ripu != ripu_script(network, file, shape, SIZES["ripu"], flip=False)).sum())
        labor_own = labor_as_it_was(network, file, shape, SIZES["adaptsegnet"])
        differs["adaptsegnet against labor"] += int((adaptsegnet != labor_own).sum())
    assert all(count > 0 for count in differs.values()), differs


def test_a_protocol_sets_the_input_size_unless_given(tmp_path, handmade, warm_checkpoint):
    """Without --input-size, adaptsegnet feeds 1024x512 (its crop_size), and predictions.json
    records it. Through the executable, with the default loader workers."""

    common = ["-m", warm_checkpoint, "--target", f"cityscapes:{handmade}", "--device", "cpu", "-q"]
    run_executable("predict", *common, "-o", tmp_path / "pred", "--protocol", "adaptsegnet")
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert record["input_size"] == [1024, 512] and record["precision"] == "fp32"
    assert record["protocol_settings"] == {
        "input_size": [1024, 512],
        "resize": "bicubic",
        "align_corners": True,
        "flip": False,
        "precision": "fp32",
    }


def test_precision_auto_means_the_protocols():
    """The scripts run in fp32: under their protocols --precision auto is fp32 (on CUDA too, where
    labor's own auto is bf16); a precision given is kept."""
    assert PROTOCOLS["labor"].resolve_precision("auto") == "auto"
    assert all(PROTOCOLS[name].resolve_precision("auto") == "fp32" for name in ("adaptsegnet", "advent", "ripu"))
    assert PROTOCOLS["ripu"].resolve_precision("bf16") == "bf16"


def test_the_protocol_view_resizes_as_the_scripts(handmade):
    from labor_cli.data.datasets import open_dataset
    from labor_cli.protocols import ProtocolView

    dataset = open_dataset(f"cityscapes:{handmade}", "val")
    item = ProtocolView(dataset, PROTOCOLS["ripu"], PROTOCOLS["ripu"].input_size, labels=True)[0]
    expected = np.asarray(Image.open(image_file(handmade, IMAGES[0])).convert("RGB").resize((1280, 640), Image.BICUBIC))
    assert item["image"].dtype == torch.uint8 and np.array_equal(item["image"].permute(1, 2, 0).numpy(), expected)
    assert item["native_size"].tolist() == [32, 64] and np.array_equal(item["label"].numpy(), dataset.read_label(0))


def test_inspect_shows_the_protocol(tmp_path, handmade, warm_checkpoint):
    common = ["-m", warm_checkpoint, "--target", f"cityscapes:{handmade}", "--device", "cpu", "--workers", 0, "-q"]
    invoke("evaluate", *common, "-o", tmp_path / "eval.h5", "--protocol", "ripu", "--input-size", "40x20")
    shown = " ".join(invoke("inspect", tmp_path / "eval.h5").output.split())
    assert (
        "protocol: ripu: input 40x20 (bicubic), logits upsampled bilinearly to the label's size "
        "(align_corners=True), flip-averaged softmax, precision fp32" in shown
    )


def test_a_bad_protocol_is_a_usage_error(capsys, warm_checkpoint, handmade):
    for command, output in (("evaluate", "eval.h5"), ("predict", "pred")):
        with pytest.raises(SystemExit) as stop:
            main([command, "-m", str(warm_checkpoint), "--target", "x", "-o", output, "--protocol", "advnt"])
        assert stop.value.code == 2
        assert "'advnt' is not one of 'labor', 'adaptsegnet', 'advent', 'ripu'" in capsys.readouterr().err


def test_the_option_offers_every_protocol():
    from labor_cli.options import EVALUATION_PROTOCOLS

    assert EVALUATION_PROTOCOLS == tuple(PROTOCOLS)


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory, warm_checkpoint):
    """The session's checkpoint with A's classifier changed: another model of the same classes."""
    from labor_cli import artifacts

    checkpoint = artifacts.load_checkpoint(warm_checkpoint)
    torch.manual_seed(1)
    with torch.no_grad():
        for conv in checkpoint.networks.segmenter.classifier.conv2d_list:
            conv.weight.add_(torch.randn_like(conv.weight) * conv.weight.std())
    path = tmp_path_factory.mktemp("second") / "minent.h5"
    with artifacts.create_artifact(path, "checkpoint", {"stage": "test"}, [], False) as f:
        artifacts.write_checkpoint(
            f, checkpoint.networks, checkpoint.class_set, checkpoint.class_names, checkpoint.state
        )
    return path


def test_an_ensemble_averages_as_advent_does(tmp_path, handmade, warm_checkpoint, second_checkpoint, network):
    """--ensemble: two models' upsampled logits, half each, as ADVENT's eval_single does for
    AdvEnt + MinEnt; the evaluation names both in its lineage, and differs from either alone."""
    from labor_cli.artifacts import load_checkpoint, read_any

    minent = load_checkpoint(second_checkpoint).networks.segmenter.eval()
    common = ["--target", f"cityscapes:{handmade}", "--device", "cpu", "--workers", 0, "-q", "--protocol", "advent"]
    common += ["--input-size", "32x16", "-m", warm_checkpoint, "--ensemble", second_checkpoint]
    invoke("predict", *common, "-o", tmp_path / "pred")
    invoke("evaluate", *common, "-o", tmp_path / "eval.h5")
    differs = 0
    confusion = np.zeros((19, 19), np.int64)
    for name in IMAGES:
        truth = ground_truth(handmade, name)
        args = (image_file(handmade, name), truth.shape, SIZES["advent"])
        expected = advent_script(None, *args, models=[network, minent], model_weights=(0.5, 0.5))
        assert np.array_equal(predicted_train_ids(tmp_path / "pred", name), expected), name
        confusion += fast_hist(truth.flatten(), expected.flatten(), 19)
        differs += int(
            (expected != advent_script(network, *args)).sum() + (expected != advent_script(minent, *args)).sum()
        )
    assert differs > 0
    with read_any(tmp_path / "eval.h5") as f:
        assert np.array_equal(f["confusion"][()], confusion)
        assert [parent["path"] for parent in json.loads(f.attrs["lineage"])] == [
            str(warm_checkpoint),
            str(second_checkpoint),
        ]
        assert json.loads(f.attrs["config"])["ensemble"] == str(second_checkpoint)
    assert json.loads((tmp_path / "pred" / "predictions.json").read_text())["ensemble"] == str(second_checkpoint)


def test_an_ensemble_of_other_classes_is_refused(tmp_path, handmade, warm_checkpoint, capsys):
    from labor_cli import artifacts
    from labor_cli.artifacts import TrainingState
    from labor_cli.data.labels import class_names
    from labor_cli.models import build_networks

    other = tmp_path / "synthia.h5"
    with artifacts.create_artifact(other, "checkpoint", {"stage": "test"}, [], False) as f:
        networks = build_networks("small", 16)
        artifacts.write_checkpoint(
            f, networks, "synthia16", class_names("synthia16"), TrainingState("test", 0, 0, {}, {})
        )
    with pytest.raises(SystemExit) as stop:
        main(
            ["evaluate", "-m", str(warm_checkpoint), "--ensemble", str(other), "--target", f"cityscapes:{handmade}"]
            + ["-o", str(tmp_path / "eval.h5"), "--device", "cpu", "--workers", "0", "-q"]
        )
    err = capsys.readouterr().err
    assert stop.value.code == 1 and len(err.strip().splitlines()) == 1
    assert f"{other}: scores the classes of synthia16, {warm_checkpoint} those of cityscapes19" in err
    assert not (tmp_path / "eval.h5").exists()


def test_the_method_page_tables_the_protocols_as_they_are():
    """docs/method.md's table of the protocols says what PROTOCOLS holds."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "method.md").read_text()
    section = text.split("## Evaluation protocols", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5:
            rows[cells[0]] = dict(zip(("labor", "adaptsegnet", "advent", "ripu"), cells[1:]))
    assert list(rows[""].values()) == [f"`{name}`" for name in PROTOCOLS]
    for name, protocol in PROTOCOLS.items():
        size = "x".join(map(str, protocol.input_size)) if protocol.input_size else "the dataset's training size"
        assert rows["input size"][name].startswith(size), name
        assert rows["input resize"][name] == f"Pillow {protocol.resize}", name
        assert f"align_corners={protocol.align_corners}" in rows["logits to the label's size"][name], name
        assert rows["flip averaging"][name].startswith("yes" if protocol.flip else "no"), name
        precision = rows["`--precision auto`"][name]
        assert precision == "fp32" if protocol.precision else precision.startswith("bf16 on CUDA"), name
        assert rows["read in"][name].startswith(protocol.read_in.split(":")[0].split(",")[0]), name


def test_a_bad_ensemble_is_one_line(tmp_path, handmade, warm_checkpoint, capsys):
    """--ensemble: a missing file, and an output that is the ensemble's own checkpoint (its lineage
    would lose it), each one line, nothing written."""
    import shutil

    shutil.copy(warm_checkpoint, tmp_path / "mine.h5")
    common = ["-m", str(warm_checkpoint), "--target", f"cityscapes:{handmade}", "--device", "cpu", "--workers", "0"]
    cases = [
        (["evaluate", *common, "--ensemble", str(tmp_path / "none.h5"), "-o", str(tmp_path / "e.h5")], "no such file"),
        (["predict", *common, "--ensemble", str(tmp_path / "none.h5"), "-o", str(tmp_path / "p")], "no such file"),
        (
            ["evaluate", *common, "--ensemble", str(tmp_path / "mine.h5"), "-o", str(tmp_path / "mine.h5"), "--force"],
            "mine.h5",
        ),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code != 0 and err.startswith("labor: error: ") and len(err.strip().splitlines()) == 1, err
        assert needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.h5"]
