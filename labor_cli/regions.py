"""The regions a person answers for an SPL selection: an image's selected pixels grouped into questions.

SPL asks for every pixel of B's inconsistency mask. The mask is mostly thin bands along A's class
boundaries, so its plain connected regions are many, tiny (most of one to three pixels) and often
span several classes. A person answers a region with one key, so it is grouped:

1. the 8-connected components of the selected pixels, split where A's predicted class changes
   (two touching pixels join only if A predicts the same class for both);
2. a *fragment* (a component under ``min_region`` pixels) joins the fragments of the same predicted
   class within ``reach`` pixels (Chebyshev distance), and the whole cluster joins the nearest
   component of at least ``min_region`` pixels of that class within ``reach`` (ties: the one first
   in raster order);
3. a cluster of fragments with no such neighbour stays a region of its own if it holds at least
   ``min_region`` pixels, and is dropped from the questions otherwise.

``min_region = 1`` is the faithful SPL: nothing is merged or dropped, every mask pixel is asked.
Everything here is vectorised over an image's pixels (sorted keys and ``searchsorted``); the only
loops are over a few neighbour offsets and the rounds of the union-find below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.options import DEFAULT_MIN_REGION

DEFAULT_REACH = 2  # pixels (Chebyshev): how far a fragment looks for a neighbour of its class

# Forward neighbours (dy, dx) of 8-connectivity: each adjacent pair is found once. SPL masks are thin
# bands along object boundaries, often one pixel wide on a diagonal, so diagonal pixels join.
_FORWARD = ((0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class Grouping:
    """How an image's selected pixels become regions (module docstring)."""

    split_by_class: bool = True  # False: A's classes ignored (the plain connected regions)
    min_region: int = DEFAULT_MIN_REGION
    reach: int = DEFAULT_REACH

    def record(self) -> dict:
        """As the journal header and the artifact's config keep it."""
        return {"split_by_class": self.split_by_class, "min_region": self.min_region, "reach": self.reach}

    @classmethod
    def from_record(cls, record: dict) -> Grouping:
        return cls(bool(record["split_by_class"]), int(record["min_region"]), int(record["reach"]))

    def describe(self) -> str:
        if not self.split_by_class:
            return "the mask's connected regions (A's classes ignored)"
        if self.min_region <= 1:
            return "connected regions of one predicted class, every pixel asked (--min-region 1)"
        return f"connected regions of one predicted class, fragments under {self.min_region} pixels merged or dropped"


# The regions labor annotate asked about before they were grouped (journals of version 1).
CONNECTED = Grouping(split_by_class=False, min_region=1, reach=0)


@dataclass
class ImageRegions:
    """One image's regions: ``region[p]`` is pixel p's region (-1: dropped), numbered in the raster
    order of each region's first pixel (top row first, then left to right)."""

    region: np.ndarray  # (P,) int64
    count: int
    merged_pixels: int  # pixels of fragments that joined a neighbour (rule 2)
    dropped_pixels: int  # pixels of fragments left out of the questions (rule 3)

    def sizes(self) -> np.ndarray:
        kept = self.region[self.region >= 0]
        return np.bincount(kept, minlength=self.count)


def pixel_keys(y: np.ndarray, x: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(y, np.int64) * width + np.asarray(x, np.int64)


class _Lookup:
    """Find selected pixels by position: the pixels' keys sorted once, then ``searchsorted``."""

    def __init__(self, y: np.ndarray, x: np.ndarray, width: int):
        self.x, self.width = np.asarray(x, np.int64), width
        self.keys = pixel_keys(y, x, width)
        self.order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[self.order]

    def neighbours(self, sources: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
        """(i, j): each pixel i of ``sources`` whose neighbour at (dy, dx) is selected, and that pixel j."""
        inside = (self.x[sources] + dx >= 0) & (self.x[sources] + dx < self.width)
        wanted = self.keys[sources] + dy * self.width + dx
        where = np.clip(np.searchsorted(self.sorted_keys, wanted), 0, len(self.keys) - 1)
        found = inside & (self.sorted_keys[where] == wanted)
        return sources[found], self.order[where[found]]


def connected_regions(y: np.ndarray, x: np.ndarray, width: int, classes: np.ndarray | None = None) -> np.ndarray:
    """(P,) region index of each pixel (y, x) of one image, 8-connected (two pixels join only where
    ``classes`` agree, if given), numbered in the raster order of each region's first pixel."""
    if len(y) == 0:
        return np.zeros(0, np.int64)
    return _connected(_Lookup(y, x, width), classes)


def _connected(lookup: _Lookup, classes: np.ndarray | None) -> np.ndarray:
    everyone = np.arange(len(lookup.keys))
    pairs = [lookup.neighbours(everyone, dy, dx) for dy, dx in _FORWARD]
    a = np.concatenate([pair[0] for pair in pairs])
    b = np.concatenate([pair[1] for pair in pairs])
    if classes is not None:
        classes = np.asarray(classes)
        same = classes[a] == classes[b]
        a, b = a[same], b[same]
    return _raster_numbered(components(len(everyone), a, b), lookup.order)


def _raster_numbered(label: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Labels (any integers, -1 = none) renumbered 0, 1, ... in the raster order of their first pixel
    (``order``: the pixels in raster order)."""
    ranked = label[order]
    kept = label >= 0
    values, first = np.unique(ranked[ranked >= 0], return_index=True)  # first: in raster order
    rank = np.empty(len(values), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(values))
    result = np.full(len(label), -1, np.int64)
    result[kept] = rank[np.searchsorted(values, label[kept])]
    return result


def components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (the smallest member) of each node's component, for the edges a[i]-b[i]: hooking every
    edge's larger root under its smaller one, then pointer jumping, until nothing changes."""
    root = np.arange(count, dtype=np.int64)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while True:
        ra, rb = root[a], root[b]
        low = np.minimum(ra, rb)
        before = root.copy()
        np.minimum.at(root, ra, low)
        np.minimum.at(root, rb, low)
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
        if np.array_equal(root, before):
            return root


def group_regions(
    y: np.ndarray, x: np.ndarray, classes: np.ndarray | None, width: int, grouping: Grouping = Grouping()
) -> ImageRegions:
    """One image's selected pixels (y, x) and A's class at each (None: unknown, so not split) as the
    regions a person answers (module docstring)."""
    y, x = np.asarray(y, np.int64), np.asarray(x, np.int64)
    if len(y) == 0:
        return ImageRegions(np.zeros(0, np.int64), 0, 0, 0)
    split = grouping.split_by_class and classes is not None
    classes = np.asarray(classes, np.int64) if split else np.zeros(len(y), np.int64)
    lookup = _Lookup(y, x, width)
    component = _connected(lookup, classes if split else None)
    sizes = np.bincount(component)
    small = sizes < grouping.min_region
    if not small.any():
        return ImageRegions(component, len(sizes), 0, 0)
    target = _fragment_targets(lookup, component, classes, sizes, grouping)
    fragment_pixels = small[component]
    kept = target[component] >= 0
    region = _raster_numbered(np.where(kept, target[component], -1), lookup.order)
    return ImageRegions(
        region=region,
        count=int(region.max()) + 1 if kept.any() else 0,
        merged_pixels=int((fragment_pixels & kept).sum()),
        dropped_pixels=int((fragment_pixels & ~kept).sum()),
    )


def _fragment_targets(
    lookup: _Lookup, component: np.ndarray, classes: np.ndarray, sizes: np.ndarray, grouping: Grouping
) -> np.ndarray:
    """(C,) the component each component's pixels end up in: itself for a large one; for a fragment,
    the nearest large neighbour of its cluster, or the cluster's root, or -1 (dropped)."""
    small = sizes < grouping.min_region
    sources = np.flatnonzero(small[component])
    a_parts, b_parts, distance_parts = [], [], []
    reach = max(0, grouping.reach)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy or dx:
                a, b = lookup.neighbours(sources, dy, dx)
                same = (classes[a] == classes[b]) & (component[a] != component[b])
                a_parts.append(component[a[same]]), b_parts.append(component[b[same]])
                distance_parts.append(np.full(int(same.sum()), max(abs(dy), abs(dx)), np.int64))
    near_a = np.concatenate(a_parts + [np.zeros(0, np.int64)])
    near_b = np.concatenate(b_parts + [np.zeros(0, np.int64)])
    distance = np.concatenate(distance_parts + [np.zeros(0, np.int64)])
    # Fragments near each other form clusters (a fragment's root: the cluster's first component).
    both_small = small[near_b]
    cluster = components(len(sizes), near_a[both_small], near_b[both_small])
    target = np.where(small, -1, np.arange(len(sizes)))
    # Each cluster joins its nearest large neighbour (ties: the first in raster order, the lowest number).
    to_large = ~both_small
    pair_cluster, pair_large, pair_distance = cluster[near_a[to_large]], near_b[to_large], distance[to_large]
    best = np.lexsort((pair_large, pair_distance, pair_cluster))
    chosen_clusters, first = np.unique(pair_cluster[best], return_index=True)
    joined = np.full(len(sizes), -1, np.int64)
    joined[chosen_clusters] = pair_large[best][first]
    cluster_size = np.bincount(cluster, weights=np.where(small, sizes, 0), minlength=len(sizes))
    fragment = np.flatnonzero(small)
    root = cluster[fragment]
    own = np.where(cluster_size[root] >= grouping.min_region, root, -1)
    target[fragment] = np.where(joined[root] >= 0, joined[root], own)
    return target


def unit_of_mode(mode: str | None) -> str:
    """What a person answers for a selection of this `labor select --mode`: SPL regions, else points."""
    return "region" if mode == "spl" else "point"


@dataclass
class RegionCounts:
    """What grouping a selection costs and moves, summed over its images (``add`` one at a time).
    With the ground truth at the pixels, also how many regions span more than one of its classes."""

    grouping: Grouping
    images: int = 0
    pixels: int = 0  # selected pixels
    regions: int = 0  # questions after grouping
    single_pixel: int = 0  # regions of one pixel
    merged_pixels: int = 0
    dropped_pixels: int = 0
    mixed: int | None = None  # regions whose pixels hold more than one ground-truth class (ignored left out)
    mixed_pixels: int | None = None
    minority_pixels: int | None = None  # pixels wrong if each region is given its commonest true class
    per_image: list[int] = field(default_factory=list)

    def add(self, found: ImageRegions, truth: np.ndarray | None = None) -> None:
        self.images += 1
        self.pixels += len(found.region)
        self.regions += found.count
        sizes = found.sizes()
        self.single_pixel += int((sizes == 1).sum())
        self.merged_pixels += found.merged_pixels
        self.dropped_pixels += found.dropped_pixels
        self.per_image.append(found.count)
        if truth is not None:
            self._add_truth(found, sizes, np.asarray(truth, np.int64))

    def _add_truth(self, found: ImageRegions, sizes: np.ndarray, truth: np.ndarray) -> None:
        known = (found.region >= 0) & (truth != IGNORE_INDEX)
        votes = np.bincount(found.region[known] * 256 + truth[known], minlength=found.count * 256).reshape(
            found.count, 256
        )
        classes = (votes > 0).sum(1)
        self.mixed = (self.mixed or 0) + int((classes > 1).sum())
        self.mixed_pixels = (self.mixed_pixels or 0) + int(sizes[classes > 1].sum())
        self.minority_pixels = (self.minority_pixels or 0) + int(known.sum() - votes.max(1, initial=0).sum())

    @property
    def regions_per_image(self) -> float:
        return self.regions / self.images if self.images else 0.0

    @property
    def pixels_per_image(self) -> float:
        return self.pixels / self.images if self.images else 0.0

    def describe(self) -> str:
        """One line: the regions, how many a person answers per image, what grouping moved, and how mixed
        they are (with the ground truth)."""
        line = (
            f"{_count(self.pixels, 'pixel')} grouped into {_count(self.regions, 'region')} "
            f"({self.regions_per_image:.1f} per image), {self.grouping.describe()}"
        )
        if self.merged_pixels or self.dropped_pixels:
            line += (
                f"; {_count(self.merged_pixels, 'pixel')} merged into a neighbour, "
                f"{_count(self.dropped_pixels, 'pixel')} left out"
            )
        if self.mixed is not None and self.regions:
            asked = self.pixels - self.dropped_pixels
            line += (
                f"; {_count(self.mixed, 'region')} ({100 * self.mixed / self.regions:.1f}%) "
                f"span{'s' if self.mixed == 1 else ''} more than one true class, "
                f"{100 * self.minority_pixels / max(asked, 1):.1f}% of the asked pixels are off their region's "
                "commonest true class"
            )
        return line

    def summary(self) -> dict:
        truth = {}
        if self.mixed is not None:
            truth = {
                "regions_spanning_classes": self.mixed,
                "pixels_in_such_regions": self.mixed_pixels,
                "pixels_off_the_commonest_class": self.minority_pixels,
            }
        return {
            "grouping": self.grouping.record(),
            "images": self.images,
            "pixels": self.pixels,
            "regions": self.regions,
            "regions_per_image": round(self.regions_per_image, 3),
            "single_pixel_regions": self.single_pixel,
            "merged_pixels": self.merged_pixels,
            "dropped_pixels": self.dropped_pixels,
            **truth,
        }


def count_regions(pixels, grouping: Grouping, truth: np.ndarray | None = None) -> RegionCounts:
    """The regions of every image of a pixel set (a selection: y, x, predicted, sizes, offsets);
    ``truth``: the ground-truth class at each of its pixels (255 ignored), for the mixing figures."""
    counts = RegionCounts(grouping)
    for i in range(len(pixels.image_ids)):
        rows = pixels.pixels_of(i)
        classes = None if pixels.predicted is None else pixels.predicted[rows]
        found = group_regions(pixels.y[rows], pixels.x[rows], classes, int(pixels.sizes[i][1]), grouping)
        counts.add(found, None if truth is None else truth[rows])
    return counts


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
