"""Checks shared by the stages that read pixel sets (label, export, import, show): the artifact's
kind and class names, its pixels inside their images and each listed once, and its images
matched with the dataset's by id and size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.artifacts import PixelSet
from labor_cli.data.labels import class_names as known_class_names
from labor_cli.errors import LaborError, LaborUsageError


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
