"""Connected regions of a set of pixels: the unit a person answers for an SPL selection."""

from __future__ import annotations

import numpy as np

# Forward neighbours (dy, dx) of 8-connectivity: each adjacent pair is found once. SPL masks are thin
# bands along object boundaries, often one pixel wide on a diagonal, so diagonal pixels join.
_FORWARD = ((0, 1), (1, -1), (1, 0), (1, 1))


def connected_regions(y: np.ndarray, x: np.ndarray, width: int) -> np.ndarray:
    """(P,) region index of each pixel (y, x) of one image, 8-connected; regions are numbered in the
    raster order of their first pixel (top row first, then left to right)."""
    y, x = np.asarray(y, np.int64), np.asarray(x, np.int64)
    if len(y) == 0:
        return np.zeros(0, np.int64)
    keys = y * width + x
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sources, targets = [], []
    for dy, dx in _FORWARD:
        inside = (x + dx >= 0) & (x + dx < width)
        wanted = sorted_keys + dy * width + dx
        where = np.clip(np.searchsorted(sorted_keys, wanted), 0, len(keys) - 1)
        found = inside[order] & (sorted_keys[where] == wanted)
        sources.append(np.flatnonzero(found))
        targets.append(where[found])
    root = _components(len(keys), np.concatenate(sources), np.concatenate(targets))
    # In sorted (raster) order every root is its component's first pixel, so ranking roots numbers regions.
    rank = np.cumsum(root == np.arange(len(keys))) - 1
    region = np.empty(len(keys), np.int64)
    region[order] = rank[root]
    return region


def _components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (the smallest member) of each node's component, for the edges a[i]-b[i]: hooking every
    edge's larger root under its smaller one, then pointer jumping, until nothing changes."""
    root = np.arange(count, dtype=np.int64)
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
