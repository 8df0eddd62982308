"""examples/oracle_select.py: the ground-truth ceilings of examples/compare.sh, on hand-made maps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from labor_cli import selection

_SPEC = importlib.util.spec_from_file_location(
    "oracle_select", Path(__file__).resolve().parent.parent / "examples" / "oracle_select.py"
)
oracle_select = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(oracle_select)


def _maps():
    """A 10x10 image: 20 pixels ignored, class 1 on 16, class 2 on 4, class 0 on the other 60; A calls
    class 2 and half of class 1 class 0."""
    truth = np.zeros((10, 10), np.uint8)
    truth[:2, :] = 255  # 20 pixels
    truth[2:6, 6:] = 1  # 16
    truth[8:, 8:] = 2  # 4
    prediction = truth.copy()
    prediction[prediction == 255] = 0
    prediction[8:, 8:] = 0  # A misses class 2 entirely
    prediction[2:4, 6:] = 0  # and 8 of class 1's pixels
    return truth, prediction


def test_budgets_follow_the_true_classes_not_the_prediction():
    truth, prediction = _maps()
    areas = np.bincount(truth[truth != 255], minlength=3)
    picked = oracle_select.oracle_pick(
        truth, prediction, 9, np.random.default_rng(0), 0.5, False, np.zeros(0, np.int64)
    )
    classes = truth.reshape(-1)[picked]
    assert len(picked) == len(set(picked.tolist())) == 9
    assert 255 not in classes
    assert np.bincount(classes, minlength=3).tolist() == selection.class_budgets(areas, 9, 0.5).tolist()
    assert (classes == 2).sum() >= 1  # a class A never predicts still gets its share


def test_errors_first_takes_wrong_pixels_before_right_ones():
    truth, prediction = _maps()
    areas = np.bincount(truth[truth != 255], minlength=3)
    budgets = selection.class_budgets(areas, 12, 0.5)
    picked = oracle_select.oracle_pick(
        truth, prediction, 12, np.random.default_rng(1), 0.5, True, np.zeros(0, np.int64)
    )
    flat_truth, flat_prediction = truth.reshape(-1), prediction.reshape(-1)
    for k, budget in enumerate(budgets):
        mine = picked[flat_truth[picked] == k]
        wrong_available = int(((flat_truth == k) & (flat_prediction != k)).sum())
        assert len(mine) == budget
        assert int((flat_prediction[mine] != k).sum()) == min(int(budget), wrong_available)


def test_excluded_pixels_are_never_drawn():
    truth, prediction = _maps()
    excluded = np.flatnonzero(truth.reshape(-1) == 2)  # every pixel of class 2 labeled already
    picked = oracle_select.oracle_pick(truth, prediction, 30, np.random.default_rng(2), 0.5, False, excluded)
    assert not np.isin(picked, excluded).any()
    assert len(picked) == 30
