"""labor select: choose the pixels to ask the annotator about, from a masks artifact (no model, no GPU).

Modes: spl (every pixel of the inconsistency mask) and ppl (prototype points dealt to classes
round-robin) are LabOR's; balanced is ours (uniform within each of A's classes, budgets
proportional to the class's area to a power, each class's budget split over its pixels'
runner-up classes, rounded at random, unless --strata class: docs/method.md); random (uniform)
and entropy (A's most uncertain pixels) are baselines.
Coordinates are in each image's own pixel grid; pixels labeled in earlier rounds (the masks
artifact's ``excluded`` rows) are never chosen again. The choice functions live in
labor_cli/selection.py; this module reads, loops over images, and writes the artifact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from labor_cli import artifacts, selection
from labor_cli.console import progress_bar, stdout
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.option_machinery import stored_config
from labor_cli.options import SelectOptions


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
            f"artifact stores only {int(stored[first])} for {masks.image_ids[first]!r} "
            f"({int(short.sum())} image(s) short); "
            f"re-run `labor extract` with a larger --uncertain-per-image (at least {int(wanted[short].max())})"
        )


def _predicted_at(
    masks: artifacts.Masks, masks_path: Path, i: int, chosen: selection.Chosen, check: bool
) -> np.ndarray:
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


@dataclass
class Choices:
    """The pixels chosen in every image, gathered image by image."""

    ys: list[np.ndarray] = field(default_factory=list)
    xs: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)  # A's class at each chosen pixel
    counts: list[int] = field(default_factory=list)
    spacing_relaxed: int = 0  # images where min spacing gave way to the exact budget

    def add(self, chosen: selection.Chosen, predicted: np.ndarray) -> None:
        self.ys.append(chosen.y)
        self.xs.append(chosen.x)
        self.predicted.append(predicted)
        self.counts.append(len(chosen))
        self.spacing_relaxed += chosen.spacing_relaxed

    def pixel_set(self, masks: artifacts.Masks) -> artifacts.PixelSet:
        offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)]).astype(np.int64)
        return artifacts.PixelSet(
            image_ids=list(masks.image_ids),
            sizes=masks.sizes.astype(np.int32),
            offsets=offsets,
            y=np.concatenate(self.ys) if self.ys else np.zeros(0, np.int32),
            x=np.concatenate(self.xs) if self.xs else np.zeros(0, np.int32),
            label=None,
            class_set=masks.class_set,
            class_names=list(masks.class_names),
            predicted=np.concatenate(self.predicted).astype(np.uint8) if self.predicted else np.zeros(0, np.uint8),
        )


def run_select(options: SelectOptions) -> SelectResult:
    masks_path, output = Path(options.masks), Path(options.output)
    min_spacing = float(options.min_spacing)
    artifacts.check_output_path(output, options.force, inputs=(masks_path,))
    started = time.perf_counter()
    with artifacts.Masks(masks_path) as masks:
        if options.mode == "balanced" and options.strata == "class-pair" and not masks.has_runner_up:
            raise LaborError(
                f"{masks_path}: --mode balanced --strata class-pair (the default) needs A's runner-up class, "
                "which this masks artifact does not store (an older labor extract wrote it); re-run "
                "`labor extract`, or select with --strata class"
            )
        wanted = requested_counts(masks, masks_path, options)
        choices = choose_all(masks, masks_path, options, wanted, min_spacing)
        pixel_set = choices.pixel_set(masks)
        result = select_result(options, masks, pixel_set, wanted, choices)
        config = stored_config(options, min_spacing=min_spacing, spacing_pool_factor=selection.SPACING_POOL_FACTOR)
        with artifacts.create_artifact(output, "selection", config, [masks.parent()], options.force) as f:
            artifacts.write_pixel_set(f, pixel_set)
            f.attrs["summary"] = json.dumps(result.summary)
    result.seconds = time.perf_counter() - started
    return result


def requested_counts(masks: artifacts.Masks, masks_path: Path, options: SelectOptions) -> np.ndarray:
    """Pixels asked for per image: --points, or --ratio of the image's pixels rounded (none for spl);
    a budget no image can meet is refused."""
    sizes, points = masks.sizes, options.points
    if options.mode == "spl":
        return np.zeros(len(masks), dtype=np.int64)
    if points is not None:
        pixels = sizes[:, 0] * sizes[:, 1]
        if len(masks) and points > pixels.min():
            smallest = int(np.argmin(pixels))
            raise LaborUsageError(
                f"--points {points} is more than the {int(pixels[smallest])} pixels of image "
                f"{masks.image_ids[smallest]!r} ({sizes[smallest, 0]}x{sizes[smallest, 1]})"
            )
        wanted = np.full(len(sizes), int(points), dtype=np.int64)
    else:
        wanted = np.array([selection.ratio_count(options.ratio, size) for size in sizes], dtype=np.int64)
    if options.mode == "entropy":
        _check_uncertain_stored(masks, masks_path, wanted)
    return wanted


def choose_all(
    masks: artifacts.Masks, masks_path: Path, options: SelectOptions, wanted: np.ndarray, min_spacing: float
) -> Choices:
    """The mode's choice in every image, never a pixel labeled before."""
    choices = Choices()
    checked = False
    with progress_bar(disable=options.quiet) as bar:
        task = bar.add_task(f"select {options.mode}", total=len(masks), status="")
        for i in range(len(masks)):
            try:
                chosen = choose(masks, i, options, int(wanted[i]), min_spacing)
            except ValueError as exc:
                raise LaborError(f"{masks_path}: damaged masks artifact: image {masks.image_ids[i]!r}: {exc}") from exc
            choices.add(chosen, _predicted_at(masks, masks_path, i, chosen, check=not checked))
            checked = checked or (chosen.predicted is not None and len(chosen) > 0)
            bar.update(task, advance=1)
    return choices


def choose(masks: artifacts.Masks, i: int, options: SelectOptions, wanted: int, min_spacing: float) -> selection.Chosen:
    """Image ``i``'s pixels as the mode chooses them (ValueError for damaged rows)."""
    shape = (int(masks.sizes[i, 0]), int(masks.sizes[i, 1]))
    excluded = selection.excluded_linear(masks, i, shape)
    if options.mode == "spl":
        return selection.spl_pixels(masks.mask(i), excluded)
    if options.mode == "ppl":
        candidates = selection.PrototypeCandidates.from_rows(masks.rows("candidates", i))
        return selection.ppl_pick(candidates, wanted, shape, min_spacing, excluded)
    if options.mode == "entropy":
        rows = masks.rows("uncertain", i)
        return selection.entropy_pick(rows["y"], rows["x"], rows["entropy"], wanted, shape, min_spacing, excluded)
    if options.mode == "balanced":
        return selection.balanced_pick(
            masks.prediction(i),
            wanted,
            selection.image_rng(options.seed, i),
            options.balance_power,
            min_spacing,
            excluded,
            runner_up=masks.runner_up(i) if options.strata == "class-pair" else None,
        )
    return selection.random_pick(shape, wanted, selection.image_rng(options.seed, i), min_spacing, excluded)


def select_result(
    options: SelectOptions, masks: artifacts.Masks, pixel_set: artifacts.PixelSet, wanted: np.ndarray, choices: Choices
) -> SelectResult:
    got = np.asarray(choices.counts, dtype=np.int64).reshape(-1)
    names = list(masks.class_names)
    per_class = np.bincount(pixel_set.predicted, minlength=len(names))
    class_counts = {name: int(per_class[k]) for k, name in enumerate(names)}
    class_counts.update({str(k): int(per_class[k]) for k in range(len(names), len(per_class)) if per_class[k]})
    lacking = np.maximum(wanted - got, 0) if options.mode != "spl" else np.zeros(len(got), dtype=np.int64)
    result = SelectResult(
        mode=options.mode,
        images=len(got),
        pixels_per_image=got,
        labeled_share=pixel_set.labeled_share(),
        class_counts=class_counts,
        shortfall_images=int((lacking > 0).sum()),
        shortfall_pixels=int(lacking.sum()),
        seconds=0.0,
        output=Path(options.output),
        points=options.points,
        ratio=options.ratio,
        min_spacing=float(options.min_spacing),
        seed=options.seed,
        spacing_relaxed_images=int(choices.spacing_relaxed),
    )
    result.summary = {
        "mode": options.mode,
        "images": len(got),
        "pixels": result.total,
        "pixels_per_image": {
            "mean": float(got.mean()) if len(got) else 0.0,
            "min": int(got.min()) if len(got) else 0,
            "max": int(got.max()) if len(got) else 0,
        },
        "labeled_share_percent": result.labeled_share,
        "class_counts": class_counts,
        "shortfall_images": result.shortfall_images,
        "shortfall_pixels": result.shortfall_pixels,
        "spacing_relaxed_images": result.spacing_relaxed_images,
    }
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
    spread = "no images"
    if result.images:
        spread = f"{per_image.mean():.1f} per image (min {per_image.min()}, max {per_image.max()})"
    line = f"{result.mode}: {total} pixels, {spread}, {result.labeled_share:.4f}% of all pixels"
    if result.shortfall_images:
        line += f"; {result.shortfall_images} image(s) short by {result.shortfall_pixels} pixel(s) in all"
    if result.spacing_relaxed_images:
        line += f"; min spacing relaxed in {result.spacing_relaxed_images} image(s)"
    stdout.print(f"{line}  ({result.seconds:.1f} s) -> {result.output}")
