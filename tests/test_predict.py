"""labor predict: PNGs that cityscapesScripts finds and scores as labor evaluate does."""

from __future__ import annotations

import fnmatch
import glob
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from labor_cli.data.labels import CITYSCAPES_LABELS
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.stages.predict import cityscapes_prediction_name, run_predict


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
    assert cityscapes_prediction_name("frankfurt/frankfurt_000000_000294", colour=True) == \
        "frankfurt_000000_000294_pred_color.png"
    assert cityscapes_prediction_name("00042") == "00042_pred_labelIds.png"
    truth = getCsFileInfo("frankfurt_000000_000294_gtFine_labelIds.png")
    pattern = f"{truth.city}_{truth.sequenceNb}_{truth.frameNb}*.png"  # getPrediction's
    assert fnmatch.fnmatch(name, pattern)
    assert not fnmatch.fnmatch("frankfurt__frankfurt_000000_000294_pred_labelIds.png", pattern)


def test_cityscapes_scripts_scores_the_predictions_as_labor_evaluate(tmp_path, warm_checkpoint, toy_pair, toy_target,
                                                                      cityscapes_eval):
    from labor_cli.stages.evaluate import run_evaluate

    labor = run_evaluate(warm_checkpoint, toy_target, "val", tmp_path / "eval.h5", device="cpu", quiet=True)
    result = run_predict(warm_checkpoint, toy_target, "val", tmp_path / "pred", device="cpu", quiet=True)
    assert result.images == labor.images == 3
    official = official_miou(cityscapes_eval, tmp_path / "pred", toy_pair / "target")
    assert abs(official - labor.scores["mIoU19"]) < 0.01
    assert 0 < official < 100
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert record["split"] == "val" and record["images"] == 3


def test_a_split_without_labels_is_predicted_at_native_size_in_label_ids(tmp_path, warm_checkpoint, toy_pair):
    root = tmp_path / "cityscapes"
    shutil.copytree(toy_pair / "target" / "leftImg8bit" / "val", root / "leftImg8bit" / "test")
    result = run_predict(warm_checkpoint, f"cityscapes:{root}", "test", tmp_path / "pred",
                         colour_dir=tmp_path / "colour", device="cpu", quiet=True, batch_size=2)
    assert result.images == 3
    images = sorted((root / "leftImg8bit" / "test").glob("*/*_leftImg8bit.png"))
    label_ids = {label.label_id for label in CITYSCAPES_LABELS}
    for path in images:
        base = path.name[: -len("_leftImg8bit.png")]
        prediction = np.array(Image.open(tmp_path / "pred" / f"{base}_pred_labelIds.png"))
        colour = Image.open(tmp_path / "colour" / f"{base}_pred_color.png")
        assert prediction.shape == np.array(Image.open(path)).shape[:2]
        assert colour.size == Image.open(path).size and colour.mode == "RGB"
        assert set(np.unique(prediction)) <= label_ids
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == sorted(
        [f"{p.name[: -len('_leftImg8bit.png')]}_pred_labelIds.png" for p in images] + ["predictions.json"])


def test_folders_are_checked_before_any_work(tmp_path, warm_checkpoint, toy_target):
    with pytest.raises(LaborUsageError, match="must not be inside"):
        run_predict(warm_checkpoint, toy_target, "val", tmp_path / "pred", colour_dir=tmp_path / "pred" / "colour")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "mine.png").write_bytes(b"")
    with pytest.raises(LaborError, match="not empty; pass --force"):
        run_predict(warm_checkpoint, toy_target, "val", tmp_path / "pred")


@pytest.mark.xfail(strict=True, reason="evaluate.write_prediction_pngs names its files itself until it calls "
                   "labor_cli.stages.predict.cityscapes_prediction_name (a one-line change left to the lead)")
def test_evaluate_predictions_are_found_by_the_evaluator(tmp_path, warm_checkpoint, toy_pair, toy_target,
                                                         cityscapes_eval):
    from labor_cli.stages.evaluate import run_evaluate

    labor = run_evaluate(warm_checkpoint, toy_target, "val", tmp_path / "eval.h5", device="cpu", quiet=True,
                         predictions_dir=tmp_path / "pred")
    assert abs(official_miou(cityscapes_eval, tmp_path / "pred", toy_pair / "target") - labor.scores["mIoU19"]) < 0.01
