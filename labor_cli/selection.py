"""Which pixels to ask the annotator about: pure numpy, one image at a time, no loop over points.

Every function here works on one image in its own pixel grid (H, W) and returns the chosen
pixels in priority order (the first one is the one the mode wants most). The stage
(labor_cli/stages/select.py) reads the masks artifact and writes the selection artifact.

- :func:`spl_pixels`: segment-based pixel labeling, every pixel of the inconsistency mask.
- :func:`ppl_pick`: the paper's prototype rule (docs/method.md): points dealt to classes round-robin, each class
  giving its next most representative candidate (cosine similarity to the class prototype).
- :func:`random_pick`: uniform over the image's pixels, never an excluded one.
- :func:`balanced_pick`: ours: uniform within each predicted class, budgets proportional to the
  class's area to a power, each class's budget split again over its runner-up classes when they
  are given (docs/method.md, "Selection modes beyond the paper").
- :func:`entropy_pick`: A's most uncertain pixels, highest entropy first.

Minimum spacing (:func:`pick_spaced`) is a preference, the budget is exact: among the first
``SPACING_POOL_FACTOR * n`` candidates in priority order, every candidate with a higher-priority
candidate closer than ``min_spacing`` is dropped (non-chained suppression, so the survivors are
pairwise at least ``min_spacing`` apart); if fewer than ``n`` survive, the dropped ones are added
back in priority order until there are exactly ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# How far down the priority list minimum spacing may look for replacements: pool = factor * n.
SPACING_POOL_FACTOR = 4

# Memory bound of one block of the pairwise distance test (entries of the block's matrix).
_PAIRWISE_BLOCK = 1 << 22


@dataclass
class Chosen:
    """The chosen pixels of one image, in priority order."""

    y: np.ndarray  # (n,) int32
    x: np.ndarray  # (n,) int32
    spacing_relaxed: bool = False  # min spacing could not be kept: some points were added back closer
    predicted: np.ndarray | None = None  # A's class at each pixel, when the mode already knows it (ppl)

    def __len__(self) -> int:
        return len(self.y)


def linear_index(y: np.ndarray, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Row-major pixel index; ValueError for a coordinate outside the image."""
    height, width = int(shape[0]), int(shape[1])
    y = np.asarray(y, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    if len(y) and (y.min() < 0 or x.min() < 0 or y.max() >= height or x.max() >= width):
        raise ValueError(f"pixel coordinates outside the {height}x{width} image")
    return y * width + x


def excluded_linear(masks, i: int, shape: tuple[int, int]) -> np.ndarray:
    """Image i's pixels labeled in earlier rounds (a masks artifact's ``excluded`` rows, read
    with ``artifacts.Masks``), as sorted linear indices."""
    rows = masks.rows("excluded", i)
    return np.unique(linear_index(rows["y"], rows["x"], shape))


def usable(y: np.ndarray, x: np.ndarray, shape: tuple[int, int], excluded: np.ndarray | None = None) -> np.ndarray:
    """Boolean keep-mask: not an excluded pixel (linear indices) and not a repeat of an earlier row."""
    linear = linear_index(y, x, shape)
    keep = np.zeros(len(linear), dtype=bool)
    _, first = np.unique(linear, return_index=True)
    keep[first] = True
    if excluded is not None and len(excluded):
        keep &= ~np.isin(linear, excluded)
    return keep


def ratio_count(ratio: float, shape: tuple[int, int]) -> int:
    """The number of pixels a ratio (fraction of the image's pixels) asks for, rounded."""
    return int(round(ratio * int(shape[0]) * int(shape[1])))


# --- minimum spacing ------------------------------------------------------------------------


def _disk_offsets(min_spacing: float) -> np.ndarray:
    """(dy, dx) with 0 < dy^2 + dx^2 < min_spacing^2."""
    reach = max(0, math.ceil(min_spacing) - 1)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = (dy * dy + dx * dx < min_spacing * min_spacing) & ((dy != 0) | (dx != 0))
    return np.stack([dy[inside], dx[inside]], axis=1)


def _suppressed_pairwise(y: np.ndarray, x: np.ndarray, min_spacing: float) -> np.ndarray:
    count = len(y)
    y = y.astype(np.int64)
    x = x.astype(np.int64)
    limit = float(min_spacing) ** 2
    dropped = np.zeros(count, dtype=bool)
    block = max(1, _PAIRWISE_BLOCK // max(count, 1))
    for start in range(0, count, block):  # blocks bound the memory; one block up to ~2,000 points
        stop = min(count, start + block)
        dy = y[start:stop, None] - y[None, :stop]
        dx = x[start:stop, None] - x[None, :stop]
        close = dy * dy + dx * dx < limit
        close &= np.arange(stop)[None, :] < np.arange(start, stop)[:, None]  # higher priority only
        dropped[start:stop] = close.any(axis=1)
    return dropped


def _suppressed_raster(y: np.ndarray, x: np.ndarray, min_spacing: float, shape: tuple[int, int]) -> np.ndarray:
    """Same answer through a priority image: one vectorised lookup per offset of the disk."""
    count = len(y)
    pad = math.ceil(min_spacing)
    rank = np.full((int(shape[0]) + 2 * pad, int(shape[1]) + 2 * pad), count, dtype=np.int64)
    yy = y.astype(np.int64) + pad
    xx = x.astype(np.int64) + pad
    order = np.arange(count)
    rank[yy, xx] = order
    dropped = np.zeros(count, dtype=bool)
    for dy, dx in _disk_offsets(min_spacing):  # loop over the disk's offsets, not over points
        dropped |= rank[yy + dy, xx + dx] < order
    return dropped


def suppressed(y: np.ndarray, x: np.ndarray, min_spacing: float, shape: tuple[int, int]) -> np.ndarray:
    """For distinct pixels in priority order: True where a higher-priority pixel is closer than min_spacing."""
    count = len(y)
    if count < 2 or min_spacing <= 1.0:  # distinct integer pixels are at least 1 apart
        return np.zeros(count, dtype=bool)
    pairwise_cost = count * count / 2
    disk = math.pi * min_spacing * min_spacing
    raster_cost = count * disk + (shape[0] + 2 * min_spacing) * (shape[1] + 2 * min_spacing) / 8
    if pairwise_cost <= raster_cost:
        return _suppressed_pairwise(y, x, min_spacing)
    return _suppressed_raster(y, x, min_spacing, shape)


def pick_spaced(
    y: np.ndarray,
    x: np.ndarray,
    n: int,
    min_spacing: float,
    shape: tuple[int, int],
    pool_factor: int = SPACING_POOL_FACTOR,
) -> tuple[np.ndarray, bool]:
    """Indices (ascending = priority order) of exactly min(n, len(y)) of these distinct pixels.

    Returns the indices and whether spacing had to be relaxed to meet the budget.
    """
    total = len(y)
    if n >= total:
        return np.arange(total), False
    if n <= 0:
        return np.arange(0), False
    if min_spacing <= 1.0 or n == 1:
        return np.arange(n), False
    pool = min(total, pool_factor * n)
    dropped = suppressed(y[:pool], x[:pool], min_spacing, shape)
    kept = np.flatnonzero(~dropped)
    if len(kept) >= n:
        return kept[:n], False
    added = np.flatnonzero(dropped)[: n - len(kept)]
    return np.sort(np.concatenate([kept, added])), True


# --- the modes ------------------------------------------------------------------------------


def spl_pixels(mask: np.ndarray, excluded: np.ndarray | None = None) -> Chosen:
    """Every pixel of the (H, W) boolean mask, row-major, minus excluded linear indices."""
    linear = np.flatnonzero(mask.reshape(-1))
    if excluded is not None and len(excluded):
        linear = linear[~np.isin(linear, excluded)]
    y, x = np.divmod(linear, mask.shape[1])
    return Chosen(y.astype(np.int32), x.astype(np.int32))


def round_robin_order(classes: np.ndarray, similarity: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Candidate indices in dealing order (only the first ``limit`` of them when given).

    Round r holds each class's r-th most similar candidate; within a round, higher similarity
    first; ties by class index, then by the candidates' stored order.
    """
    count = len(classes)
    classes = np.asarray(classes, dtype=np.int64)
    similarity = np.asarray(similarity, dtype=np.float64)
    by_class = np.lexsort((-similarity, classes))  # lexsort is stable: stored order breaks ties
    sorted_classes = classes[by_class]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]]) if count else by_class
    rank = np.empty(count, dtype=np.int64)
    rank[by_class] = np.arange(count) - np.repeat(starts, np.diff(np.r_[starts, count]))
    # The first `limit` dealt come from rounds < limit: sort only those.
    rows = np.flatnonzero(rank < limit) if limit is not None and limit < count else np.arange(count)
    order = rows[np.lexsort((classes[rows], -similarity[rows], rank[rows]))]
    return order if limit is None else order[:limit]


def _usable_prefix(order: np.ndarray, y: np.ndarray, x: np.ndarray, wanted: int, shape, excluded) -> np.ndarray:
    """The rows of ``order`` (a priority order) that are usable, enough of them for ``wanted`` (or all).

    Cleans a prefix of the order and doubles it until it holds ``wanted`` usable rows: keeping
    a pixel's first occurrence in a prefix is the same as keeping it in the whole order.
    """
    take = max(int(wanted), 1)
    while True:
        prefix = order[:take]
        keep = usable(y[prefix], x[prefix], shape, excluded)
        if keep.sum() >= wanted or take >= len(order):
            return prefix[keep]
        take *= 2


@dataclass
class PrototypeCandidates:
    """One image's PPL candidates (a masks artifact's ``candidates`` rows): pixel, A's class there,
    cosine similarity to that class's prototype."""

    y: np.ndarray
    x: np.ndarray
    classes: np.ndarray
    similarity: np.ndarray

    @classmethod
    def from_rows(cls, rows: dict[str, np.ndarray]) -> PrototypeCandidates:
        """From ``artifacts.Masks.rows("candidates", i)``."""
        return cls(rows["y"], rows["x"], rows["class"], rows["similarity"])


def ppl_pick(
    candidates: PrototypeCandidates,
    n: int,
    shape: tuple[int, int],
    min_spacing: float = 0.0,
    excluded: np.ndarray | None = None,
    pool_factor: int = SPACING_POOL_FACTOR,
) -> Chosen:
    """PPL: n points dealt to classes round-robin from the prototype candidates (fewer if fewer exist).

    ``Chosen.predicted`` is the chosen candidates' class: A's prediction there, by the masks contract.
    """
    classes, similarity = np.asarray(candidates.classes), candidates.similarity
    wanted = n if min_spacing <= 1.0 else pool_factor * n
    y, x = np.asarray(candidates.y), np.asarray(candidates.x)
    limit = max(int(wanted), 1)
    while True:  # deal a few rounds at a time; more only if cleaning removed rows (rare)
        order = round_robin_order(classes, similarity, limit)
        rows = _usable_prefix(order, y, x, wanted, shape, excluded)
        if len(rows) >= wanted or len(order) >= len(classes):
            break
        limit *= 2
    chosen, relaxed = pick_spaced(y[rows], x[rows], n, min_spacing, shape, pool_factor)
    rows = rows[chosen]
    return Chosen(y[rows].astype(np.int32), x[rows].astype(np.int32), relaxed, classes[rows].astype(np.uint8))


def entropy_pick(
    y: np.ndarray,
    x: np.ndarray,
    entropy: np.ndarray,
    n: int,
    shape: tuple[int, int],
    min_spacing: float = 0.0,
    excluded: np.ndarray | None = None,
    pool_factor: int = SPACING_POOL_FACTOR,
) -> Chosen:
    """The n highest-entropy pixels (stored order breaks ties), with optional minimum spacing."""
    order = np.argsort(-np.asarray(entropy, dtype=np.float64), kind="stable")
    y, x = np.asarray(y), np.asarray(x)
    rows = _usable_prefix(order, y, x, n if min_spacing <= 1.0 else pool_factor * n, shape, excluded)
    chosen, relaxed = pick_spaced(y[rows], x[rows], n, min_spacing, shape, pool_factor)
    rows = rows[chosen]
    return Chosen(y[rows].astype(np.int32), x[rows].astype(np.int32), relaxed)


def random_pick(
    shape: tuple[int, int],
    n: int,
    rng: np.random.Generator,
    min_spacing: float = 0.0,
    excluded: np.ndarray | None = None,
    pool_factor: int = SPACING_POOL_FACTOR,
) -> Chosen:
    """n distinct pixels drawn uniformly among those not excluded (all of them if fewer remain)."""
    height, width = int(shape[0]), int(shape[1])
    skipped = np.unique(np.asarray(excluded, dtype=np.int64)) if excluded is not None else np.zeros(0, np.int64)
    skipped = skipped[(skipped >= 0) & (skipped < height * width)]
    available = height * width - len(skipped)
    wanted = min(int(n), available)
    draws = wanted if min_spacing <= 1.0 else min(available, pool_factor * wanted)
    sample = rng.choice(available, size=draws, replace=False).astype(np.int64)
    # Map 0..available-1 onto the pixels that are not excluded, in order, without a full-image mask.
    linear = sample + np.searchsorted(skipped - np.arange(len(skipped)), sample, side="right")
    y, x = np.divmod(linear, width)
    chosen, relaxed = pick_spaced(y, x, wanted, min_spacing, shape, pool_factor)
    return Chosen(y[chosen].astype(np.int32), x[chosen].astype(np.int32), relaxed)


def image_rng(seed: int, image_index: int) -> np.random.Generator:
    """One independent, reproducible stream per image: image i's draw does not depend on the others."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(image_index)]))


# --- balanced: this project's own mode (docs/method.md, "Selection modes beyond the paper") ----


def class_budgets(areas: np.ndarray, n: int, power: float) -> np.ndarray:
    """Split ``n`` pixels over classes in proportion to ``areas ** power``, exactly.

    Largest remainders round the shares; a class never gets more than its area, and what a full
    class cannot take goes to the others, again by their weights. power 1 is area-proportional
    (what a uniform draw does on average), power 0 the same number for every present class.
    """
    areas = np.asarray(areas, dtype=np.int64)
    budgets = np.zeros(len(areas), dtype=np.int64)
    left = min(int(n), int(areas.sum()))
    while left > 0:
        open_ = areas > budgets
        weights = np.where(open_, np.asarray(areas, dtype=np.float64) ** power, 0.0)
        quota = weights / weights.sum() * left
        share = np.floor(quota).astype(np.int64)
        extra = left - int(share.sum())
        share[np.argsort(-(quota - share), kind="stable")[:extra]] += 1
        share = np.minimum(share, areas - budgets)  # a full class passes its surplus on next round
        budgets += share
        left -= int(share.sum())
    return budgets


def balanced_pick(
    prediction: np.ndarray,
    n: int,
    rng: np.random.Generator,
    power: float = 0.5,
    min_spacing: float = 0.0,
    excluded: np.ndarray | None = None,
    pool_factor: int = SPACING_POOL_FACTOR,
    runner_up: np.ndarray | None = None,
) -> Chosen:
    """n pixels drawn uniformly within each of A's predicted classes, with class budgets
    proportional to the class's area to the power ``power`` (:func:`class_budgets`).

    A uniform draw gives a class points in proportion to its area, so a class A predicts on a
    few hundred pixels gets almost none; power 0.5 gives it more at the expense of the large
    classes (road, building, sky) while every class keeps points all over its area, confident
    errors included. With ``runner_up`` (A's second class per pixel), each class's budget is
    split again over the class's pixels grouped by their runner-up class, with the same shares
    rounded at random (:func:`sampled_budgets`): a class's area splits by what A would say
    otherwise. The class budgets come first, so a class split into many runner-up groups gets no
    more than its own budget. Excluded pixels are never chosen; the result is grouped by class.
    """
    height, width = prediction.shape
    available = np.ones(prediction.size, dtype=bool)
    if excluded is not None and len(excluded):
        available[np.asarray(excluded, dtype=np.int64)] = False
    pixels = np.flatnonzero(available)
    ys, xs, relaxed = [], [], False
    for members, budget in _split(pixels, prediction.reshape(-1)[pixels], n, power):
        groups = [(members, budget)]
        if runner_up is not None:
            groups = _split(members, runner_up.reshape(-1)[members], budget, power, rng)
        for group, group_budget in groups:
            area = len(group)
            draws = group_budget if min_spacing <= 1.0 else min(area, pool_factor * group_budget)
            linear = group[rng.choice(area, size=draws, replace=False)]
            y, x = np.divmod(linear, width)
            kept, was_relaxed = pick_spaced(y, x, group_budget, min_spacing, (height, width), pool_factor)
            ys.append(y[kept])
            xs.append(x[kept])
            relaxed |= was_relaxed
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    x = np.concatenate(xs) if xs else np.zeros(0, np.int64)
    return Chosen(y.astype(np.int32), x.astype(np.int32), relaxed, prediction[y, x].astype(np.uint8))


def _split(
    pixels: np.ndarray, keys: np.ndarray, n: int, power: float, rng: np.random.Generator | None = None
) -> list[tuple[np.ndarray, int]]:
    """The pixels grouped by key (ascending), each group with its share of n: :func:`class_budgets`,
    or with ``rng`` :func:`sampled_budgets`; groups with no share are left out."""
    order = np.argsort(keys, kind="stable")
    _, starts, areas = np.unique(keys[order], return_index=True, return_counts=True)
    budgets = class_budgets(areas, n, power) if rng is None else sampled_budgets(areas, n, power, rng)
    return [
        (pixels[order[start : start + area]], int(budget))
        for start, area, budget in zip(starts, areas, budgets)
        if budget > 0
    ]


def group_shares(areas: np.ndarray, n: int, power: float) -> np.ndarray:
    """Unrounded shares of ``n``, by :func:`class_budgets`'s rule: proportional to
    ``areas ** power``, none above its area, what a full group cannot take going to the others
    (class_budgets rounds pass by pass, so where a cap is hit its result may differ by one)."""
    areas = np.asarray(areas, dtype=np.float64)
    total = min(float(n), float(areas.sum()))
    shares = np.zeros(len(areas))
    left = total
    for _ in range(len(areas)):  # each pass fills every group or caps one more
        weights = np.where(shares < areas, areas**power, 0.0)
        shares = np.minimum(shares + weights / weights.sum() * left, areas)
        left = total - shares.sum()
        if left <= 1e-9:
            break
    return shares


def sampled_budgets(areas: np.ndarray, n: int, power: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`group_shares` rounded at random (systematic sampling: one uniform offset): each group
    gets the floor or the ceiling of its share, exactly n in all, and its share on average.

    Largest remainders would give a budget smaller than the number of groups to the largest
    groups every time; in rounds of a few points that is the same kind of pixel round after round.
    """
    shares = group_shares(areas, n, power)
    edges = np.concatenate([[0.0], np.cumsum(shares)])
    edges[-1] = round(edges[-1])  # the total is a whole number; drop the sum's rounding error
    return np.diff(np.floor(edges + rng.random())).astype(np.int64)
