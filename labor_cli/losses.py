"""The losses of LabOR (docs/method.md), numbered as in the paper's figure, and the pseudo labels they use."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.metrics import class_counts


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling to (H, W), in fp32 so losses are computed at full precision.

    The same values as ``F.interpolate(..., mode="bilinear", align_corners=False)`` (to float
    rounding), computed as two small matrix products: on the CPU the backward of
    ``upsample_bilinear2d`` is single-threaded and took 12% of a toy training step, a matmul's
    backward is another matmul.
    """
    x = logits.float()
    rows = bilinear_matrix(size[0], x.shape[-2], x.device)
    cols = bilinear_matrix(size[1], x.shape[-1], x.device)
    return rows @ x @ cols.t()


def bilinear_matrix(size_out: int, size_in: int, device: torch.device) -> torch.Tensor:
    """(size_out, size_in) weights of 1-D bilinear resampling with half-pixel centres.

    Built on ``device`` itself: a matrix made on the host and copied to a GPU would make the
    host wait for the GPU at every loss (a copy from pageable memory synchronises)."""
    position = ((torch.arange(size_out, dtype=torch.float64, device=device) + 0.5) * (size_in / size_out) - 0.5).clamp(
        min=0
    )
    low = position.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    weight_high = position - low
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64, device=device)
    rows = torch.arange(size_out, device=device)
    matrix.index_put_((rows, low), 1 - weight_high, accumulate=True)
    matrix.index_put_((rows, high), weight_high, accumulate=True)
    return matrix.to(torch.float32)


def segmentation_loss(logits_full: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Losses 1 (source) and 5 (pseudo labels): pixel cross-entropy, 255 ignored.

    Zero (not NaN) when every pixel is ignored, so a batch with no label does no harm.
    """
    loss = F.cross_entropy(logits_full, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / (labels != IGNORE_INDEX).sum().clamp(min=1)


def sample_at_points(logits: torch.Tensor, points_yx: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Logits of one image (C, h, w) read at exact pixels of its native (H, W) grid -> (P, C).

    Equals upsampling the logits bilinearly to (H, W) and reading those pixels, without making
    the full-resolution tensor: a labeled pixel is neither lost nor shifted by the resize.
    """
    height, width = image_size
    y = (points_yx[:, 0].float() + 0.5) * (2.0 / height) - 1.0
    x = (points_yx[:, 1].float() + 0.5) * (2.0 / width) - 1.0
    grid = torch.stack([x, y], dim=-1).view(1, 1, -1, 2)
    sampled = F.grid_sample(
        logits.float().unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0, :, 0, :].t()


def sparse_target_loss(logits: torch.Tensor, points: list[dict]) -> torch.Tensor:
    """Loss 2: cross-entropy of A on the annotated target pixels only, at their exact positions.

    ``points[i]`` holds ``yx`` (P, 2) long, ``label`` (P,) long (no ignored pixel: the caller
    drops those on the host, so the count needs no synchronisation) and ``size`` (H, W).
    """
    total = logits.new_zeros((), dtype=torch.float32)
    count = 0
    for image_logits, image_points in zip(logits, points):
        if len(image_points["label"]) == 0:
            continue
        sampled = sample_at_points(image_logits, image_points["yx"], image_points["size"])
        total = total + F.cross_entropy(sampled, image_points["label"], reduction="sum")
        count += len(image_points["label"])
    return total / max(count, 1)


def adversarial_loss(discriminator_logits: torch.Tensor, is_source: bool) -> torch.Tensor:
    """Loss 3 (AdaptSegNet): binary cross-entropy against 'source' (0) or 'target' (1)."""
    target = torch.full_like(discriminator_logits, 0.0 if is_source else 1.0, dtype=torch.float32)
    return F.binary_cross_entropy_with_logits(discriminator_logits.float(), target)


def discrepancy(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """Loss 6 (MCD): mean absolute difference of the two heads' softmax outputs."""
    return (logits1.float().softmax(1) - logits2.float().softmax(1)).abs().mean()


def class_balanced_pseudo_labels(probabilities: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per class, keep A's most confident fraction ``alpha`` of the pixels predicted as it.

    probabilities: (N, C, H, W) -> labels (N, H, W), 255 where not kept. One sort for all
    classes at once, no host synchronisation.
    """
    confidence, prediction = probabilities.max(1)
    flat_prediction = prediction.flatten()
    num_classes = probabilities.shape[1]
    # Sort by (class, confidence): a pixel's rank inside its class is its position minus the class start.
    key = flat_prediction * 65536 + (confidence.flatten().float() * 65535).long()
    order = key.argsort()
    counts = class_counts(flat_prediction, num_classes)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - starts[flat_prediction[order]]
    keep = rank >= torch.floor(counts[flat_prediction].float() * (1.0 - alpha)).long()
    labels = torch.where(keep, flat_prediction, torch.full_like(flat_prediction, IGNORE_INDEX))
    return labels.view_as(prediction)
