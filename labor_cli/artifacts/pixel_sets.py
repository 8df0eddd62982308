"""Sparse pixel sets: the selection artifact (pixels to ask about) and labels (their answers).

Per image i, its pixels are rows offsets[i]:offsets[i+1] of the flat arrays y, x (and label),
in the image's own pixel grid (what an annotator sees), never in a resized training grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from labor_cli.artifacts.provenance import (
    Parent,
    check_offsets,
    check_pixels,
    open_artifact,
    read_class_names,
    read_class_set,
    read_image_ids,
    read_sizes,
    write_image_ids,
)
from labor_cli.errors import LaborError


@dataclass
class PixelSet:
    image_ids: list[str]
    sizes: np.ndarray  # (N, 2) int32: native (H, W) of each image
    offsets: np.ndarray  # (N + 1,) int64
    y: np.ndarray  # (P,) int32
    x: np.ndarray  # (P,) int32
    label: np.ndarray | None  # (P,) uint8 class index, 255 = ignored in the ground truth; None for a selection
    class_set: str
    class_names: list[str]
    predicted: np.ndarray | None = None  # (P,) uint8: A's class at each pixel when it was selected
    parent: Parent | None = None

    def pixels_of(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def labeled_share(self) -> float:
        """Share of all pixels of these images that the set covers, in percent."""
        total = float(np.prod(self.sizes.astype(np.float64), axis=1).sum())
        return 100.0 * len(self.y) / total if total else 0.0


def write_pixel_set(f: h5py.File, pixels: PixelSet) -> None:
    write_image_ids(f, pixels.image_ids)
    f.create_dataset("sizes", data=np.asarray(pixels.sizes, dtype=np.int32))
    f.create_dataset("offsets", data=np.asarray(pixels.offsets, dtype=np.int64))
    for name in ("y", "x"):
        f.create_dataset(name, data=np.asarray(getattr(pixels, name), dtype=np.int32), chunks=True, compression="gzip")
    for name in ("label", "predicted"):
        values = getattr(pixels, name)
        if values is not None:
            f.create_dataset(name, data=np.asarray(values, dtype=np.uint8), chunks=True, compression="gzip")
    f.attrs["class_set"] = pixels.class_set
    f.attrs["class_names"] = json.dumps(list(pixels.class_names))


def read_pixel_set(path: Path, kind: str) -> PixelSet:
    with open_artifact(path, kind) as artifact:
        image_ids = read_image_ids(artifact)
        pixels = PixelSet(
            image_ids=image_ids,
            sizes=read_sizes(artifact, len(image_ids)).astype(np.int32),
            offsets=artifact.read("offsets", kinds="iu", ndim=1).astype(np.int64),
            y=artifact.read("y", kinds="iu", ndim=1),
            x=artifact.read("x", kinds="iu", ndim=1),
            label=artifact.read("label", kinds="iu", ndim=1) if kind == "labels" else None,
            predicted=artifact.read("predicted", kinds="iu", ndim=1) if "predicted" in artifact.file else None,
            class_set=read_class_set(artifact),
            class_names=read_class_names(artifact),
            parent=artifact.parent(),
        )
        # Checked against each other: a damaged or crafted file is refused here, in one line.
        rows = len(pixels.y)
        for name in ("x", "label", "predicted"):
            values = getattr(pixels, name)
            if values is not None and len(values) != rows:
                raise LaborError(f"{path}: damaged {kind} artifact: offsets do not match the pixel arrays")
        try:
            check_offsets(artifact, "offsets", pixels.offsets, len(image_ids), rows)
        except LaborError:
            raise LaborError(f"{path}: damaged {kind} artifact: offsets do not match the pixel arrays") from None
        check_pixels(artifact, "y, x", pixels.y, pixels.x, pixels.offsets, pixels.sizes.astype(np.int64))
        for name in ("label", "predicted"):
            values = getattr(pixels, name)
            if (
                values is not None
                and len(values)
                and (values.min() < 0 or np.any((values >= len(pixels.class_names)) & (values != 255)))
            ):
                raise artifact.damaged(f"{name} holds a class beyond the {len(pixels.class_names)} classes")
    return pixels
