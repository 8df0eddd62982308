"""labor select: choose the pixels to ask the annotator about, from a masks artifact (no model, no GPU).

Modes: spl (every pixel of the inconsistency mask), ppl (prototype points dealt to classes
round-robin), random (uniform, a baseline), entropy (A's most uncertain pixels, a baseline).
Coordinates are in each image's own pixel grid; pixels labeled in earlier rounds (the masks
artifact's ``excluded`` rows) are never chosen again. The choice functions live in
labor_cli/selection.py; this module reads, loops over images, and writes the artifact.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from labor_cli import artifacts, selection
from labor_cli.console import progress_bar, stdout
from labor_cli.errors import LaborError, LaborUsageError

MODES = ("ppl", "spl", "random", "entropy")


@dataclass
class SelectResult:
    mode: str
    images: int
    pixels_per_image: np.ndarray  # (N,) int64
    labeled_share: float  # percent of all pixels of these images
    class_counts: dict[str, int]  # A's predicted class of the chosen pixels
    shortfall_images: int  # images that got fewer pixels than asked
    shortfall_pixels: int  # how many pixels they lack in all
    seconds: float
    output: Path
    points: int | None = None
    ratio: float | None = None
    min_spacing: float = 0.0
    seed: int = 0
    spacing_relaxed_images: int = 0  # images where min spacing gave way to the exact budget
    summary: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.pixels_per_image.sum())


def check_select_options(mode: str, points: int | None, ratio: float | None, min_spacing: float, seed: int) -> None:
    """Usage errors (exit 2), each in one line, before any file is touched."""
    if mode not in MODES:
        raise LaborUsageError(f"--mode: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "spl":
        if points is not None or ratio is not None:
            raise LaborUsageError("--mode spl labels every pixel of the mask: --points and --ratio are not allowed")
        if min_spacing:
            raise LaborUsageError("--mode spl labels every pixel of the mask: --min-spacing is not allowed")
    elif mode == "ppl":
        if ratio is not None:
            raise LaborUsageError("--mode ppl takes --points N (points per image), not --ratio")
        if points is None:
            raise LaborUsageError("--mode ppl needs --points N (points per image, e.g. 40)")
    else:
        if points is not None and ratio is not None:
            raise LaborUsageError(f"--mode {mode}: give --points or --ratio, not both")
        if points is None and ratio is None:
            raise LaborUsageError(f"--mode {mode} needs --points N (per image) or --ratio R (fraction of each image's pixels)")
    if points is not None and points <= 0:
        raise LaborUsageError(f"--points must be a positive number of points per image, got {points}")
    if ratio is not None and not (0.0 < ratio <= 1.0):
        raise LaborUsageError(f"--ratio must be in (0, 1] (a fraction of each image's pixels), got {ratio}")
    if not (min_spacing >= 0.0) or not math.isfinite(min_spacing):
        raise LaborUsageError(f"--min-spacing must be a finite distance in pixels >= 0, got {min_spacing}")
    if seed < 0:
        raise LaborUsageError(f"--seed must be >= 0, got {seed}")


def requested_counts(sizes: np.ndarray, points: int | None, ratio: float | None) -> np.ndarray:
    """Pixels asked for per image: --points, or --ratio of the image's pixels rounded."""
    if points is not None:
        return np.full(len(sizes), int(points), dtype=np.int64)
    return np.array([selection.ratio_count(ratio, size) for size in sizes], dtype=np.int64)


def _excluded_linear(masks: artifacts.Masks, i: int, shape) -> np.ndarray:
    rows = masks.rows("excluded", i)
    linear = selection.linear_index(rows["y"], rows["x"], shape)
    return np.unique(linear)


def _check_uncertain_stored(masks: artifacts.Masks, masks_path: Path, wanted: np.ndarray) -> None:
    """Entropy mode reads A's stored most-uncertain pixels: refuse a budget larger than what was stored."""
    stored = np.diff(masks.groups["uncertain"]["offsets"])
    excluded = np.diff(masks.groups["excluded"]["offsets"])
    available = masks.sizes[:, 0] * masks.sizes[:, 1] - excluded
    short = (wanted > stored) & (stored < available)  # storing every available pixel is no limit
    if short.any():
        first = int(np.flatnonzero(short)[0])
        raise LaborError(
            f"{masks_path}: --mode entropy needs up to {int(wanted.max())} uncertain pixels per image but the masks "
            f"artifact stores only {int(stored[first])} for {masks.image_ids[first]!r} ({int(short.sum())} image(s) short); "
            f"re-run `labor extract` with a larger --uncertain-per-image (at least {int(wanted[short].max())})"
        )


def _predicted_at(masks: artifacts.Masks, masks_path: Path, i: int, chosen: selection.Chosen, check: bool) -> np.ndarray:
    """A's class at the chosen pixels.

    PPL candidates carry it (D(k) holds the mask pixels A predicts as k), which spares decoding
    the full-resolution prediction map of every image (most of the time at Cityscapes scale);
    the first image is checked against the map, so an inconsistent extraction is refused.
    """
    if not len(chosen):
        return np.zeros(0, np.uint8)
    if chosen.predicted is None:
        return masks.prediction(i)[chosen.y, chosen.x]
    if check and not np.array_equal(masks.prediction(i)[chosen.y, chosen.x], chosen.predicted):
        raise LaborError(
            f"{masks_path}: damaged masks artifact: image {masks.image_ids[i]!r}: the PPL candidates' classes "
            "disagree with the prediction map"
        )
    return chosen.predicted


def run_select(
    masks_path: Path,
    mode: str,
    output: Path,
    points: int | None = None,
    ratio: float | None = None,
    min_spacing: float = 0.0,
    seed: int = 0,
    force: bool = False,
    quiet: bool = False,
) -> SelectResult:
    masks_path, output = Path(masks_path), Path(output)
    min_spacing = float(min_spacing)
    check_select_options(mode, points, ratio, min_spacing, seed)
    if output.resolve() == masks_path.resolve():
        raise LaborUsageError(f"-o {output}: the output would replace its own input masks artifact")
    artifacts.check_output_path(output, force)
    started = time.perf_counter()
    with artifacts.Masks(masks_path) as masks:
        count = len(masks)
        sizes = masks.sizes
        wanted = requested_counts(sizes, points, ratio) if mode != "spl" else np.zeros(count, dtype=np.int64)
        if points is not None:
            pixels = sizes[:, 0] * sizes[:, 1]
            if count and points > pixels.min():
                smallest = int(np.argmin(pixels))
                raise LaborUsageError(
                    f"--points {points} is more than the {int(pixels[smallest])} pixels of image "
                    f"{masks.image_ids[smallest]!r} ({sizes[smallest, 0]}x{sizes[smallest, 1]})"
                )
        if mode == "entropy":
            _check_uncertain_stored(masks, masks_path, wanted)

        ys, xs, predicted = [], [], []
        got = np.zeros(count, dtype=np.int64)
        relaxed = 0
        checked = False
        with progress_bar(disable=quiet) as bar:
            task = bar.add_task(f"select {mode}", total=count, status="")
            for i in range(count):
                shape = (int(sizes[i, 0]), int(sizes[i, 1]))
                try:
                    excluded = _excluded_linear(masks, i, shape)
                    if mode == "spl":
                        chosen = selection.spl_pixels(masks.mask(i), excluded)
                    elif mode == "ppl":
                        rows = masks.rows("candidates", i)
                        chosen = selection.ppl_pick(rows["y"], rows["x"], rows["class"], rows["similarity"],
                                                    int(wanted[i]), shape, min_spacing, excluded)
                    elif mode == "entropy":
                        rows = masks.rows("uncertain", i)
                        chosen = selection.entropy_pick(rows["y"], rows["x"], rows["entropy"], int(wanted[i]),
                                                        shape, min_spacing, excluded)
                    else:
                        chosen = selection.random_pick(shape, int(wanted[i]), selection.image_rng(seed, i),
                                                       min_spacing, excluded)
                except ValueError as exc:
                    raise LaborError(f"{masks_path}: damaged masks artifact: image {masks.image_ids[i]!r}: {exc}") from exc
                ys.append(chosen.y)
                xs.append(chosen.x)
                predicted.append(_predicted_at(masks, masks_path, i, chosen, check=not checked))
                checked = checked or (chosen.predicted is not None and len(chosen) > 0)
                got[i] = len(chosen)
                relaxed += chosen.spacing_relaxed
                bar.update(task, advance=1)

        y = np.concatenate(ys) if ys else np.zeros(0, np.int32)
        x = np.concatenate(xs) if xs else np.zeros(0, np.int32)
        predicted = np.concatenate(predicted).astype(np.uint8) if predicted else np.zeros(0, np.uint8)
        offsets = np.concatenate([[0], np.cumsum(got)]).astype(np.int64)
        class_names = list(masks.class_names)
        pixel_set = artifacts.PixelSet(
            image_ids=list(masks.image_ids), sizes=sizes.astype(np.int32), offsets=offsets, y=y, x=x, label=None,
            class_set=masks.class_set, class_names=class_names, predicted=predicted,
        )
        per_class = np.bincount(predicted, minlength=len(class_names))
        class_counts = {name: int(per_class[k]) for k, name in enumerate(class_names)}
        class_counts.update({str(k): int(per_class[k]) for k in range(len(class_names), len(per_class)) if per_class[k]})
        lacking = np.maximum(wanted - got, 0) if mode != "spl" else np.zeros(count, dtype=np.int64)
        seconds = time.perf_counter() - started
        result = SelectResult(
            mode=mode, images=count, pixels_per_image=got, labeled_share=pixel_set.labeled_share(),
            class_counts=class_counts, shortfall_images=int((lacking > 0).sum()), shortfall_pixels=int(lacking.sum()),
            seconds=seconds, output=output, points=points, ratio=ratio, min_spacing=min_spacing, seed=seed,
            spacing_relaxed_images=int(relaxed),
        )
        result.summary = {
            "mode": mode,
            "images": count,
            "pixels": result.total,
            "pixels_per_image": {"mean": float(got.mean()) if count else 0.0, "min": int(got.min()) if count else 0,
                                 "max": int(got.max()) if count else 0},
            "labeled_share_percent": result.labeled_share,
            "class_counts": class_counts,
            "shortfall_images": result.shortfall_images,
            "shortfall_pixels": result.shortfall_pixels,
            "spacing_relaxed_images": result.spacing_relaxed_images,
        }
        config = {
            "masks": str(masks_path),
            "mode": mode,
            "points": points,
            "ratio": ratio,
            "min_spacing": min_spacing,
            "seed": seed,
            "spacing_pool_factor": selection.SPACING_POOL_FACTOR,
        }
        with artifacts.create_artifact(output, "selection", config, [masks.parent()], force) as f:
            artifacts.write_pixel_set(f, pixel_set)
            f.attrs["summary"] = json.dumps(result.summary)
    result.seconds = time.perf_counter() - started
    return result


def print_select_summary(result: SelectResult) -> None:
    """The chosen pixels per predicted class, and one line of headline figures."""
    total = result.total
    table = Table("class (A's prediction)", "pixels", "share %", title=f"{result.mode}: {result.images} images")
    for name, value in result.class_counts.items():
        if value:
            table.add_row(name, str(value), f"{100.0 * value / total:.1f}")
    if total:
        stdout.print(table)
    per_image = result.pixels_per_image
    spread = f"{per_image.mean():.1f} per image (min {per_image.min()}, max {per_image.max()})" if result.images else "no images"
    line = f"{result.mode}: {total} pixels, {spread}, {result.labeled_share:.4f}% of all pixels"
    if result.shortfall_images:
        line += f"; {result.shortfall_images} image(s) short by {result.shortfall_pixels} pixel(s) in all"
    if result.spacing_relaxed_images:
        line += f"; min spacing relaxed in {result.spacing_relaxed_images} image(s)"
    stdout.print(f"{line}  ({result.seconds:.1f} s) -> {result.output}")
