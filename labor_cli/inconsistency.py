"""The inconsistency mask: the target pixels where B's two heads disagree, within SPL's budget.

The paper's mask is M(p) = 1 where argmax C1(p) != argmax C2(p); SPL labels every pixel of it,
about 2.2% of each target image's pixels in the paper. How many pixels the heads disagree on
depends on the data, so the budget ``share`` (--mask-share) keeps at most that share of each
image's pixels: those where the heads' class probabilities differ most (the L1 distance of their
softmax outputs, the per-pixel term of the discrepancy loss). Warmup and adapt steer the
discrepancy weight so that the mask fills its budget (training.loop.MaskShareSteering); extract keeps
each image's budget's worth (docs/method.md). A share of 0 keeps every pixel where they differ.
"""

from __future__ import annotations

import math

import torch


def budget_pixels(share: float, height: int, width: int) -> int | None:
    """The most mask pixels an image of ``height`` x ``width`` keeps (None: no budget, share 0)."""
    # The small addition keeps 0.022 * 100 * 100 (219.99999... in floats) at 220.
    return math.floor(share * height * width + 1e-6) if share > 0 else None


def head_discrepancy(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """Per pixel, the L1 distance between the heads' class probabilities: (C, H, W) -> (H, W)."""
    return (logits1.float().softmax(0) - logits2.float().softmax(0)).abs().sum(0)


def within_budget(candidates: torch.Tensor, discrepancy: torch.Tensor, budget: int | None) -> torch.Tensor:
    """``candidates`` (H, W bool: the heads differ, not labeled before) cut to its ``budget``
    pixels of the largest ``discrepancy`` (ties: the first in raster order)."""
    if budget is None or int(candidates.sum()) <= budget:
        return candidates
    flat = candidates.flatten()
    score = discrepancy.flatten().masked_fill(~flat, -1.0)  # the discrepancy is >= 0
    keep = torch.sort(score, descending=True, stable=True).indices[:budget]
    kept = torch.zeros_like(flat)
    kept[keep] = True
    return kept.view_as(candidates)


def budget_share(differ: torch.Tensor, share: float) -> torch.Tensor:
    """The share of the pixels a batch's masks keep within the budget: the mean over images of
    min(the share each image's heads differ on, ``share``); ``share`` 0: the plain share.
    ``differ``: (N, H, W) bool."""
    per_image = differ.flatten(1).float().mean(1)
    if share > 0:
        per_image = per_image.clamp(max=share)
    return per_image.mean()
