"""What the masks artifact keeps of each target image, computed on the device (docs/method.md).

Per image, at its own resolution (logits upsampled bilinearly):
  the inconsistency mask M = argmax C1 != argmax C2, minus the pixels already labeled, cut to
  SPL's budget (labor_cli.inconsistency);
  A's prediction and its runner-up (the second most probable class);
  PPL's candidates: for each class k, the mask pixels A predicts as k (D(k)), ranked by the
  cosine similarity of their probability vectors to the prototype mu(k) = mean over D(k);
  A's most uncertain pixels (entropy), for the entropy baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from labor_cli import inconsistency
from labor_cli.data.transforms import ImageNormalizer
from labor_cli.runtime import autocast, memory_format


@dataclass(frozen=True)
class Budgets:
    """How much of each image extract keeps (the extract options of the same names)."""

    candidates_per_class: int  # PPL candidates per class
    uncertain_per_image: int  # most uncertain pixels
    mask_share: float = 0.0  # SPL's budget: the mask's largest share of the image's pixels (0: none)


@dataclass
class ImageMasks:
    """Everything the masks artifact keeps of one image, as numpy arrays on the host."""

    prediction: np.ndarray  # (H, W) uint8: A's class
    runner_up: np.ndarray  # (H, W) uint8: A's second class
    mask_packed: np.ndarray  # the mask within its budget, as pack_bits packs it
    mask_by_class: np.ndarray  # (C,) the mask's pixels counted by A's class
    differ_pixels: int  # where the heads differ, outside the excluded pixels, before the budget
    groups: dict[str, dict[str, np.ndarray]]  # the rows of each of artifacts.MASK_GROUPS


def network_outputs(networks, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A's logits and B's two heads' on a batch; B reads A's features when it shares A's backbone
    (one backbone pass), else the images."""
    segmenter, selector = networks.segmenter, networks.selector
    features = segmenter.features(images)
    logits = segmenter.classify(features)
    heads = selector(features=features) if selector.shared else selector(images)
    return logits, heads


def ranks_within_groups(group: torch.Tensor, score: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Order of the items by (group, score descending) and each item's rank inside its group."""
    by_score = torch.argsort(score, descending=True, stable=True)
    order = by_score[torch.argsort(group[by_score], stable=True)]
    counts = torch.bincount(group, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    ranks = torch.arange(order.numel(), device=order.device) - starts[group[order]]
    return order, ranks


def prototype_candidates(
    probabilities: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor, per_class: int
) -> dict:
    """PPL candidates of one image: per class, the mask pixels closest (cosine) to the class prototype.

    probabilities (C, H, W), prediction (H, W), mask (H, W) bool -> rows y, x, class, similarity,
    grouped by class, most similar first, at most ``per_class`` per class.
    """
    num_classes, _, width = probabilities.shape
    flat = mask.flatten().nonzero().squeeze(1)
    vectors = probabilities.flatten(1)[:, flat].t()  # (M, C)
    classes = prediction.flatten()[flat].long()
    sums = torch.zeros(num_classes, num_classes, device=vectors.device).index_add_(0, classes, vectors)
    prototypes = sums / torch.bincount(classes, minlength=num_classes).clamp(min=1).unsqueeze(1)
    similarity = F.cosine_similarity(vectors, prototypes[classes], dim=1)
    order, ranks = ranks_within_groups(classes, similarity, num_classes)
    keep = order[ranks < per_class]
    pixels = flat[keep]
    return {"y": pixels // width, "x": pixels % width, "class": classes[keep], "similarity": similarity[keep]}


def most_uncertain(probabilities: torch.Tensor, excluded: torch.Tensor, count: int) -> dict:
    """A's ``count`` highest-entropy pixels of one image, excluded pixels left out."""
    _, height, width = probabilities.shape
    entropy = -(probabilities * probabilities.clamp(min=1e-12).log()).sum(0)
    entropy = entropy.masked_fill(excluded, float("-inf")).flatten()
    # Excluded pixels sort last; any that reach the top ``count`` are dropped afterwards, which
    # spares a host synchronisation to count the pixels that are left.
    values, pixels = torch.topk(entropy, min(count, height * width))
    kept = values > float("-inf")
    values, pixels = values[kept], pixels[kept]
    return {"y": pixels // width, "x": pixels % width, "entropy": values}


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """``np.packbits`` of the flattened bool ``mask``, on its device: 8 pixels per byte, the first
    in the high bit, zeros after the last pixel (the masks artifact's layout, read back by
    ``artifacts.unpack_mask``; an eighth of the bytes to copy to the host)."""
    flat = mask.flatten().to(torch.uint8)
    padding = (-flat.numel()) % 8
    if padding:
        flat = torch.cat([flat, flat.new_zeros(padding)])
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=mask.device)
    return (flat.view(-1, 8) << shifts).sum(1).to(torch.uint8)


def extract_image(
    logits, head1, head2, native_size, excluded_yx, per_class: int, uncertain: int, mask_share: float = 0.0
) -> ImageMasks:
    """Everything the masks artifact keeps of one image: the mask within its budget
    ``mask_share`` (labor_cli.inconsistency), A's first and second class, and the rows of each
    group. The per-pixel work stays on the device; only the results cross to the host."""
    height, width = native_size
    # One upsampling of A's and both heads' logits, in fp32 and the plain (C, H, W) layout: a
    # channels_last network hands out channels-last logits, and every per-pixel step below
    # (softmax and argmax over classes, gathers of probability vectors) is slower on them.
    stacked = torch.cat([logits, head1, head2]).float().contiguous()
    upsampled = F.interpolate(stacked[None], size=native_size, mode="bilinear", align_corners=False)[0]
    num_classes = logits.shape[0]
    probabilities = upsampled[:num_classes].softmax(0)
    prediction = probabilities.argmax(0)
    # The runner-up: the logits' argmax with A's class masked out (softmax keeps their order).
    runner_up = upsampled[:num_classes].scatter(0, prediction[None], float("-inf")).argmax(0)
    disagree = upsampled[num_classes : 2 * num_classes].argmax(0) != upsampled[2 * num_classes :].argmax(0)
    excluded = torch.zeros(height, width, dtype=torch.bool, device=logits.device)
    if excluded_yx is not None and len(excluded_yx):
        yx = torch.as_tensor(excluded_yx, device=logits.device).long()
        excluded[yx[:, 0], yx[:, 1]] = True
    differ = disagree & ~excluded
    budget = inconsistency.budget_pixels(mask_share, height, width)
    differ_pixels = int(differ.sum())
    mask = differ
    if budget is not None and differ_pixels > budget:
        discrepancy = inconsistency.head_discrepancy(
            upsampled[num_classes : 2 * num_classes], upsampled[2 * num_classes :]
        )
        mask = inconsistency.within_budget(differ, discrepancy, budget)
    rows = {
        "candidates": prototype_candidates(probabilities, prediction, mask, per_class),
        "uncertain": most_uncertain(probabilities, excluded, uncertain),
        "excluded": {
            "y": torch.as_tensor(excluded_yx[:, 0]) if excluded_yx is not None else torch.zeros(0),
            "x": torch.as_tensor(excluded_yx[:, 1]) if excluded_yx is not None else torch.zeros(0),
        },
    }
    return ImageMasks(
        prediction=prediction.to(torch.uint8).cpu().numpy(),
        runner_up=runner_up.to(torch.uint8).cpu().numpy(),
        mask_packed=pack_bits(mask).cpu().numpy(),
        mask_by_class=torch.bincount(prediction[mask], minlength=num_classes).cpu().numpy(),
        differ_pixels=differ_pixels,
        groups={group: {name: value.cpu().numpy() for name, value in fields.items()} for group, fields in rows.items()},
    )


def batch_extractor(
    networks,
    excluded_by_id: dict[str, np.ndarray],
    image_ids: list[str],
    budgets: Budgets,
    device: torch.device,
    precision: str,
) -> Callable[[dict], list[tuple[int, ImageMasks]]]:
    """compute(batch) -> [(index, ImageMasks)]: A and B on a batch of the extraction loader
    (labor_cli.data.views), then each image's data; ``excluded_by_id``: image id -> (P, 2) (y, x)
    labeled before."""
    normalize = ImageNormalizer(device, memory_format(device))

    def compute(batch) -> list[tuple[int, ImageMasks]]:
        images = normalize(batch["image"].to(device, non_blocking=True))
        with torch.no_grad(), autocast(device, precision):
            logits, heads = network_outputs(networks, images)
        out = []
        for j, index in enumerate(batch["index"].tolist()):
            native = tuple(batch["native_size"][j].tolist())
            with torch.no_grad():
                masks = extract_image(
                    logits[j],
                    heads[0][j],
                    heads[1][j],
                    native,
                    excluded_by_id.get(image_ids[index]),
                    budgets.candidates_per_class,
                    budgets.uncertain_per_image,
                    budgets.mask_share,
                )
            out.append((index, masks))
        return out

    return compute
