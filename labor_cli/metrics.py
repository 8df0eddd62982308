"""mIoU as the field computes it (docs/method.md, "Protocol of the field"): one confusion matrix over all evaluated pixels.

IoU(k) = TP / (TP + FP + FN); false positives are counted only where the ground truth is not
ignored. A class that is neither in the ground truth nor predicted has no IoU (NaN) and is
left out of the mean; a class predicted but absent from the ground truth scores 0.
"""

from __future__ import annotations

import numpy as np
import torch

from labor_cli.data.labels import IGNORE_INDEX


def class_counts(classes: torch.Tensor, num_classes: int, where: torch.Tensor | None = None) -> torch.Tensor:
    """(num_classes,) int64: how often each class in ``classes`` occurs (only where ``where`` is
    True, if given). ``torch.bincount`` without its host synchronisation: on CUDA it reads the
    largest value back to size its output; here the size is known."""
    flat = classes.flatten().long()
    weights = torch.ones_like(flat) if where is None else where.flatten().long()
    return torch.zeros(num_classes, dtype=torch.int64, device=classes.device).index_add_(0, flat, weights)


def confusion_matrix(prediction: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; works on any device."""
    valid = label != IGNORE_INDEX
    index = torch.where(valid, label.long() * num_classes + prediction.long(), 0)
    return class_counts(index, num_classes * num_classes, where=valid).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, true_positive / denominator, np.nan)


def mean_iou(iou: np.ndarray, classes: list[int] | None = None) -> float:
    """Mean IoU in percent over ``classes`` (all by default), classes without an IoU left out."""
    values = np.asarray(iou)[classes] if classes is not None else np.asarray(iou)
    values = values[~np.isnan(values)]
    return float(values.mean() * 100) if values.size else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total * 100) if total else float("nan")
