"""One image of the toy pair: lay a street out, draw it, and photograph it."""

from __future__ import annotations

import numpy as np

from labor_cli.data.toy.camera_effects import apply_camera_effects, draw_bonnet
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
from labor_cli.data.toy.styles import PHOTO_STYLE, SOURCE_STYLE

DOMAINS = ("source", "target")
STYLES = {"source": SOURCE_STYLE, "target": PHOTO_STYLE}


def render(seed: int, domain: str, index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene of ``domain`` ("source" or "target"): an RGB image and its label-id map."""
    style = STYLES[domain]
    rng = np.random.default_rng([seed, DOMAINS.index(domain), index])
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
    return apply_camera_effects(scene), scene.canvas.label.copy()
