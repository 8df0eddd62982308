"""What the stages do with pixel sets: selections and labels.

labor_cli.artifacts.pixel_sets stores them; here are checks of an artifact's kind, class names and pixels (inside their images, each
listed once), its images matched with a dataset's by id and size, the answer statistics label
and import share, and the set operations of the rounds (a merge, images left out)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.artifacts import PixelSet
from labor_cli.data.labels import IGNORE_INDEX
from labor_cli.data.labels import class_names as known_class_names
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.selection import linear_index
from labor_cli.selection_report import wrong_and_known

# --- checks --------------------------------------------------------------------------------------


def artifact_kind(path: Path) -> str:
    with artifacts.read_any(path) as f:
        return str(f.attrs["labor_kind"])


def check_class_names(pixels: PixelSet, path: Path) -> None:
    """The artifact's class names must be those of its class set (a known one)."""
    try:
        expected = list(known_class_names(pixels.class_set))
    except LaborUsageError:
        raise LaborError(f"{path}: unknown class set {pixels.class_set!r}") from None
    if list(pixels.class_names) != expected:
        raise LaborError(f"{path}: its class names do not match the class set {pixels.class_set}")


def image_of_rows(pixels: PixelSet) -> np.ndarray:
    """(P,) index of the image each pixel row belongs to."""
    return np.repeat(np.arange(len(pixels.image_ids)), pixels.counts())


def pixel_keys(sizes: np.ndarray, image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One int64 per pixel (y, x) of image ``image``, unique over all pixels of all images
    (each pixel must lie inside its image)."""
    if not len(sizes):
        return np.zeros(0, np.int64)
    shape = (len(sizes), int(sizes[:, 0].max()), int(sizes[:, 1].max()))
    return np.ravel_multi_index((np.asarray(image, np.int64), np.asarray(y, np.int64), np.asarray(x, np.int64)), shape)


def check_pixels(pixels: PixelSet, path: Path, kind: str) -> None:
    """Every pixel inside its image, none listed twice in the same image."""
    counts = pixels.counts()
    if (counts < 0).any():
        raise LaborError(f"{path}: damaged {kind} artifact: offsets are not increasing")
    image = image_of_rows(pixels)
    heights = pixels.sizes[image, 0].astype(np.int64)
    widths = pixels.sizes[image, 1].astype(np.int64)
    y, x = pixels.y.astype(np.int64), pixels.x.astype(np.int64)
    outside = (y < 0) | (y >= heights) | (x < 0) | (x >= widths)
    if outside.any():
        r = int(np.argmax(outside))
        raise LaborError(
            f"{path}: damaged {kind} artifact: pixel (x={x[r]}, y={y[r]}) is outside image "
            f"{pixels.image_ids[image[r]]!r} ({widths[r]}x{heights[r]})"
        )
    keys = pixel_keys(pixels.sizes, image, y, x)
    order = np.argsort(keys, kind="stable")
    repeated = keys[order][1:] == keys[order][:-1]
    if repeated.any():
        r = int(order[1:][np.argmax(repeated)])
        raise LaborError(
            f"{path}: damaged {kind} artifact: pixel (x={x[r]}, y={y[r]}) of image "
            f"{pixels.image_ids[image[r]]!r} is listed twice"
        )


def read_checked_pixel_set(path: Path, kind: str) -> PixelSet:
    """A selection or labels artifact, its class names and pixels checked."""
    pixels = artifacts.read_pixel_set(path, kind)
    check_class_names(pixels, path)
    check_pixels(pixels, path, kind)
    return pixels


def dataset_indices(image_ids: list[str], sizes: np.ndarray, path: Path, dataset) -> list[int]:
    """The dataset index of each image of an artifact; every id must exist and sizes must agree."""
    indices = []
    for i, image_id in enumerate(image_ids):
        try:
            index = dataset.index_of(image_id)
        except LaborError:
            raise LaborError(f"{path}: image {image_id!r} is not in {dataset.spec} split {dataset.split!r}") from None
        width, height = dataset.image_size(index)
        expected_height, expected_width = (int(v) for v in sizes[i])
        if (height, width) != (expected_height, expected_width):
            raise LaborError(
                f"{path}: image {image_id!r} is {expected_width}x{expected_height} there but "
                f"{width}x{height} in {dataset.spec}"
            )
        indices.append(index)
    return indices


# --- answers and rounds ------------------------------------------------------------------


def answered_selection(chosen: PixelSet, label: np.ndarray, predicted: np.ndarray | None) -> PixelSet:
    """A selection's pixels with their answers: the pixel set a labels artifact stores."""
    return dataclasses.replace(chosen, label=label, predicted=predicted, parent=None)


def per_class_counts(label: np.ndarray, names: list[str]) -> dict[str, int]:
    label = np.asarray(label)
    counts = np.bincount(label[label != IGNORE_INDEX].astype(np.int64), minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts[: len(names)])}


def error_rate(predicted: np.ndarray | None, label: np.ndarray) -> float | None:
    """Percent of pixels with a known ground truth and a known prediction where A is wrong."""
    if predicted is None:
        return None
    wrong, known = wrong_and_known(predicted, label)
    return 100.0 * wrong / known if known else None


def without_images(pixels: PixelSet, image_ids: set[str]) -> PixelSet:
    """The pixel set less the given images (--skip-bad left them out of the dataset)."""
    keep = [i for i, image_id in enumerate(pixels.image_ids) if image_id not in image_ids]
    rows = np.concatenate([np.arange(pixels.offsets[i], pixels.offsets[i + 1]) for i in keep] + [np.zeros(0, np.int64)])
    counts = np.diff(pixels.offsets)[keep]

    def pick(values):
        return None if values is None else values[rows]

    return dataclasses.replace(
        pixels,
        image_ids=[pixels.image_ids[i] for i in keep],
        sizes=pixels.sizes[keep],
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=pick(pixels.y),
        x=pick(pixels.x),
        label=pick(pixels.label),
        predicted=pick(pixels.predicted),
    )


def read_earlier_labels(merge: Path, chosen: PixelSet, selection: Path) -> PixelSet:
    """--merge: the labels of earlier rounds, of the selection's class set."""
    earlier = artifacts.read_pixel_set(merge, "labels")
    if earlier.class_set != chosen.class_set:
        raise LaborError(
            f"{merge}: labels use class set {earlier.class_set}, but the selection {selection} uses {chosen.class_set}"
        )
    check_class_names(earlier, merge)
    check_pixels(earlier, merge, "labels")
    return earlier


def merge_pixel_sets(earlier: PixelSet, fresh: PixelSet, index_of) -> tuple[PixelSet, int]:
    """The union of two labels sets: images of both in the dataset's order (``index_of``); per
    image the earlier pixels first, then the new ones not already there (the earlier answer wins).
    Returns the union and how many new pixels were already labeled."""
    earlier_at = {image_id: i for i, image_id in enumerate(earlier.image_ids)}
    fresh_at = {image_id: i for i, image_id in enumerate(fresh.image_ids)}
    order = sorted(set(earlier_at) | set(fresh_at), key=index_of)
    keep_predicted = earlier.predicted is not None or fresh.predicted is not None

    def predicted_of(pixels: PixelSet, rows: slice) -> np.ndarray:
        if pixels.predicted is None:
            return np.full(rows.stop - rows.start, IGNORE_INDEX, dtype=np.uint8)
        return np.asarray(pixels.predicted[rows], dtype=np.uint8)

    sizes, counts, ys, xs, labels, predicted = [], [], [], [], [], []
    already = 0
    for image_id in order:
        parts = 0
        if image_id in earlier_at:
            i = earlier_at[image_id]
            rows = earlier.pixels_of(i)
            size = earlier.sizes[i]
            ys.append(earlier.y[rows]), xs.append(earlier.x[rows]), labels.append(earlier.label[rows])
            predicted.append(predicted_of(earlier, rows))
            parts += rows.stop - rows.start
        if image_id in fresh_at:
            j = fresh_at[image_id]
            rows = fresh.pixels_of(j)
            size = fresh.sizes[j]
            new = np.ones(rows.stop - rows.start, dtype=bool)
            if image_id in earlier_at:
                old_rows = earlier.pixels_of(earlier_at[image_id])
                new = ~np.isin(
                    linear_index(fresh.y[rows], fresh.x[rows], size),
                    linear_index(earlier.y[old_rows], earlier.x[old_rows], size),
                )
                already += int((~new).sum())
            ys.append(fresh.y[rows][new]), xs.append(fresh.x[rows][new]), labels.append(fresh.label[rows][new])
            predicted.append(predicted_of(fresh, rows)[new])
            parts += int(new.sum())
        sizes.append(size)
        counts.append(parts)

    def joined(parts: list, dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    union = PixelSet(
        image_ids=order,
        sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        y=joined(ys, np.int32),
        x=joined(xs, np.int32),
        label=joined(labels, np.uint8),
        class_set=fresh.class_set,
        class_names=list(fresh.class_names),
        predicted=joined(predicted, np.uint8) if keep_predicted else None,
    )
    return union, already
