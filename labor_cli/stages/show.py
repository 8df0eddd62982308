"""labor show: PNGs of a masks, selection or labels artifact on the target images.

By default side-by-side panels enlarged to a readable size (a 256-pixel-wide toy image twice):
image | A's prediction | the mask (masks; without --target: prediction | mask), image | points
(selection), image | labels (labels). With --overlay one drawing at the image's own size:

- masks: A's prediction in the Cityscapes palette blended over the image, the inconsistency
  mask drawn at full colour strength and outlined in white;
- selection: every chosen pixel marked (a ring with a dot at the pixel itself; a tint of the
  selected pixels when they are too dense for rings, e.g. SPL's regions);
- labels: every labeled pixel in its class colour, dilated a little (with a black border) so
  that single points are visible; pixels whose ground truth is ignored are drawn white.

The drawing itself is labor_cli/drawing.py's, which ``labor export --overlays`` shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labor_cli import artifacts
from labor_cli.artifacts.provenance import check_known_class_set
from labor_cli.console import progress_bar, stdout
from labor_cli.data.datasets import open_dataset
from labor_cli.drawing import (
    check_output_folder,
    draw_classes,
    draw_labels,
    draw_mask,
    draw_prediction,
    mark_points,
    output_folder,
    panel_scale,
    png_name,
    save_png,
    side_by_side,
)
from labor_cli.errors import LaborError, LaborUsageError
from labor_cli.options import ShowOptions
from labor_cli.pixel_sets import artifact_kind, dataset_indices

SHOWN_KINDS = ("masks", "selection", "labels")


@dataclass
class ShowResult:
    kind: str
    output_dir: Path
    images: int  # PNGs written
    of_images: int  # images in the artifact
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


MAX_SCALE = 16


def run_show(options: ShowOptions) -> ShowResult:
    """One PNG per image of a masks, selection or labels artifact (the first ``limit`` images)."""
    artifact, output_dir = Path(options.artifact), Path(options.output_dir)
    if options.scale is not None and options.scale > MAX_SCALE:  # a 2048-pixel-wide panel at 16 is 32768 wide
        raise LaborUsageError(f"--scale {options.scale}: at most {MAX_SCALE}")
    kind = artifact_kind(artifact)
    if kind not in SHOWN_KINDS:
        raise LaborError(f"{artifact}: is {artifacts.a_kind(kind)}; show draws {', '.join(SHOWN_KINDS)} artifacts")
    if options.target is None and kind != "masks":
        raise LaborUsageError(f"{artifact}: drawing a {kind} artifact needs the target images: pass --target KIND:PATH")
    check_output_folder(output_dir, options.force, inputs=(artifact,))
    started = time.perf_counter()
    draw_masks_or_pixels = _show_masks if kind == "masks" else _show_pixels
    files, of_images = draw_masks_or_pixels(options, kind)
    return ShowResult(kind, output_dir, len(files), of_images, files, time.perf_counter() - started)


def _show_masks(options: ShowOptions, kind: str) -> tuple[list[Path], int]:
    """A's prediction and the mask of each image, over the image when --target gives it."""
    with artifacts.Masks(options.artifact) as masks:
        image_ids, sizes, class_set = masks.image_ids, masks.sizes, masks.class_set
        count = len(image_ids) if options.limit is None else min(options.limit, len(image_ids))
        dataset, indices = None, None
        if options.target:
            check_known_class_set(options.artifact, class_set)
            dataset = open_dataset(options.target, options.split, class_set=class_set, require_labels=False)
            indices = dataset_indices(image_ids[:count], sizes[:count], options.artifact, dataset)

        def draw(i: int) -> np.ndarray:
            image = dataset.read_image(indices[i]) if dataset is not None else None
            prediction, mask = masks.prediction(i), masks.mask(i)
            if options.overlay:
                return draw_prediction(image, prediction, mask, class_set)
            panels = [draw_classes(prediction, class_set), draw_mask(image, mask)]
            return _panels(options, ([] if image is None else [image]) + panels)

        files = _write_pngs(options, image_ids[:count], draw, "show masks")
    return files, len(image_ids)


def _show_pixels(options: ShowOptions, kind: str) -> tuple[list[Path], int]:
    """The chosen pixels of a selection marked, or the labeled pixels of a labels artifact coloured."""
    pixels = artifacts.read_pixel_set(options.artifact, kind)
    count = len(pixels.image_ids) if options.limit is None else min(options.limit, len(pixels.image_ids))
    check_known_class_set(options.artifact, pixels.class_set)
    dataset = open_dataset(options.target, options.split, class_set=pixels.class_set, require_labels=False)
    indices = dataset_indices(pixels.image_ids[:count], pixels.sizes[:count], options.artifact, dataset)

    def draw(i: int) -> np.ndarray:
        image = dataset.read_image(indices[i])
        rows = pixels.pixels_of(i)
        if kind == "selection":
            drawn = mark_points(image, pixels.y[rows], pixels.x[rows])
        else:
            drawn = draw_labels(image, pixels.y[rows], pixels.x[rows], pixels.label[rows], pixels.class_set)
        return drawn if options.overlay else _panels(options, [image, drawn])

    return _write_pngs(options, pixels.image_ids[:count], draw, f"show {kind}"), len(pixels.image_ids)


def _panels(options: ShowOptions, panels: list[np.ndarray]) -> np.ndarray:
    return side_by_side(panels, panel_scale(panels[0].shape[1], options.scale))


def _write_pngs(
    options: ShowOptions, image_ids: list[str], draw: Callable[[int], np.ndarray], description: str
) -> list[Path]:
    names = [png_name(image_id) for image_id in image_ids]
    with output_folder(options.output_dir, options.force) as folder, progress_bar(disable=options.quiet) as bar:
        task = bar.add_task(description, total=len(image_ids), status="")
        for i, name in enumerate(names):
            save_png(draw(i), folder / name)
            bar.update(task, advance=1)
    return [Path(options.output_dir) / name for name in names]


def print_show(result: ShowResult) -> None:
    of = f" (first {result.images} of {result.of_images})" if result.images < result.of_images else ""
    stdout.print(f"{result.kind}: {result.images} PNGs{of} in {result.seconds:.1f} s -> {result.output_dir}")
