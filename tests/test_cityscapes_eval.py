"""examples/cityscapes_eval.py: cityscapesScripts' official evaluator, instance scores on, on the tiny toy target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labor_cli.data import toy
from labor_cli.data.labels import CITYSCAPES_LABELS
from labor_cli.options import ToyOptions

pytest.importorskip("cityscapesscripts")
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "cityscapes_eval.py"
EVALUATED = [label.label_id for label in CITYSCAPES_LABELS]


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "pair"
    toy.make_toy_pair(ToyOptions(directory=out, size="tiny"))
    return out / "target"


def evaluate(target: Path, predict, folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    """Write predict(ground truth) for every val image as the benchmark names it, then run ``command``."""
    results, export = folder / "pred", folder / "export"
    results.mkdir()
    export.mkdir()
    for gt in sorted((target / "gtFine" / "val").rglob("*_gtFine_labelIds.png")):
        name = gt.name.replace("_gtFine_labelIds.png", "_pred_labelIds.png")
        Image.fromarray(predict(np.asarray(Image.open(gt)))).save(results / name)
    env = {**os.environ, "CITYSCAPES_DATASET": str(target), "CITYSCAPES_RESULTS": str(results)}
    env["CITYSCAPES_EXPORT_DIR"] = str(export)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def scores(folder: Path) -> dict:
    return json.loads((folder / "export" / "resultPixelLevelSemanticLabeling.json").read_text())


def test_the_official_evaluator_scores_known_predictions_with_numpy_2_4(target, tmp_path):
    (tmp_path / "truth").mkdir()
    done = evaluate(target, lambda gt: gt, tmp_path / "truth", [sys.executable, str(SCRIPT)])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert scores(tmp_path / "truth")["averageScoreClasses"] == pytest.approx(1.0)

    # Road everywhere: road's IoU is its share of the evaluated pixels, every other class 0.
    (tmp_path / "road").mkdir()
    done = evaluate(target, lambda gt: np.full_like(gt, 7), tmp_path / "road", [sys.executable, str(SCRIPT)])
    assert done.returncode == 0, done.stderr[-2000:]
    truth = np.concatenate(
        [np.asarray(Image.open(p)).ravel() for p in (target / "gtFine" / "val").rglob("*_gtFine_labelIds.png")]
    )
    evaluated = np.isin(truth, EVALUATED)
    road_iou = (truth == 7).sum() / evaluated.sum()
    result = scores(tmp_path / "road")
    assert result["classScores"]["road"] == pytest.approx(road_iou)
    assert result["averageScoreClasses"] == pytest.approx(road_iou / 19)


@pytest.mark.skipif(hasattr(np, "in1d"), reason="this NumPy still has np.in1d")
def test_without_the_wrapper_the_evaluator_stops_on_numpys_removed_in1d(target, tmp_path):
    module = [sys.executable, "-m", "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"]
    done = evaluate(target, lambda gt: gt, tmp_path, module)
    assert done.returncode != 0 and "in1d" in done.stderr
