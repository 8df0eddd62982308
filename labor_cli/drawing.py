"""Drawing on images, and writing the drawings as PNG files into a folder that appears whole.

What ``labor show`` and ``labor export --overlays`` draw: chosen pixels marked (rings, or a
tint where they are too dense for rings), labeled pixels in their class colour, A's prediction
blended over the image with the inconsistency mask outlined; all vectorised over the points.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid as _uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from labor_cli.data.labels import IGNORE_INDEX, class_colours
from labor_cli.errors import LaborError, LaborUsageError

# Marker colours: each point gets the one farther from the image's colour at that pixel.
MARKER_COLOURS = np.array([[255, 0, 255], [0, 255, 0]], dtype=np.uint8)  # magenta, green
OUTLINE = np.array([0, 0, 0], dtype=np.uint8)
WHITE = np.array([255, 255, 255], dtype=np.uint8)


# --- output folders: written beside the final name, renamed when complete -------------------


def png_name(image_id: str) -> str:
    """'aachen/aachen_000000_000019' -> 'aachen__aachen_000000_000019.png'."""
    return image_id.replace("/", "__").replace("\\", "__") + ".png"


def check_output_folder(path: Path, force: bool, inputs: tuple = ()) -> None:
    """Refuse before any work: an existing non-empty folder without --force, a file, an unwritable parent,
    a folder that holds one of the command's ``inputs`` (--force would delete it with the folder)."""
    path = Path(path)
    for given in inputs:
        if given is not None and Path(given).resolve().is_relative_to(path.resolve()):
            raise LaborUsageError(f"{path}: the folder holds the input {given}, which replacing it would delete")
    if path.name in ("", ".."):  # '.', '/', '..': the folder is written beside its name and renamed into place
        raise LaborError(f"{path}: expected a folder name to write into (e.g. {path / 'out'})")
    if path.exists() and not path.is_dir():
        raise LaborError(f"{path}: is a file, expected a folder to write into")
    if path.is_dir() and not force:
        try:
            non_empty = any(path.iterdir())
        except OSError as exc:
            raise LaborError(f"{path}: cannot read folder ({exc.strerror or exc})") from exc
        if non_empty:
            raise LaborError(f"{path}: folder exists and is not empty; pass --force to replace it")
    existing = path.parent if str(path.parent) else Path(".")
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LaborError(f"{path}: cannot write in {existing} (permission denied)")


@contextlib.contextmanager
def output_folder(path: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``path``.

    A crash or Ctrl-C leaves nothing under ``path`` (and an existing folder there untouched).
    With ``force`` an existing folder is replaced as a whole.
    """
    path = Path(path)
    check_output_folder(path, force)
    tag = _uuid.uuid4().hex[:8]
    temporary = path.with_name(f".{path.name}.{tag}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()
    except OSError as exc:
        raise LaborError(f"{path}: cannot create folder ({exc.strerror or exc})") from exc
    try:
        yield temporary
        if path.is_dir():
            old = path.with_name(f".{path.name}.{tag}.old")
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise LaborError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def save_png(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="PNG", compress_level=3)


# --- drawing (vectorised over points: no Python loop per point) -------------------------------


def marker_radius(height: int, width: int) -> int:
    """Ring radius in pixels: about 1% of the short side, between 2 and 10."""
    return int(np.clip(round(min(height, width) / 100), 2, 10))


def _disc_offsets(inner: float, outer: float) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) of the pixels whose distance from the centre is in (inner, outer]."""
    reach = int(np.ceil(outer))
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    distance = np.hypot(dy, dx)
    keep = (distance > inner) & (distance <= outer)
    return dy[keep], dx[keep]


def _square_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return dy.ravel(), dx.ravel()


def _paint(image: np.ndarray, y: np.ndarray, x: np.ndarray, offsets, colours: np.ndarray) -> None:
    """Set image[y + dy, x + dx] = colour of each point, for every offset, clipped to the image."""
    height, width = image.shape[:2]
    dy, dx = offsets
    yy = (np.asarray(y, np.int64)[:, None] + dy[None, :]).ravel()
    xx = (np.asarray(x, np.int64)[:, None] + dx[None, :]).ravel()
    colours = np.asarray(colours, np.uint8)
    if colours.ndim == 2:  # one colour per point
        cc = np.repeat(colours, len(dy), axis=0)
    else:  # one colour for all
        cc = np.broadcast_to(colours, (len(yy), 3))
    inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
    image[yy[inside], xx[inside]] = cc[inside]


def contrast_colours(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per point, the marker colour farther from the image's colour at that pixel."""
    under = image[y, x].astype(np.int32)  # (P, 3)
    distance = ((under[:, None, :] - MARKER_COLOURS[None, :, :].astype(np.int32)) ** 2).sum(-1)  # (P, 2)
    return MARKER_COLOURS[distance.argmax(1)]


def is_dense(count: int, height: int, width: int) -> bool:
    """Too many points for rings: the rings would cover a quarter of the image or more."""
    radius = marker_radius(height, width)
    return count * (2 * radius + 3) ** 2 > 0.25 * height * width


def mark_points(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) with every pixel (y, x) marked; the pixel itself always changes."""
    out = np.array(image, dtype=np.uint8, copy=True)
    y, x = np.asarray(y, np.int64), np.asarray(x, np.int64)
    if len(y) == 0:
        return out
    height, width = out.shape[:2]
    colours = contrast_colours(image, y, x)
    if is_dense(len(y), height, width):
        # Tint: 35% image, 65% marker colour (the farther of two colours, so the pixel changes).
        blended = 0.35 * image[y, x].astype(np.float32) + 0.65 * colours.astype(np.float32)
        out[y, x] = np.round(blended).astype(np.uint8)
        return out
    radius = marker_radius(height, width)
    thickness = max(1, radius // 4)
    _paint(out, y, x, _disc_offsets(radius, radius + 1.0), OUTLINE)  # dark edge around the ring
    _paint(out, y, x, _disc_offsets(radius - thickness, radius), colours)
    out[y, x] = colours  # the pixel itself, last, so no other point's ring hides it
    return out


def palette_256(class_set: str) -> np.ndarray:
    """(256, 3) palette: the class colours, black for everything else (255 = ignore)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    colours = class_colours(class_set)
    palette[: len(colours)] = colours
    return palette


def draw_labels(image: np.ndarray, y: np.ndarray, x: np.ndarray, label: np.ndarray, class_set: str) -> np.ndarray:
    """Labeled pixels in their class colour, dilated with a black border; ignored ones white."""
    out = np.array(image, dtype=np.uint8, copy=True)
    if len(y) == 0:
        return out
    height, width = out.shape[:2]
    radius = max(1, marker_radius(height, width) // 2)
    palette = palette_256(class_set)
    palette[IGNORE_INDEX] = WHITE
    colours = palette[np.asarray(label, np.uint8)]
    _paint(out, y, x, _square_offsets(radius + 1), OUTLINE)
    _paint(out, y, x, _square_offsets(radius), colours)
    out[np.asarray(y, np.int64), np.asarray(x, np.int64)] = colours
    return out


PANEL_WIDTH = 512  # a panel is enlarged to at least this width unless a scale is given
PANEL_GAP = 4  # white pixels between panels


def panel_scale(width: int, scale: int | None = None) -> int:
    """The whole-number enlargement: ``scale``, or the smallest that makes a panel PANEL_WIDTH wide
    (256 -> 2, 128 -> 4, 1024 -> 1)."""
    return scale if scale is not None else max(1, -(-PANEL_WIDTH // width))


def side_by_side(panels: list[np.ndarray], scale: int) -> np.ndarray:
    """Panels of one size, each enlarged ``scale`` times (nearest neighbour: pixels stay pixels),
    left to right with a white gap."""
    big = [panel.repeat(scale, axis=0).repeat(scale, axis=1) for panel in panels]
    gap = np.full((big[0].shape[0], PANEL_GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([part for panel in big for part in (gap, panel)][1:], axis=1)


def draw_classes(prediction: np.ndarray, class_set: str) -> np.ndarray:
    """Class indices in the palette's colours (ignored and unknown indices black)."""
    return palette_256(class_set)[prediction]


def draw_mask(image: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """The mask in white over the image darkened to 35% (over black without an image)."""
    out = np.zeros(mask.shape + (3,), np.uint8) if image is None else np.round(image * 0.35).astype(np.uint8)
    out[mask] = WHITE
    return out


def draw_prediction(image: np.ndarray | None, prediction: np.ndarray, mask: np.ndarray, class_set: str) -> np.ndarray:
    """A's prediction blended over the image (half and half), full colour inside the mask, mask outlined white."""
    colour = palette_256(class_set)[prediction].astype(np.float32)
    if image is None:
        out = colour * 0.6  # no image: the prediction alone, dimmed so the mask stands out
    else:
        out = 0.5 * image.astype(np.float32) + 0.5 * colour
    out[mask] = colour[mask]
    out = np.round(out).astype(np.uint8)
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    out[mask & ~interior] = WHITE
    return out
