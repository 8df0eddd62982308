"""labor predict: PNGs that cityscapesScripts finds and scores as labor evaluate does."""

from __future__ import annotations

import fnmatch
import glob
import json
import shutil

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

from labor_cli.cli import main
from labor_cli.data.labels import CITYSCAPES_LABELS
from labor_cli.predictions import cityscapes_prediction_name


def fails(capsys, *args) -> str:
    """`labor ARGS` must fail with one line naming the problem; that line."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert stop.value.code != 0 and err.startswith("labor: error: ") and len(err.strip().splitlines()) == 1, err
    return err


def scores(path) -> dict:
    from labor_cli.artifacts import read_any

    with read_any(path) as f:
        return json.loads(f.attrs["scores"])


@pytest.fixture(scope="module")
def cityscapes_eval():
    """cityscapesScripts' evaluator, set to read given lists quietly and write nothing."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    saved = dict(vars(ev.args))
    ev.args.evalInstLevelScore = False  # the toy pair has no instance ids
    ev.args.JSONOutput = False
    ev.args.quiet = True
    yield ev
    vars(ev.args).update(saved)


def official_miou(ev, predictions_dir, target_root) -> float:
    ev.args.predictionPath, ev.args.predictionWalk = str(predictions_dir), None
    ground_truth = sorted(glob.glob(str(target_root / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png")))
    assert ground_truth
    predictions = [ev.getPrediction(ev.args, gt) for gt in ground_truth]
    return 100 * ev.evaluateImgLists(predictions, ground_truth, ev.args)["averageScoreClasses"]


def test_prediction_names_are_what_the_evaluator_matches():
    from cityscapesscripts.helpers.csHelpers import getCsFileInfo

    name = cityscapes_prediction_name("frankfurt/frankfurt_000000_000294")
    assert name == "frankfurt_000000_000294_pred_labelIds.png"
    assert (
        cityscapes_prediction_name("frankfurt/frankfurt_000000_000294", colour=True)
        == "frankfurt_000000_000294_pred_color.png"
    )
    assert cityscapes_prediction_name("00042") == "00042_pred_labelIds.png"
    truth = getCsFileInfo("frankfurt_000000_000294_gtFine_labelIds.png")
    pattern = f"{truth.city}_{truth.sequenceNb}_{truth.frameNb}*.png"  # getPrediction's
    assert fnmatch.fnmatch(name, pattern)
    assert not fnmatch.fnmatch("frankfurt__frankfurt_000000_000294_pred_labelIds.png", pattern)


def test_cityscapes_scripts_scores_the_predictions_as_labor_evaluate(
    tmp_path, warm_checkpoint, toy_pair, toy_target, cityscapes_eval
):
    """predict's and evaluate --predictions' PNGs alike: the official evaluator finds one per image
    and agrees with labor evaluate's mIoU to 0.01 points."""
    invoke(
        "evaluate",
        "-m",
        warm_checkpoint,
        "--target",
        toy_target,
        "-o",
        tmp_path / "eval.h5",
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
        "--predictions",
        tmp_path / "evaluated",
    )
    result = invoke(
        "predict",
        "-m",
        warm_checkpoint,
        "--target",
        toy_target,
        "-o",
        tmp_path / "pred",
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
    )
    assert "3 predictions in" in result.output
    miou = scores(tmp_path / "eval.h5")["mIoU19"]
    for folder in ("pred", "evaluated"):
        official = official_miou(cityscapes_eval, tmp_path / folder, toy_pair / "target")
        assert abs(official - miou) < 0.01 and 0 < official < 100, folder
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert record["split"] == "val" and record["images"] == 3
    assert sorted(p.name for p in (tmp_path / "evaluated").iterdir()) == sorted(
        p.name for p in (tmp_path / "pred").iterdir() if p.suffix == ".png"
    )


def test_a_split_without_labels_is_predicted_at_native_size_in_label_ids(tmp_path, warm_checkpoint, toy_pair):
    root = tmp_path / "cityscapes"
    shutil.copytree(toy_pair / "target" / "leftImg8bit" / "val", root / "leftImg8bit" / "test")
    invoke(
        "predict",
        "-m",
        warm_checkpoint,
        "--target",
        f"cityscapes:{root}",
        "--split",
        "test",
        "-o",
        tmp_path / "pred",
        "--colour",
        tmp_path / "colour",
        "--device",
        "cpu",
        "--workers",
        0,
        "-q",
        "--batch-size",
        2,
    )
    images = sorted((root / "leftImg8bit" / "test").glob("*/*_leftImg8bit.png"))
    assert len(images) == 3
    label_ids = {label.label_id for label in CITYSCAPES_LABELS}
    for path in images:
        base = path.name[: -len("_leftImg8bit.png")]
        prediction = np.array(Image.open(tmp_path / "pred" / f"{base}_pred_labelIds.png"))
        colour = Image.open(tmp_path / "colour" / f"{base}_pred_color.png")
        assert prediction.shape == np.array(Image.open(path)).shape[:2]
        assert colour.size == Image.open(path).size and colour.mode == "RGB"
        assert set(np.unique(prediction)) <= label_ids
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == sorted(
        [f"{p.name[: -len('_leftImg8bit.png')]}_pred_labelIds.png" for p in images] + ["predictions.json"]
    )


def test_folders_are_checked_before_any_work(tmp_path, warm_checkpoint, toy_target, capsys):
    base = ["predict", "-m", warm_checkpoint, "--target", toy_target, "--device", "cpu", "--workers", 0, "-q"]
    assert "must not be inside" in fails(capsys, *base, "-o", tmp_path / "pred", "--colour", tmp_path / "pred" / "c")
    assert not (tmp_path / "pred").exists()
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "mine.png").write_bytes(b"")
    assert "not empty; pass --force" in fails(capsys, *base, "-o", tmp_path / "pred")
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["mine.png"]
    assert "no such file" in fails(capsys, *base[:2], tmp_path / "nothing.h5", *base[3:], "-o", tmp_path / "p2")


def test_evaluate_writes_its_prediction_folders_whole_or_not_at_all(tmp_path, warm_checkpoint, toy_target, monkeypatch):
    """evaluate --predictions/--colour fill temporary folders: a Ctrl-C after the first image leaves no
    folder (and no .partial) behind, and --force replaces an earlier folder whole, as predict does."""
    from labor_cli import predictions
    from labor_cli.options import EvaluateOptions
    from labor_cli.stages import evaluate

    def options(**given):
        return EvaluateOptions(
            model=warm_checkpoint, target=toy_target, output=tmp_path / "eval.h5", device="cpu", quiet=True, **given
        )

    write = predictions.write_prediction_pngs
    calls = []

    def interrupted_after_one(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(write(*args))

    monkeypatch.setattr(predictions, "write_prediction_pngs", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        evaluate.run_evaluate(options(workers=0, predictions=tmp_path / "ids", colour=tmp_path / "colour"))
    assert calls and sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setattr(predictions, "write_prediction_pngs", write)

    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "earlier.png").write_bytes(b"")
    evaluate.run_evaluate(options(workers=0, predictions=tmp_path / "ids", force=True))
    names = sorted(p.name for p in (tmp_path / "ids").iterdir())
    assert len(names) == 3 and all(n.endswith("_pred_labelIds.png") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.h5", "ids"]
