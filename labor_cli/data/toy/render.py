"""One image of the toy pair: lay a street out, draw it, and photograph it."""

from __future__ import annotations

import numpy as np

from labor_cli.data.toy.camera_effects import apply_camera_effects, draw_bonnet
from labor_cli.data.toy.night import photograph_at_night
from labor_cli.data.toy.objects import draw_objects
from labor_cli.data.toy.scene import (
    ALWAYS_SHOWN,
    CLASSES_SHOWN,
    FORCED_OBJECTS,
    LABEL_ID,
    LAYOUT_ATTEMPTS,
    lay_out_scene,
)
from labor_cli.data.toy.street import draw_ground, draw_sky, draw_street_sides
from labor_cli.data.toy.styles import NIGHT_STYLE, PHOTO_STYLE, SOURCE_STYLE

DOMAINS = ("source", "target")
# The kinds of domain shift: the target's style for each (the source is the same for all).
TARGET_STYLES = {"photo": PHOTO_STYLE, "night": NIGHT_STYLE}
SHIFTS = tuple(TARGET_STYLES)
STYLES = {"source": SOURCE_STYLE, "target": PHOTO_STYLE}  # the default pair's
# Each style draws its images from its own random stream, so no two styles share a street; the
# numbers are part of every drawn pair's bytes (same seed, same bytes), so they never change.
_STREAMS = {"source": 0, "photo": 1, "night": 2}


def render(
    seed: int, domain: str, index: int, width: int, height: int, shift: str = "photo"
) -> tuple[np.ndarray, np.ndarray]:
    """One scene of ``domain`` ("source", or "target" of the kind ``shift``): an RGB image and
    its label-id map."""
    style = SOURCE_STYLE if domain == "source" else TARGET_STYLES[shift]
    rng = np.random.default_rng([seed, _STREAMS["source" if domain == "source" else shift], index])
    forced = FORCED_OBJECTS[index % len(FORCED_OBJECTS)]
    shown = {LABEL_ID[name] for key in forced for name in CLASSES_SHOWN[key]} | {
        LABEL_ID[name] for name in ALWAYS_SHOWN
    }
    min_pixels = max(2, round(8 * (width / 256.0) ** 2))
    for _ in range(LAYOUT_ATTEMPTS):  # lay the street out again until every class it must show is seen
        scene = lay_out_scene(rng, style, width, height, forced)
        draw_sky(scene)
        draw_ground(scene)
        draw_street_sides(scene)
        draw_objects(scene)
        pixels_per_id = np.bincount(scene.canvas.label.ravel(), minlength=256)
        if all(pixels_per_id[i] >= min_pixels for i in shown):
            break
    if style.ego_vehicle:
        draw_bonnet(scene)
    image = photograph_at_night(scene) if style.night is not None else apply_camera_effects(scene)
    return image, scene.canvas.label.copy()
