import numpy as np
import pytest
import torch

from labor_cli.metrics import class_counts, confusion_matrix, iou_per_class, mean_iou


def test_confusion_matrix_counts_by_hand_and_skips_ignored_pixels():
    label = torch.tensor([[0, 0, 1, 255], [2, 2, 1, 255]])
    prediction = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 2]])
    cm = confusion_matrix(prediction, label, 3).numpy()
    # rows: ground truth, columns: prediction; the two ignored pixels (predicted 2) count nowhere
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_confusion_matrix_takes_uint8_labels_as_the_loaders_give_them():
    label = torch.tensor([[0, 0, 1, 255], [2, 2, 1, 255]], dtype=torch.uint8)
    prediction = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 2]])
    assert confusion_matrix(prediction, label, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_class_counts_by_hand():
    classes = torch.tensor([[3, 0, 3], [1, 3, 0]])
    assert class_counts(classes, 5).tolist() == [2, 1, 0, 3, 0]  # a class never seen counts 0
    where = torch.tensor([[True, False, True], [False, False, True]])
    assert class_counts(classes, 5, where=where).tolist() == [1, 0, 0, 2, 0]
    assert class_counts(classes, 5).dtype == torch.int64


def test_iou_by_hand():
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    iou = iou_per_class(cm)
    # class 0: TP 1, FP 1 (gt 2 predicted 0), FN 1 -> 1/3; class 1: 2/(2+1) ; class 2: 1/(1+1)
    assert iou == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(iou) == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_class_absent_from_ground_truth_but_predicted_scores_zero_and_absent_everywhere_is_left_out():
    label = torch.tensor([0, 0, 1, 1])
    prediction = torch.tensor([0, 2, 1, 1])  # class 2 never in the ground truth, predicted once; class 3 nowhere
    iou = iou_per_class(confusion_matrix(prediction, label, 4).numpy())
    assert iou[2] == 0.0
    assert np.isnan(iou[3])
    assert mean_iou(iou) == pytest.approx(100 * (0.5 + 1.0 + 0.0) / 3)
    assert mean_iou(iou, classes=[0, 1]) == pytest.approx(75.0)


def test_one_matrix_over_all_pixels_is_not_a_mean_of_per_image_scores():
    # image 1 has 1 pixel of class 1, wrong; image 2 has 99 pixels of class 1, right
    cm = confusion_matrix(torch.tensor([0]), torch.tensor([1]), 2) + confusion_matrix(
        torch.ones(99, dtype=torch.long), torch.ones(99, dtype=torch.long), 2
    )
    iou = iou_per_class(cm.numpy())
    assert iou[1] == pytest.approx(99 / 100)
