"""The embedded toy domain pair: synthetic street scenes, source "rendered", target "photographed".

``make_toy_pair(out_dir)`` draws two small datasets on disk so that the demo and the tests
run the real loaders on the real layouts:

- ``out_dir/source`` in the GTA5 layout: ``images/NNNNN.png``, ``labels/NNNNN.png``
  (Cityscapes label ids), split lists ``train.txt`` / ``val.txt``;
- ``out_dir/target`` in the Cityscapes layout: ``leftImg8bit/<split>/<city>/...``,
  ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (label ids, not train ids);
- each with a ``labor-dataset.json`` that names it and its native size.

Every scene is laid out in a little pinhole-camera world (a ground plane, a road with
sidewalks, facades and hedges along it, a skyline at the end of the street, objects standing
on the ground) and drawn with a depth buffer, so sizes fall off with distance and occlusion
is right. Rare objects are forced in turn, so any 3 consecutive images show all 19 evaluated
Cityscapes classes and so does every split; thin things (poles, lights, signs) keep a minimum
width of a few pixels at the default size.

The two domains differ the way GTA5 and Cityscapes do, mostly in ways a few target labels can
fix. The source is rendered: flat colours, crisp edges, clean textures, a sunny sky, some
variety of exposure and hard shadows. The target is photographed, with class-conditional
changes of appearance that cause systematic confusions (asphalt sidewalks coloured like the
source's road, brick walls coloured like the source's buildings, metal mesh fences instead of
wooden slats, olive vegetation, yellow traffic-light housings like the source's signs, white
buses like the source's trucks and trams, an overcast sky), other camera and object statistics
(focal length, camera height, crowds, parked cars, the ego vehicle's bonnet, labelled
"ego vehicle" and so ignored), and sensor effects (haze, shadows, exposure, white balance,
vignetting, blur, noise).

Each image is drawn from its own generator ``np.random.default_rng([seed, domain, index])``,
so the same seed gives byte-identical files and images do not depend on one another or on
how many processes draw them.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from labor_cli.data.labels import CITYSCAPES_LABELS, LABEL_ID_BY_NAME, cityscapes_id_table
from labor_cli.errors import LaborError, LaborUsageError

GENERATOR = "labor data toy"

# Image counts per split and native (width, height) per domain.
PRESETS: dict[str, dict[str, dict]] = {
    "default": {
        "source": {"size": (256, 144), "train": 300, "val": 60},
        "target": {"size": (256, 128), "train": 150, "val": 60},
    },
    "tiny": {
        "source": {"size": (128, 72), "train": 4, "val": 3},
        "target": {"size": (128, 64), "train": 4, "val": 3},
    },
}

# Toy cities (Cityscapes keeps its train and val cities apart).
TARGET_CITIES = {"train": ("toyburg", "pixelheim"), "val": ("voxelstadt",)}
TARGET_FRAME = 19  # Cityscapes annotates the 20th frame of each snippet

SPLITS = ("train", "val")
DOMAINS = ("source", "target")

ID = LABEL_ID_BY_NAME
VOID = 0
EGO_VEHICLE = 1  # Cityscapes' "ego vehicle": the bonnet at the bottom of target frames, ignored

_PNG = {"format": "PNG", "compress_level": 1, "optimize": False}


# --------------------------------------------------------------------------- styles


@dataclass(frozen=True)
class Style:
    """How one domain looks and how its scenes are laid out."""

    name: str
    palettes: dict[str, tuple[tuple[int, int, int], ...]]
    jitter: float  # +- per channel on every picked colour
    # camera and layout
    focal: tuple[float, float]  # focal length as a fraction of the width
    camera_height: tuple[float, float]
    horizon: tuple[float, float]  # horizon row as a fraction of the height
    road_half: tuple[float, float]
    sidewalk: tuple[float, float]
    urban: float  # chance that a side of the street is lined with buildings
    # object statistics: mean counts per image
    counts: dict[str, float]
    person_scale: tuple[float, float]
    # textures
    sidewalk_tiles: bool
    road_patches: bool
    fence_kind: str  # "slats" or "mesh"
    wall_kind: str  # "blocks" or "bricks"
    window_kind: str  # "flat" or "glass"
    sky_kind: str  # "clear" or "overcast"
    vegetation_texture: float
    shading: float  # amplitude of smooth shading noise (0 = flat, rendered)
    # camera effects
    ego_vehicle: bool
    haze: tuple[float, float]  # visibility in metres (0 = none)
    shadows: float  # chance of cast shadows on the ground
    gain: tuple[float, float]
    white_balance: float
    blur: tuple[float, float]  # gaussian sigma in pixels at 256 px width (0 = crisp)
    noise: tuple[float, float]  # gaussian sigma in grey levels
    vignetting: float


SOURCE_STYLE = Style(
    name="source",
    palettes={
        "road": ((112, 102, 120), (102, 96, 112), (120, 110, 126)),
        "marking": ((236, 236, 228),),
        "sidewalk": ((196, 164, 168), (182, 154, 164), (204, 178, 172)),
        "curb": ((222, 208, 206),),
        "building": ((188, 166, 134), (152, 88, 66), (128, 126, 132), (204, 192, 170), (96, 106, 128)),
        "window": ((48, 58, 82), (60, 66, 90)),
        "wall": ((162, 164, 182), (144, 148, 166)),
        "fence": ((152, 114, 78), (128, 96, 70)),
        "pole": ((136, 136, 144), (112, 114, 122)),
        "light_housing": ((34, 38, 34), (52, 50, 46)),
        "sign": ((30, 82, 192), (232, 200, 28), (238, 238, 238)),
        "vegetation": ((56, 126, 46), (40, 106, 40), (72, 136, 52)),
        "trunk": ((92, 70, 48),),
        "terrain": ((152, 178, 86), (136, 166, 80)),
        "sky_top": ((64, 124, 214), (80, 140, 222)),
        "sky_low": ((168, 200, 236), (184, 210, 238)),
        "cloud": ((246, 246, 250),),
        "skin": ((232, 192, 160), (182, 132, 100), (122, 86, 60)),
        "shirt": ((200, 40, 40), (40, 70, 160), (228, 228, 228), (40, 40, 40), (60, 140, 70), (222, 182, 60)),
        "trousers": ((40, 46, 72), (30, 30, 30), (92, 80, 70), (152, 142, 122)),
        "helmet": ((232, 232, 232), (30, 30, 30), (200, 40, 40)),
        "car": ((192, 30, 30), (30, 60, 172), (202, 202, 208), (30, 30, 36), (240, 240, 240), (60, 122, 60)),
        "glass": ((40, 50, 70), (56, 64, 86)),
        "tyre": ((24, 24, 24),),
        "truck_cargo": ((236, 236, 236), (202, 202, 204)),
        "truck_cabin": ((40, 80, 172), (192, 40, 40)),
        "bus": ((202, 52, 40), (222, 122, 30)),
        "train": ((236, 236, 242),),
        "train_stripe": ((30, 70, 172),),
        "motorcycle": ((30, 30, 30), (152, 20, 20), (40, 40, 122)),
        "bicycle": ((20, 100, 182), (202, 30, 30), (40, 40, 40)),
    },
    jitter=10.0,
    focal=(0.56, 0.62),
    camera_height=(1.5, 1.9),
    horizon=(0.42, 0.50),
    road_half=(4.0, 7.5),
    sidewalk=(2.2, 4.5),
    urban=0.65,
    counts={
        "car": 3.0, "parked_car": 2.0, "truck": 0.5, "bus": 0.5, "train": 0.3, "person": 6.0,
        "bicycle_rider": 1.3, "motorcycle_rider": 1.0, "bicycle": 0.8, "motorcycle": 0.5,
        "streetlight": 2.0, "traffic_light": 1.8, "sign": 2.5, "tree": 3.5, "wall": 0.8, "fence": 0.8,
    },
    person_scale=(0.9, 1.1),
    sidewalk_tiles=True,
    road_patches=False,
    fence_kind="slats",
    wall_kind="blocks",
    window_kind="flat",
    sky_kind="clear",
    vegetation_texture=0.45,
    shading=0.0,
    ego_vehicle=False,
    haze=(0.0, 0.0),
    shadows=0.3,
    gain=(0.85, 1.15),
    white_balance=0.05,
    blur=(0.0, 0.0),
    noise=(0.0, 0.0),
    vignetting=0.0,
)

TARGET_STYLE = Style(
    name="target",
    palettes={
        # mostly the source's classes, a little duller ...
        "road": ((104, 98, 112), (96, 92, 104), (110, 104, 116)),
        "marking": ((214, 214, 206),),
        "curb": ((196, 190, 190),),
        "building": ((176, 160, 134), (146, 92, 72), (124, 122, 126), (190, 180, 162), (100, 106, 122)),
        "window": ((62, 74, 94), (76, 88, 106)),
        "pole": ((120, 122, 128), (100, 104, 110)),
        "sign": ((30, 82, 192), (232, 200, 28), (238, 238, 238)),
        "trunk": ((84, 66, 50),),
        "skin": ((224, 186, 156), (176, 128, 98), (118, 84, 58)),
        "shirt": ((170, 40, 44), (40, 62, 140), (214, 214, 214), (40, 40, 44), (60, 120, 70), (200, 166, 64)),
        "trousers": ((36, 40, 62), (28, 28, 30), (84, 74, 66), (132, 124, 110)),
        "helmet": ((226, 226, 226), (34, 34, 34), (180, 40, 40)),
        "car": ((172, 36, 36), (36, 60, 150), (190, 190, 196), (32, 32, 38), (226, 226, 228), (62, 110, 64)),
        "glass": ((44, 54, 70), (60, 68, 86)),
        "tyre": ((24, 24, 26),),
        "train": ((236, 236, 242),),
        "train_stripe": ((30, 70, 172),),
        "truck_cargo": ((232, 232, 232), (200, 200, 202)),
        "truck_cabin": ((44, 80, 164), (184, 42, 42)),
        "motorcycle": ((34, 34, 34), (140, 24, 24), (44, 44, 116)),
        "bicycle": ((24, 96, 170), (188, 34, 34), (42, 42, 42)),
        "terrain": ((150, 160, 92), (140, 152, 88)),
        # ... but some classes look different, each in its own consistent way:
        # asphalt sidewalks, coloured like the source's road
        "sidewalk": ((114, 104, 120), (106, 100, 114), (120, 112, 124)),
        # brick walls, coloured like the source's brick buildings
        "wall": ((152, 88, 66), (164, 98, 72)),
        # grey metal mesh fences (the source has wooden slats)
        "fence": ((124, 128, 134), (104, 110, 116)),
        # yellow traffic-light housings: the source has yellow only on its signs
        "light_housing": ((212, 180, 40), (200, 170, 36)),
        # olive vegetation, towards the source's grass
        "vegetation": ((118, 138, 54), (128, 136, 58), (108, 130, 50)),
        # white buses, like the source's trucks and trams (the source's buses are red or orange)
        "bus": ((236, 236, 236), (210, 212, 216)),
        # an overcast sky
        "sky_top": ((206, 214, 226), (198, 208, 222)),
        "sky_low": ((228, 232, 238), (222, 228, 236)),
        "cloud": ((236, 238, 240),),
        "bonnet": ((40, 42, 48),),
    },
    jitter=10.0,
    focal=(0.64, 0.72),
    camera_height=(1.3, 1.5),
    horizon=(0.38, 0.46),
    road_half=(3.2, 5.5),
    sidewalk=(1.6, 3.2),
    urban=0.75,
    counts={
        "car": 2.0, "parked_car": 3.5, "truck": 0.3, "bus": 0.35, "train": 0.2, "person": 6.0,
        "bicycle_rider": 1.2, "motorcycle_rider": 0.6, "bicycle": 1.2, "motorcycle": 0.4,
        "streetlight": 1.5, "traffic_light": 2.0, "sign": 2.5, "tree": 3.0, "wall": 0.8, "fence": 0.8,
    },
    person_scale=(0.85, 1.15),
    sidewalk_tiles=False,
    road_patches=True,
    fence_kind="mesh",
    wall_kind="bricks",
    window_kind="glass",
    sky_kind="overcast",
    vegetation_texture=0.35,
    shading=0.18,
    ego_vehicle=True,
    haze=(400.0, 900.0),
    shadows=0.25,
    gain=(0.9, 1.1),
    white_balance=0.04,
    blur=(0.35, 0.6),
    noise=(2.0, 4.5),
    vignetting=0.08,
)

STYLES = {"source": SOURCE_STYLE, "target": TARGET_STYLE}

# Objects forced in turn (by image index, so any 3 consecutive images hold all 19 classes), and
# the classes each group must show; a scene that misses one is laid out again (same generator).
_FORCED = (
    ("train", "wall", "motorcycle_rider", "sign", "terrain", "person"),
    ("bus", "fence", "bicycle_rider", "traffic_light", "tree", "car"),
    ("truck", "wall", "fence", "bicycle", "motorcycle", "traffic_light", "sign", "terrain"),
)
_SHOWS = {
    "train": ("train",), "bus": ("bus",), "truck": ("truck",), "car": ("car",), "person": ("person",),
    "wall": ("wall",), "fence": ("fence",), "terrain": ("terrain",), "tree": ("vegetation",),
    "sign": ("pole", "traffic sign"), "traffic_light": ("pole", "traffic light"),
    "bicycle": ("bicycle",), "motorcycle": ("motorcycle",),
    "bicycle_rider": ("bicycle", "rider"), "motorcycle_rider": ("motorcycle", "rider"),
}
_ALWAYS = ("road", "sidewalk", "building", "sky")
_ATTEMPTS = 8


# --------------------------------------------------------------------------- canvas


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Value noise in [0, 1): a coarse random grid, bilinearly upsampled to (h, w)."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


class Canvas:
    """An RGB image, a label-id map and a depth buffer; the nearest paint wins."""

    def __init__(self, width: int, height: int, rng: np.random.Generator):
        self.W, self.H = width, height
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
        self.xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
        self.fine = rng.random((height, width), dtype=np.float32)
        self.medium = _smooth_noise(rng, height, width, 3.0)
        self.coarse = _smooth_noise(rng, height, width, 12.0)

    def paint(self, box, mask, depth, rgb, label) -> None:
        """Paint ``rgb`` (3,) or (h, w, 3) and ``label`` (int or (h, w)) where ``mask`` and nearer."""
        y0, y1, x0, x1 = box
        if y1 <= y0 or x1 <= x0:
            return
        d = self.depth[y0:y1, x0:x1]
        depth = np.broadcast_to(np.asarray(depth, np.float32), d.shape)
        m = np.broadcast_to(mask, d.shape) & (depth < d)
        if not m.any():
            return
        rgb = np.asarray(rgb, np.float32)
        self.rgb[y0:y1, x0:x1][m] = rgb if rgb.ndim == 1 else rgb[m]
        label = np.asarray(label)
        self.label[y0:y1, x0:x1][m] = label if label.ndim == 0 else label[m]
        d[m] = depth[m]


class Sprite:
    """An upright object at one depth, drawn part by part in box coordinates (u, v in [0, 1])."""

    def __init__(self, canvas: Canvas, centre_x: float, bottom: float, width: float, height: float, depth: float):
        self.canvas, self.depth = canvas, depth
        self.width, self.height = width, height
        left, top = centre_x - width / 2, bottom - height
        x0, x1 = max(int(np.floor(left)), 0), min(int(np.ceil(left + width)), canvas.W)
        y0, y1 = max(int(np.floor(top)), 0), min(int(np.ceil(bottom)), canvas.H)
        self.box = (y0, y1, x0, x1)
        self.visible = x1 > x0 and y1 > y0 and width > 0.5 and height > 0.5
        h, w = max(y1 - y0, 0), max(x1 - x0, 0)
        self.px = (np.arange(x0, x0 + w, dtype=np.float32) + 0.5 - left)[None, :]  # pixels from the left
        self.py = (np.arange(y0, y0 + h, dtype=np.float32) + 0.5 - top)[:, None]  # pixels from the top
        self.u, self.v = self.px / width, self.py / height
        self.rgb = np.zeros((h, w, 3), np.float32)
        self.label = np.zeros((h, w), np.uint8)
        self.mask = np.zeros((h, w), bool)

    def noise(self, kind: str = "fine") -> np.ndarray:
        y0, y1, x0, x1 = self.box
        return getattr(self.canvas, kind)[y0:y1, x0:x1]

    # masks
    def rect(self, u0, u1, v0, v1) -> np.ndarray:
        return (self.u >= u0) & (self.u < u1) & (self.v >= v0) & (self.v < v1)

    def ellipse(self, cu, cv, ru, rv) -> np.ndarray:
        return ((self.u - cu) / ru) ** 2 + ((self.v - cv) / rv) ** 2 <= 1.0

    def disc(self, cu, cv, r_px, inner_px: float = 0.0) -> np.ndarray:
        d2 = (self.px - cu * self.width) ** 2 + (self.py - cv * self.height) ** 2
        return (d2 <= r_px**2) & (d2 >= inner_px**2)

    def line(self, ua, va, ub, vb, thick_px) -> np.ndarray:
        ax, ay, bx, by = ua * self.width, va * self.height, ub * self.width, vb * self.height
        dx, dy = bx - ax, by - ay
        t = np.clip(((self.px - ax) * dx + (self.py - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        return (self.px - ax - t * dx) ** 2 + (self.py - ay - t * dy) ** 2 <= (thick_px / 2) ** 2

    def paint(self, mask, rgb, label: int, shade=None) -> None:
        mask = np.broadcast_to(mask, self.mask.shape)
        rgb = np.asarray(rgb, np.float32)
        if shade is not None:
            rgb = rgb * np.broadcast_to(shade, self.mask.shape)[..., None]
        if rgb.ndim == 1:
            self.rgb[mask] = rgb
        else:
            self.rgb[mask] = np.broadcast_to(rgb, self.rgb.shape)[mask]
        self.label[mask] = label
        self.mask |= mask

    def commit(self) -> None:
        if self.visible and self.mask.any():
            self.canvas.paint(self.box, self.mask, self.depth, self.rgb, self.label)


# --------------------------------------------------------------------------- the world


@dataclass
class Camera:
    f: float
    cx: float
    horizon: float
    height: float

    def col(self, x, z):
        return self.cx + self.f * x / z

    def row(self, z, y=0.0):
        return self.horizon + self.f * (self.height - y) / z

    def px(self, metres, z):
        return self.f * metres / z


@dataclass
class Scene:
    rng: np.random.Generator
    style: Style
    canvas: Canvas
    cam: Camera
    scale: float  # width / 256: minimum pixel sizes scale with the resolution
    road_centre: float = 0.0
    road_half: float = 5.0
    sidewalk: tuple[float, float] = (3.0, 3.0)  # left, right
    terrain: tuple[float, float] = (0.0, 0.0)
    urban: tuple[bool, bool] = (True, True)
    end: float = 120.0
    crossing: tuple[float, float] | None = None
    forced: tuple[str, ...] = ()
    lanes: list[float] = field(default_factory=list)

    def pick(self, key: str, jitter: float | None = None) -> np.ndarray:
        palette = self.style.palettes[key]
        base = np.asarray(palette[self.rng.integers(len(palette))], np.float32)
        j = self.style.jitter if jitter is None else jitter
        return np.clip(base + self.rng.uniform(-j, j, 3).astype(np.float32), 0, 255)

    def edge(self, side: int, extra: float = 0.0) -> float:
        """Lateral position of the sidewalk's outer edge on ``side`` (-1 left, +1 right)."""
        sw = self.sidewalk[0 if side < 0 else 1]
        return self.road_centre + side * (self.road_half + sw + extra)

    def facade(self, side: int) -> float:
        return self.edge(side, self.terrain[0 if side < 0 else 1])

    def min_px(self, px: float) -> float:
        return px * self.scale

    def count(self, key: str) -> int:
        n = int(self.rng.poisson(self.style.counts[key]))
        return max(n, 1) if key in self.forced else n

    def shade(self, noise: np.ndarray) -> np.ndarray | float:
        a = self.style.shading
        return 1.0 + a * (noise - 0.5) * 2 if a else 1.0


def _frac(x):
    return x - np.floor(x)


def _draw_sky(s: Scene) -> None:
    c = s.canvas
    top, low = s.pick("sky_top", 6), s.pick("sky_low", 6)
    hz = max(s.cam.horizon, 1.0)
    t = np.clip(c.ys / hz, 0, 1)[..., None]  # (H, 1, 1)
    rgb = np.broadcast_to(top * (1 - t) + low * t, (c.H, c.W, 3)).copy()
    if s.style.sky_kind == "clear":
        cloud = s.pick("cloud", 4)
        clouds = c.coarse > s.rng.uniform(0.62, 0.8)
        rgb[clouds] = cloud * (0.94 + 0.06 * c.medium[clouds, None])
    else:  # overcast: soft grey blotches
        rgb *= (0.95 + 0.08 * c.coarse)[..., None]
    c.paint((0, c.H, 0, c.W), np.ones((c.H, c.W), bool), 1e9, rgb, ID["sky"])


def _draw_ground(s: Scene) -> None:
    c, cam, st = s.canvas, s.cam, s.style
    y0 = int(np.ceil(cam.horizon + 0.5))
    if y0 >= c.H:
        return
    v = c.ys[y0:]
    z = cam.f * cam.height / (v - cam.horizon)  # (h, 1)
    x = (c.xs - cam.cx) * z / cam.f  # (h, W)
    xr = x - s.road_centre
    fine, medium, coarse = c.fine[y0:], c.medium[y0:], c.coarse[y0:]
    h = c.H - y0
    lab = np.full((h, c.W), ID["terrain"], np.uint8)
    left = (xr < 0)
    sw = np.where(left, s.sidewalk[0], s.sidewalk[1])
    tr = np.where(left, s.terrain[0], s.terrain[1])
    ax = np.abs(xr)
    road = ax <= s.road_half
    if s.crossing is not None:
        road |= (z >= s.crossing[0]) & (z <= s.crossing[1])
    side = ~road & (ax <= s.road_half + sw)
    # beyond the sidewalk: terrain on green sides, more sidewalk in front of facades
    beyond = ~road & ~side
    urban = np.where(left, s.urban[0], s.urban[1])
    side |= beyond & urban & (tr <= 0.01)
    lab[road] = ID["road"]
    lab[side] = ID["sidewalk"]

    rgb = np.empty((h, c.W, 3), np.float32)
    # road: flat with fine grain, lane markings, zebra crossings
    road_rgb = s.pick("road")
    grain = 1.0 + 0.05 * (fine - 0.5)
    if st.road_patches:
        grain = grain * (0.9 + 0.2 * coarse) * (1.0 + 0.1 * (medium - 0.5))
    rgb[:] = road_rgb * grain[..., None]
    mark = s.pick("marking", 4)
    lane_lines = np.zeros_like(road)
    for b in s.lanes[1:]:
        lane_lines |= (np.abs(xr - (b - s.road_half)) < 0.09) & (_frac(z / 9.0) < 0.45)
    lane_lines |= np.abs(ax - (s.road_half - 0.35)) < 0.08
    if s.crossing is not None:
        zebra = (z > s.crossing[0] - 4.0) & (z < s.crossing[0] - 1.0) & (_frac(xr / 1.2) < 0.5)
        lane_lines |= zebra
        lane_lines &= ~((z >= s.crossing[0]) & (z <= s.crossing[1]) & (ax > s.road_half))
    lane_lines &= road
    rgb[lane_lines] = mark

    # sidewalk: tiles (source) or asphalt (target), a light curb along the road
    side_rgb = s.pick("sidewalk")
    if st.sidewalk_tiles:
        fade = np.clip(1.0 - z / 35.0, 0, 1)
        tiles = (_frac((ax - s.road_half) / 0.8) < 0.12) | (_frac(z / 0.8) < 0.12)
        side_tex = 1.0 - 0.16 * tiles * fade + 0.03 * (fine - 0.5)
    else:
        side_tex = (1.0 + 0.07 * (fine - 0.5)) * (0.94 + 0.12 * coarse)
    side_px = side_rgb * side_tex[..., None]
    rgb[side] = side_px[side]
    curb = side & (ax < s.road_half + 0.3)
    rgb[curb] = s.pick("curb", 4)

    # terrain: grass with a medium grain
    ter = lab == ID["terrain"]
    ter_rgb = s.pick("terrain")
    ter_px = ter_rgb * (0.88 + 0.16 * medium + 0.08 * (fine - 0.5))[..., None]
    rgb[ter] = ter_px[ter]

    if st.shadows and s.rng.random() < st.shadows:
        shadow = c.coarse[y0:] > s.rng.uniform(0.55, 0.7)
        rgb[shadow] *= 0.72
    c.paint((y0, c.H, 0, c.W), np.ones((h, c.W), bool), np.broadcast_to(z, (h, c.W)), rgb, lab)


def _facade_texture(s: Scene, along: np.ndarray, up: np.ndarray, base: np.ndarray, light: float) -> np.ndarray:
    """Facade colours from world coordinates: ``along`` the wall and ``up`` from the ground (metres)."""
    st, rng = s.style, s.rng
    period, floor = rng.uniform(2.4, 4.0), rng.uniform(2.8, 3.4)
    ww, wh = rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6)
    glass = s.pick("window", 6)
    windows = (_frac(along / period) < ww) & (_frac(up / floor) > 1 - wh - 0.15) & (_frac(up / floor) < 0.85) & (up > floor * 0.9)
    shop = (up < floor * 0.75) & (up > 0.2) & (_frac(along / (period * 2)) < 0.7)
    out = np.broadcast_to(base * light, windows.shape + (3,)).copy()
    win = windows | (shop & (rng.random() < 0.5))
    if st.window_kind == "glass":  # reflective glass: a vertical gradient per window
        refl = 0.8 + 0.5 * _frac(up / floor)
        out[win] = (glass * refl[..., None])[win]
    else:
        out[win] = glass
    return out


def _side_plane(s: Scene, x: float, z0: float, z1: float, y0: float, y1: float, label: int, colour_fn) -> None:
    """A vertical wall parallel to the road at lateral ``x`` from depth z0 to z1, height y0..y1."""
    c, cam = s.canvas, s.cam
    z0 = max(z0, 0.8)
    if z1 <= z0:
        return
    ua, ub = cam.col(x, z0), cam.col(x, z1)
    cx0, cx1 = max(int(np.floor(min(ua, ub))), 0), min(int(np.ceil(max(ua, ub))), c.W)
    if cx1 <= cx0:
        return
    cols = c.xs[:, cx0:cx1]
    dz = (cols - cam.cx)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(dz) > 1e-3, cam.f * x / dz, np.inf)
    valid = (z >= z0) & (z <= z1)
    top = cam.row(z, y1)
    bottom = cam.row(z, y0)
    r0 = max(int(np.floor(np.min(np.where(valid, top, c.H)))), 0)
    r1 = min(int(np.ceil(np.max(np.where(valid, bottom, 0)))), c.H)
    if r1 <= r0:
        return
    ys = c.ys[r0:r1]
    mask = valid & (ys >= top) & (ys < bottom)
    up = cam.height - (ys - cam.horizon) * z / cam.f
    rgb = colour_fn(np.broadcast_to(z, mask.shape), up, (r0, r1, cx0, cx1))
    c.paint((r0, r1, cx0, cx1), mask, np.broadcast_to(z, mask.shape), rgb, label)


def _leaves(s: Scene, box, base: np.ndarray) -> np.ndarray:
    c = s.canvas
    y0, y1, x0, x1 = box
    a = s.style.vegetation_texture
    t = 1.0 - a / 2 + a * (0.6 * c.medium[y0:y1, x0:x1] + 0.4 * c.fine[y0:y1, x0:x1])
    return base * t[..., None]


def _draw_sides(s: Scene) -> None:
    """Facades, hedges, walls and fences along both sides, and the skyline at the street's end."""
    rng = s.rng
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        z = rng.uniform(0.8, 5.0)
        x = s.facade(side)
        light = 1.0 if side < 0 else 0.82
        while z < s.end:
            length = rng.uniform(8.0, 30.0)
            if s.crossing is not None and z < s.crossing[1] and z + length > s.crossing[0]:
                length = max(s.crossing[0] - z, 0.0)
                if length < 1.0:
                    z = s.crossing[1] + rng.uniform(0.0, 3.0)
                    continue
            if s.urban[i]:
                height = rng.uniform(6.0, 28.0)
                base = s.pick("building")

                def facade(zz, up, box, base=base, z_start=z):
                    return _facade_texture(s, zz - z_start, up, base, light)

                _side_plane(s, x, z, z + length, 0.0, height, ID["building"], facade)
            else:
                height = rng.uniform(1.0, 3.0)
                base = s.pick("vegetation")
                _side_plane(s, x, z, z + length, 0.0, height, ID["vegetation"], lambda zz, up, box, b=base: _leaves(s, box, b))
            z += length + (rng.uniform(2.0, 10.0) if rng.random() < 0.3 else 0.0)
        # walls and fences along the sidewalk's outer edge
        for kind in ("wall", "fence"):
            for _ in range(s.count(kind)):
                z0 = rng.uniform(2.0, 30.0) if kind not in s.forced else rng.uniform(6.0, 14.0)
                length = rng.uniform(5.0, 25.0) if kind not in s.forced else rng.uniform(10.0, 25.0)
                # along the property line, just in front of the facades (fences before walls)
                if kind == "wall":
                    _wall(s, s.facade(side) - side * 0.05, z0, z0 + length, rng.uniform(1.0, 2.8))
                else:
                    _fence(s, s.facade(side) - side * 0.1, z0, z0 + length, rng.uniform(1.0, 2.0))
    _draw_skyline(s)


def _wall(s: Scene, x, z0, z1, height) -> None:
    base = s.pick("wall")
    bricks = s.style.wall_kind == "bricks"

    def colour(zz, up, box):
        if bricks:
            course = np.floor(up / 0.25)
            joint = (_frac(up / 0.25) < 0.18) | (_frac(zz / 0.5 + 0.5 * course) < 0.08)
            t = np.where(joint, 0.72, 1.0) * (0.95 + 0.1 * s.canvas.fine[box[0]:box[1], box[2]:box[3]])
        else:
            joint = (_frac(up / 0.6) < 0.07) | (_frac(zz / 1.6) < 0.03)
            t = np.where(joint, 0.85, 1.0)
        return base * t[..., None]

    _side_plane(s, x, z0, z1, 0.0, height, ID["wall"], colour)


def _fence(s: Scene, x, z0, z1, height) -> None:
    base = s.pick("fence")
    mesh = s.style.fence_kind == "mesh"

    def colour(zz, up, box):
        if mesh:
            grid = (_frac((zz + up) / 0.3) < 0.3) | (_frac((zz - up) / 0.3) < 0.3) | (up > height - 0.08)
            t = np.where(grid, 1.0, 0.55)
        else:
            slat = (_frac(zz / 0.3) < 0.6) | (np.abs(up - 0.3) < 0.06) | (np.abs(up - height + 0.2) < 0.06)
            t = np.where(slat, 1.0, 0.5)
        return base * np.asarray(t)[..., None]

    _side_plane(s, x, z0, z1, 0.0, height, ID["fence"], colour)


def _draw_skyline(s: Scene) -> None:
    """Buildings and tree lines across the end of the street (a frontal plane at depth ``end``)."""
    c, cam, rng = s.canvas, s.cam, s.rng
    z = s.end
    x = -cam.cx * z / cam.f - 5.0
    x_max = (c.W - cam.cx) * z / cam.f + 5.0
    while x < x_max:
        width = rng.uniform(6.0, 25.0)
        left, right = cam.col(x, z), cam.col(x + width, z)
        bottom = cam.row(z)
        if rng.random() < 0.6:
            height = rng.uniform(8.0, 45.0)
            sp = Sprite(c, (left + right) / 2, bottom, right - left, cam.px(height, z), z)
            if sp.visible:
                base = s.pick("building") * rng.uniform(0.85, 1.0)
                along, up = np.broadcast_arrays(sp.px * z / cam.f, (sp.height - sp.py) * z / cam.f)
                sp.paint(np.ones_like(sp.mask), _facade_texture(s, along, up, base, 1.0), ID["building"])
                sp.commit()
        else:
            height = rng.uniform(6.0, 14.0)
            sp = Sprite(c, (left + right) / 2, bottom, right - left, cam.px(height, z), z)
            if sp.visible:
                crown = sp.v > 0.35 * sp.noise("coarse") + 0.1 * sp.noise("medium")
                sp.paint(crown, _leaves(s, sp.box, s.pick("vegetation")), ID["vegetation"])
                sp.commit()
        x += width


# --------------------------------------------------------------------------- objects


def _ground_spot(s: Scene, x: float, z: float):
    return s.cam.col(x, z), s.cam.row(z)


def _tree(s: Scene, x: float, z: float) -> None:
    c, cam, rng = s.canvas, s.cam, s.rng
    height, crown = rng.uniform(4.0, 9.0), rng.uniform(1.5, 3.2)
    u, b = _ground_spot(s, x, z)
    w_px, h_px = cam.px(2 * crown, z), cam.px(height, z)
    sp = Sprite(c, u, b, max(w_px, 3), max(h_px, 4), z)
    if not sp.visible:
        return
    trunk_w = max(cam.px(0.3, z), s.min_px(2.0)) / sp.width
    ctop = crown * 2 / height
    sp.paint(sp.rect(0.5 - trunk_w / 2, 0.5 + trunk_w / 2, ctop * 0.6, 1.0), s.pick("trunk"), ID["vegetation"])
    blob = ((sp.u - 0.5) / 0.5) ** 2 + ((sp.v - ctop / 2 - 0.02) / (ctop / 2 + 0.02)) ** 2 < 0.75 + 0.6 * sp.noise("medium")
    sp.paint(blob, _leaves(s, sp.box, s.pick("vegetation")), ID["vegetation"])
    sp.commit()


def _pole(s: Scene, x: float, z: float, height: float, top_label: str | None) -> None:
    """A pole, optionally topped with a traffic light, a sign or a street lamp arm."""
    c, cam, rng = s.canvas, s.cam, s.rng
    u, b = _ground_spot(s, x, z)
    w = max(cam.px(0.16, z), s.min_px(3.0))
    h = cam.px(height, z)
    colour = s.pick("pole")
    # arm over the road for street lamps (and sometimes lights)
    side = -1 if x < s.road_centre else 1
    arm = top_label == "lamp" or (top_label == "traffic light" and rng.random() < 0.4)
    arm_len = cam.px(rng.uniform(1.5, 3.0), z) if arm else 0.0
    width = 2 * (arm_len + w) + 2
    sp = Sprite(c, u, b, width, h, z)
    if not sp.visible:
        return
    pu = 0.5
    half = w / 2 / width
    cyl = 0.8 + 0.4 * np.clip((sp.u - pu + half) / (2 * half), 0, 1) if s.style.shading == 0 else 1.0
    sp.paint(sp.rect(pu - half, pu + half, 0.0, 1.0), colour, ID["pole"], shade=cyl)
    if arm:
        thick = max(cam.px(0.12, z), s.min_px(2.0))
        end = pu - side * arm_len / width
        sp.paint(sp.line(pu, thick / 2 / h + 0.01, end, thick / 2 / h + 0.01, thick), colour, ID["pole"])
    sp.commit()
    top = b - h
    arm_end = u - side * arm_len
    if top_label == "traffic light":
        _traffic_light(s, u, top, z - 0.05)
        if arm:
            _traffic_light(s, arm_end, top + max(cam.px(0.2, z), 1) + max(cam.px(1.0, z), s.min_px(11.0)), z - 0.05)
    elif top_label == "traffic sign":
        _sign(s, u, top + max(cam.px(0.35, z), s.min_px(3.0)), z - 0.05)
    elif top_label == "lamp":
        lw = max(cam.px(0.5, z), s.min_px(4.0))
        lh = max(cam.px(0.2, z), s.min_px(2.0))
        lamp = Sprite(c, arm_end, top + lh + 1, lw, lh, z - 0.05)
        lamp.paint(np.ones_like(lamp.mask), colour * 0.8, ID["pole"])
        lamp.commit()


def _traffic_light(s: Scene, u: float, bottom: float, z: float) -> None:
    cam, rng = s.cam, s.rng
    w = max(cam.px(0.4, z), s.min_px(5.0))
    h = max(cam.px(1.0, z), s.min_px(11.0))
    sp = Sprite(s.canvas, u, bottom, w, h, z)
    if not sp.visible:
        return
    sp.paint(np.ones_like(sp.mask), s.pick("light_housing"), ID["traffic light"])
    lit = rng.integers(3)
    lamps = ((230, 40, 30), (240, 180, 20), (40, 220, 90))
    r = max(min(w, h / 3) * 0.32, 0.6)
    for k in range(3):
        on = k == lit
        colour = np.asarray(lamps[k], np.float32) * (1.0 if on else 0.3)
        sp.paint(sp.disc(0.5, (k + 0.5) / 3, r), colour, ID["traffic light"])
    sp.commit()


def _sign(s: Scene, u: float, bottom: float, z: float) -> None:
    cam, rng = s.cam, s.rng
    size = max(cam.px(0.8, z), s.min_px(7.0))
    sp = Sprite(s.canvas, u, bottom, size, size, z)
    if not sp.visible:
        return
    face = s.pick("sign", 6)
    shape = rng.integers(3)
    if shape == 0:
        m = sp.ellipse(0.5, 0.5, 0.5, 0.5)
    elif shape == 1:
        m = np.abs(sp.u - 0.5) <= sp.v / 2 + 1e-3  # triangle, point up
    else:
        m = sp.rect(0, 1, 0, 1)
    sp.paint(m, face, ID["traffic sign"])
    border = 1.0 - 2.0 / max(size, 2.0)
    inner = (np.abs(sp.u - 0.5) < 0.5 * border) & (np.abs(sp.v - 0.55) < 0.45 * border)
    if face.mean() > 200:  # white signs get a red rim
        sp.paint(m & ~inner, (200, 30, 30), ID["traffic sign"])
    else:
        sp.paint(m & inner & sp.rect(0.3, 0.7, 0.4, 0.6), (240, 240, 240), ID["traffic sign"])
    sp.commit()


def _person(s: Scene, u: float, bottom: float, z: float, rider: bool = False, seat: float = 0.0) -> None:
    """A pedestrian, or (rider=True) a rider sitting ``seat`` metres above the ground."""
    cam, rng = s.cam, s.rng
    tall = rng.uniform(1.6, 1.9) * rng.uniform(*s.style.person_scale)
    h = cam.px(tall, z)
    w = max(cam.px(0.55, z), s.min_px(3.0))
    sp = Sprite(s.canvas, u, bottom, w, h, z)
    if not sp.visible:
        return
    label = ID["rider"] if rider else ID["person"]
    shirt, trousers, skin = s.pick("shirt"), s.pick("trousers"), s.pick("skin")
    shade = s.shade(sp.noise("medium"))
    head_r = 0.12 / tall
    if rider:
        hip = 1.0 - (seat + 0.1) / tall
        lean = rng.uniform(0.05, 0.15)
        sp.paint(sp.line(0.5, hip, 0.5 + rng.uniform(-0.1, 0.1), 1.0 - 0.35 / tall, max(w * 0.35, 2)), trousers, label, shade)
        sp.paint(sp.line(0.5, hip, 0.5 + lean, 0.2, max(w * 0.55, 2)), shirt, label, shade)
        sp.paint(sp.ellipse(0.5 + lean, 0.09, 0.3, head_r * 1.2), skin, label)
        sp.paint(sp.ellipse(0.5 + lean, 0.07, 0.34, head_r), s.pick("helmet"), label)
    else:
        phase = rng.uniform(-1, 1)
        sp.paint(sp.ellipse(0.5, 0.075, 0.26, head_r * 0.9), skin, label)
        sp.paint(sp.rect(0.18, 0.82, 0.14, 0.56), shirt, label, shade)
        sp.paint(sp.rect(0.0, 0.2, 0.16, 0.5) | sp.rect(0.8, 1.0, 0.16, 0.5), shirt * 0.9, label, shade)
        swing = 0.16 * phase * (sp.v - 0.55) / 0.45
        legs = (np.abs(sp.u - 0.34 - swing) < 0.13) | (np.abs(sp.u - 0.66 + swing) < 0.13)
        sp.paint(legs & (sp.v >= 0.55), trousers, label, shade)
        if rng.random() < 0.3:  # a bag
            sp.paint(sp.rect(0.0, 0.25, 0.4, 0.6), s.pick("trousers") * 1.2, label)
    sp.commit()


def _two_wheeler(s: Scene, u: float, bottom: float, z: float, kind: str, ridden: bool) -> None:
    cam, rng = s.cam, s.rng
    motor = kind == "motorcycle"
    length, height = (2.0, 1.15) if motor else (1.75, 1.05)
    w, h = cam.px(length, z), cam.px(height, z)
    sp = Sprite(s.canvas, u, bottom, w, h, z)
    if not sp.visible:
        return
    label = ID[kind]
    flip = rng.random() < 0.5
    if flip:
        sp.u = 1.0 - sp.u
        sp.px = sp.width - sp.px
    wheel_r = cam.px(0.33 if motor else 0.34, z)
    rim = max(cam.px(0.07, z), s.min_px(1.5))
    wy = 1.0 - 0.34 / height
    colour = s.pick(kind)
    tyre = s.pick("tyre", 3)
    for wx in (0.18, 0.82):
        if motor:
            sp.paint(sp.disc(wx, wy, wheel_r), tyre, label)
            sp.paint(sp.disc(wx, wy, wheel_r * 0.45), (150, 150, 150), label)
        else:
            sp.paint(sp.disc(wx, wy, wheel_r, max(wheel_r - rim, 0)), tyre, label)
    thick = max(cam.px(0.06, z), s.min_px(2.0))
    if motor:
        sp.paint(sp.ellipse(0.5, 0.55, 0.32, 0.22), colour, label)  # tank and engine
        sp.paint(sp.rect(0.3, 0.6, 0.35, 0.45), (30, 30, 30), label)  # seat
        sp.paint(sp.line(0.82, wy, 0.72, 0.15, thick), (120, 120, 120), label)  # fork
    else:
        seat, handle, crank = (0.42, 0.3), (0.74, 0.22), (0.46, wy)
        for a, b in (((0.18, wy), seat), (seat, crank), (crank, (0.18, wy)), (seat, handle), (crank, handle), (handle, (0.82, wy))):
            sp.paint(sp.line(a[0], a[1], b[0], b[1], thick), colour, label)
    sp.commit()
    if ridden:
        seat_u = 0.42 if not motor else 0.45
        if flip:
            seat_u = 1.0 - seat_u
        _person(s, u - w / 2 + seat_u * w, bottom, z - 0.05, rider=True, seat=0.75 if motor else 0.85)


def _vehicle(s: Scene, u: float, bottom: float, z: float, kind: str, view: str, facing: bool = False) -> None:
    """car / truck / bus / train seen from behind (or the front) or from the side."""
    cam, rng = s.cam, s.rng
    dims = {"car": (1.8, 4.4, 1.5), "truck": (2.5, 8.0, 3.4), "bus": (2.55, 12.0, 3.2), "train": (2.65, 26.0, 3.7)}
    width_m, length_m, height_m = dims[kind]
    if kind == "car":
        height_m *= rng.uniform(0.9, 1.15)
    w = cam.px(width_m if view == "rear" else length_m, z)
    h = cam.px(height_m, z)
    sp = Sprite(s.canvas, u, bottom, w, h, z)
    if not sp.visible:
        return
    label = ID[kind]
    glass, tyre = s.pick("glass", 6), s.pick("tyre", 3)
    shade = s.shade(sp.noise("coarse"))
    wheel_r = cam.px(0.35 if kind == "car" else 0.5, z)
    wheel_v = 1.0 - 0.35 / height_m if kind == "car" else 1.0 - 0.5 / height_m
    if kind == "car":
        body = s.pick("car")
        if view == "rear":
            sp.paint(sp.rect(0.0, 0.08, 0.82, 1.0) | sp.rect(0.92, 1.0, 0.82, 1.0), tyre, label)
            sp.paint(sp.rect(0.0, 1.0, 0.42, 0.9), body, label, shade)
            cabin = (sp.v >= 0.04) & (sp.v < 0.42) & (np.abs(sp.u - 0.5) < 0.36 + 0.12 * sp.v / 0.42)
            sp.paint(cabin, body, label, shade)
            sp.paint(cabin & (sp.v > 0.1) & (np.abs(sp.u - 0.5) < 0.3 + 0.1 * sp.v / 0.42), glass, label)
            lights = (230, 230, 200) if facing else (210, 30, 30)
            sp.paint(sp.rect(0.04, 0.2, 0.5, 0.6) | sp.rect(0.8, 0.96, 0.5, 0.6), lights, label)
            sp.paint(sp.rect(0.38, 0.62, 0.64, 0.74), (235, 235, 235), label)
            sp.paint(sp.rect(0.0, 1.0, 0.82, 0.9), body * 0.55, label)
        else:
            sp.paint(sp.rect(0.0, 1.0, 0.4, 0.86), body, label, shade)
            cabin = (sp.v >= 0.04) & (sp.v < 0.4) & (sp.u > 0.2 + 0.1 * (0.4 - sp.v) / 0.36) & (sp.u < 0.8 - 0.08 * (0.4 - sp.v) / 0.36)
            sp.paint(cabin, body, label, shade)
            sp.paint(cabin & (sp.v > 0.1) & ~sp.rect(0.48, 0.52, 0, 1), glass, label)
            for wx in (0.2, 0.8):
                sp.paint(sp.disc(wx, wheel_v, wheel_r), tyre, label)
                sp.paint(sp.disc(wx, wheel_v, wheel_r * 0.5), (170, 170, 170), label)
    elif kind == "truck":
        cargo, cabin_c = s.pick("truck_cargo"), s.pick("truck_cabin")
        if view == "rear":
            sp.paint(sp.rect(0.05, 0.25, 0.85, 1.0) | sp.rect(0.75, 0.95, 0.85, 1.0), tyre, label)
            sp.paint(sp.rect(0.0, 1.0, 0.0, 0.86), cargo, label, shade)
            sp.paint(sp.rect(0.49, 0.51, 0.05, 0.84), cargo * 0.7, label)
            sp.paint(sp.rect(0.0, 1.0, 0.8, 0.88), (40, 40, 40), label)
        else:
            sp.paint(sp.rect(0.0, 0.76, 0.0, 0.82), cargo, label, shade)
            sp.paint(sp.rect(0.78, 1.0, 0.25, 0.86), cabin_c, label, shade)
            sp.paint(sp.rect(0.84, 0.98, 0.3, 0.5), glass, label)
            sp.paint(sp.rect(0.0, 1.0, 0.82, 0.88), (40, 40, 40), label)
            for wx in (0.12, 0.24, 0.88):
                sp.paint(sp.disc(wx, wheel_v, wheel_r), tyre, label)
    elif kind == "bus":
        body = s.pick("bus")
        if view == "rear":
            sp.paint(sp.rect(0.0, 1.0, 0.0, 0.92), body, label, shade)
            sp.paint(sp.rect(0.06, 0.94, 0.1, 0.42), glass, label)
            lights = (230, 230, 200) if facing else (210, 30, 30)
            sp.paint(sp.rect(0.04, 0.16, 0.72, 0.8) | sp.rect(0.84, 0.96, 0.72, 0.8), lights, label)
            sp.paint(sp.rect(0.0, 1.0, 0.88, 1.0), (30, 30, 30), label)
        else:
            sp.paint(sp.rect(0.0, 1.0, 0.0, 0.9), body, label, shade)
            band = sp.rect(0.02, 0.98, 0.18, 0.5) & (_frac(sp.u * 9) > 0.1)
            sp.paint(band, glass, label)
            sp.paint(sp.rect(0.0, 1.0, 0.62, 0.68), body * 0.6, label)
            sp.paint(sp.rect(0.2, 0.26, 0.18, 0.88), glass, label)  # door
            for wx in (0.16, 0.8):
                sp.paint(sp.disc(wx, wheel_v, wheel_r), tyre, label)
    else:  # train (tram)
        body, stripe = s.pick("train"), s.pick("train_stripe", 4)
        if view == "rear":
            sp.paint(sp.rect(0.0, 1.0, 0.12, 0.95), body, label, shade)
            sp.paint(sp.rect(0.08, 0.92, 0.18, 0.5), glass, label)
            sp.paint(sp.rect(0.0, 1.0, 0.62, 0.7), stripe, label)
            sp.paint(sp.line(0.5, 0.12, 0.3, 0.0, max(cam.px(0.08, z), s.min_px(1.5))), (60, 60, 60), label)
            sp.paint(sp.rect(0.1, 0.2, 0.76, 0.82) | sp.rect(0.8, 0.9, 0.76, 0.82), (240, 240, 210), label)
        else:
            sp.paint(sp.rect(0.0, 1.0, 0.12, 0.95), body, label, shade)
            band = sp.rect(0.01, 0.99, 0.2, 0.5) & (_frac(sp.u * 14) > 0.12)
            sp.paint(band, glass, label)
            sp.paint(sp.rect(0.0, 1.0, 0.62, 0.7), stripe, label)
            sp.paint(_frac(sp.u * 3) < 0.006, body * 0.5, label)
            for pu in (0.3, 0.7):
                sp.paint(sp.line(pu, 0.12, pu + 0.04, 0.0, max(cam.px(0.08, z), s.min_px(1.5))), (60, 60, 60), label)
    sp.commit()


# Where a forced object goes: near enough to be seen whole (depth range in metres).
_FORCED_DEPTH = {
    "traffic_light": (8.0, 22.0), "sign": (7.0, 20.0), "bicycle": (5.0, 16.0), "motorcycle": (5.0, 16.0),
    "bicycle_rider": (6.0, 18.0), "motorcycle_rider": (6.0, 18.0), "truck": (10.0, 25.0), "bus": (10.0, 25.0),
    "train": (12.0, 30.0), "car": (6.0, 20.0), "person": (4.0, 15.0), "tree": (6.0, 20.0),
}


def _draw_objects(s: Scene) -> None:
    c, cam, rng = s.canvas, s.cam, s.rng

    def in_view(x, z):
        return -0.1 * c.W < cam.col(x, z) < 1.1 * c.W

    def place(key, k, sample):
        """(x, z) from ``sample(z_range)``; the first of a forced kind is resampled until well in view."""
        if key not in s.forced or k > 0:
            return sample(None)
        for _ in range(8):
            x, z = sample(_FORCED_DEPTH[key])
            if 0.1 * c.W < cam.col(x, z) < 0.9 * c.W:
                break
        return x, z

    def depth(z_range, lo, hi):
        return rng.uniform(*z_range) if z_range else rng.uniform(lo, hi)

    def sidewalk_x(side, inner=0.3, outer=0.3):
        sw = s.sidewalk[0 if side < 0 else 1]
        return s.road_centre + side * (s.road_half + rng.uniform(inner, max(sw - outer, inner + 0.01)))

    def side():
        return -1 if rng.random() < 0.5 else 1

    # trees on green sides and along sidewalks
    def tree_spot(zr):
        sd = side()
        i = 0 if sd < 0 else 1
        x = s.edge(sd, rng.uniform(0.3, s.terrain[i])) if s.terrain[i] > 0.5 else s.edge(sd, -0.4)
        return x, depth(zr, 5.0, 60.0)

    for k in range(s.count("tree")):
        x, z = place("tree", k, tree_spot)
        if in_view(x, z):
            _tree(s, x, z)
    # street furniture: lamps, traffic lights, signs
    for key, top, hmin, hmax in (("streetlight", "lamp", 6.0, 8.5), ("traffic_light", "traffic light", 3.2, 4.5), ("sign", "traffic sign", 2.2, 3.2)):
        for k in range(s.count(key)):
            x, z = place(key, k, lambda zr: (s.road_centre + side() * (s.road_half + rng.uniform(0.3, 0.7)), depth(zr, 4.0, 45.0)))
            if in_view(x, z):
                _pole(s, x, z, rng.uniform(hmin, hmax), top)
    # people on the sidewalks (and on the zebra crossing)
    for k in range(s.count("person")):
        x, z = place("person", k, lambda zr: (sidewalk_x(side()), depth(zr, 0, 0) if zr else 3.5 + 32.0 * rng.random() ** 1.5))
        if s.crossing is not None and rng.random() < 0.2:
            x, z = s.road_centre + rng.uniform(-s.road_half, s.road_half), s.crossing[0] - rng.uniform(1.5, 3.5)
        if in_view(x, z):
            _person(s, *_ground_spot(s, x, z), z)
        if s.style.name == "target" and rng.random() < 0.35:  # target people walk in groups
            dx = rng.uniform(0.5, 0.9) * (1 if rng.random() < 0.5 else -1)
            dz = rng.uniform(-0.3, 0.6)
            _person(s, *_ground_spot(s, x + dx, z + dz), z + dz)
    # parked two-wheelers on the sidewalk, riders at the road's edge
    for kind in ("bicycle", "motorcycle"):
        for k in range(s.count(kind)):
            x, z = place(kind, k, lambda zr: (sidewalk_x(side()), depth(zr, 4.0, 25.0)))
            if in_view(x, z):
                _two_wheeler(s, *_ground_spot(s, x, z), z, kind, ridden=False)
        key = f"{kind}_rider"
        for k in range(s.count(key)):
            x, z = place(key, k, lambda zr: (s.road_centre + side() * (s.road_half - rng.uniform(0.6, 1.4)), depth(zr, 4.5, 30.0)))
            if in_view(x, z):
                _two_wheeler(s, *_ground_spot(s, x, z), z, kind, ridden=True)
    # vehicles in the lanes (right lanes go away, left lanes come towards us) and parked
    lane_centres = [s.road_centre - s.road_half + (a + b) / 2 for a, b in zip(s.lanes[:-1], s.lanes[1:])]

    def lane_spot(kind, zr):
        if kind == "train":
            x = s.road_centre + rng.uniform(-0.5, 0.5)
        else:
            x = lane_centres[rng.integers(len(lane_centres))] + rng.uniform(-0.3, 0.3)
        return x, depth(zr, 6.0 if kind == "car" else 9.0, 70.0)

    for kind in ("car", "truck", "bus", "train"):
        for k in range(s.count(kind)):
            x, z = place(kind, k, lambda zr: lane_spot(kind, zr))
            view = "rear"
            if s.crossing is not None and rng.random() < 0.35:
                view, z = "side", (s.crossing[0] + s.crossing[1]) / 2
                x = rng.uniform(-12, 12)
            if in_view(x, z):
                _vehicle(s, *_ground_spot(s, x, z), z, kind, view, facing=x < s.road_centre)
    for _ in range(s.count("parked_car")):
        sd = side()
        x = s.road_centre + sd * (s.road_half - 1.1)
        z = rng.uniform(5.0, 50.0)
        view = "side" if rng.random() < 0.3 else "rear"
        if in_view(x, z):
            _vehicle(s, *_ground_spot(s, x, z), z, "car", view, facing=sd < 0)


# --------------------------------------------------------------------------- one image


def _layout(rng: np.random.Generator, style: Style, width: int, height: int, forced: tuple[str, ...]) -> Scene:
    canvas = Canvas(width, height, rng)
    f = rng.uniform(*style.focal) * width
    cam = Camera(
        f=f,
        cx=width / 2 + rng.uniform(-0.05, 0.05) * width,
        horizon=rng.uniform(*style.horizon) * height,
        height=rng.uniform(*style.camera_height),
    )
    s = Scene(rng=rng, style=style, canvas=canvas, cam=cam, scale=width / 256.0, forced=forced)
    s.road_half = rng.uniform(*style.road_half)
    n_lanes = max(2, int(round(2 * s.road_half / 3.3)))
    s.lanes = list(np.linspace(0, 2 * s.road_half, n_lanes + 1))
    # the camera drives right of the road's centre line
    s.road_centre = -rng.uniform(0.3, max(s.road_half - 1.6, 0.4))
    s.sidewalk = (rng.uniform(*style.sidewalk), rng.uniform(*style.sidewalk))
    s.urban = (bool(rng.random() < style.urban), bool(rng.random() < style.urban))
    terrain = []
    terrain_side = int(rng.integers(2))
    for i in range(2):
        green = not s.urban[i] or rng.random() < 0.35 or (i == terrain_side and "terrain" in forced)
        terrain.append(rng.uniform(1.5, 6.0) if green else 0.0)
    s.terrain = (terrain[0], terrain[1])
    s.end = rng.uniform(60.0, 180.0)
    if rng.random() < 0.4:
        zc = rng.uniform(14.0, 40.0)
        s.crossing = (zc, zc + rng.uniform(8.0, 14.0))
    return s


def _bonnet(s: Scene) -> None:
    """The ego vehicle's bonnet at the bottom of target frames (Cityscapes' id 1, ignored)."""
    c = s.canvas
    top = c.H * s.rng.uniform(0.88, 0.93)
    curve = top + (c.H * 0.05) * ((c.xs - c.W / 2) / (c.W / 2)) ** 2
    mask = c.ys >= curve
    base = s.pick("bonnet", 6)
    refl = 0.8 + 0.5 * np.clip((c.ys - top) / (c.H - top), 0, 1)
    rgb = base * np.broadcast_to(refl, mask.shape)[..., None] * (1.0 + 0.4 * (c.coarse[..., None] - 0.5))
    c.paint((0, c.H, 0, c.W), mask, -1.0, rgb, EGO_VEHICLE)


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    r = max(1, int(np.ceil(2 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    pad = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * pad[i:i + img.shape[0]] for i in range(2 * r + 1))
    pad = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * pad[:, i:i + img.shape[1]] for i in range(2 * r + 1))


def _camera_effects(s: Scene) -> np.ndarray:
    st, c, rng = s.style, s.canvas, s.rng
    rgb = c.rgb
    if st.haze[1] > 0:
        vis = rng.uniform(*st.haze)
        depth = np.where(np.isfinite(c.depth) & (c.depth < 1e8), np.maximum(c.depth, 0), 0)
        a = (1.0 - np.exp(-depth / vis))[..., None]
        haze = np.asarray(st.palettes["sky_low"][0], np.float32)
        rgb = rgb * (1 - a) + haze * a
    gain = rng.uniform(*st.gain)
    wb = 1.0 + rng.uniform(-st.white_balance, st.white_balance, 3).astype(np.float32) if st.white_balance else 1.0
    rgb = rgb * gain * wb
    if st.vignetting:
        r2 = ((c.xs - c.W / 2) / (c.W / 2)) ** 2 + ((c.ys - c.H / 2) / (c.H / 2)) ** 2
        rgb = rgb * (1.0 - st.vignetting * r2)[..., None]
    if st.blur[1] > 0:
        rgb = _gaussian_blur(rgb, rng.uniform(*st.blur) * s.scale)
    if st.noise[1] > 0:
        sigma = rng.uniform(*st.noise)
        rgb = rgb + rng.normal(0, sigma, (c.H, c.W, 1)).astype(np.float32)
        rgb = rgb + rng.normal(0, sigma * 0.4, (c.H, c.W, 3)).astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render(seed: int, domain: str, index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene of ``domain`` ("source" or "target"): an RGB image and its label-id map."""
    style = STYLES[domain]
    rng = np.random.default_rng([seed, DOMAINS.index(domain), index])
    forced = _FORCED[index % len(_FORCED)]
    shows = {ID[name] for key in forced for name in _SHOWS[key]} | {ID[name] for name in _ALWAYS}
    min_pixels = max(2, round(8 * (width / 256.0) ** 2))
    for _ in range(_ATTEMPTS):
        s = _layout(rng, style, width, height, forced)
        _draw_sky(s)
        _draw_ground(s)
        _draw_sides(s)
        _draw_objects(s)
        hist = np.bincount(s.canvas.label.ravel(), minlength=256)
        if all(hist[i] >= min_pixels for i in shows):
            break
    if style.ego_vehicle:
        _bonnet(s)
    return _camera_effects(s), s.canvas.label.copy()


# --------------------------------------------------------------------------- files


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, **_PNG)
    return buf.getvalue()


def _draw_job(job: tuple[int, str, int, int, int]) -> tuple[bytes, bytes, np.ndarray]:
    """Render one image and encode it: (image PNG, label PNG, label-id histogram)."""
    rgb, lab = render(*job)
    return _png(rgb), _png(lab), np.bincount(lab.ravel(), minlength=256)


def _plan(preset: dict, seed: int) -> list[tuple[tuple[int, str, int, int, int], str, str, str]]:
    """Every image to draw, in order: (render job, image path, label path, split), paths relative."""
    plan = []
    for domain in DOMAINS:
        spec = preset[domain]
        width, height = spec["size"]
        index = 0
        for split in SPLITS:
            if domain == "source":
                files = [(f"images/{n}", f"labels/{n}") for n in _source_names(spec["train"], spec["val"])[split]]
            else:
                files = [
                    (f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")
                    for city, stem in _target_paths(split, spec[split])
                ]
            for image_path, label_path in files:
                plan.append(((seed, domain, index, width, height), f"{domain}/{image_path}", f"{domain}/{label_path}", split))
                index += 1
    return plan


def _source_names(n_train: int, n_val: int) -> dict[str, list[str]]:
    return {"train": [f"{i:05d}.png" for i in range(n_train)], "val": [f"{i:05d}.png" for i in range(n_train, n_train + n_val)]}


def _target_paths(split: str, n: int) -> list[tuple[str, str]]:
    """(city, stem) per image, the images dealt to the split's cities in turn."""
    cities = TARGET_CITIES[split]
    per_city = [0] * len(cities)
    out = []
    for i in range(n):
        k = i % len(cities)
        out.append((cities[k], f"{cities[k]}_{per_city[k]:06d}_{TARGET_FRAME:06d}"))
        per_city[k] += 1
    return out


def _dataset_json(name: str, size: tuple[int, int], seed: int) -> str:
    return json.dumps({"name": name, "train_size": list(size), "seed": seed, "generator": GENERATOR}, indent=2) + "\n"


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise LaborError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise LaborError(f"{out_dir}: already exists and is not empty (use --force to replace it)")


def _drawn(plan, workers: int):
    """Yield ``_draw_job`` results in plan order, from this process or a small process pool."""
    jobs = [job for job, *_ in plan]
    if workers <= 1:
        for job in jobs:
            yield _draw_job(job)
        return
    # spawn, not fork: the caller may hold threads (torch, BLAS) that a fork would copy half-locked
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(_draw_job, jobs, chunksize=4)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def make_toy_pair(
    out_dir: Path,
    seed: int = 0,
    size: str = "default",
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict:
    """Draw the toy source/target pair into ``out_dir`` (atomically) and return a summary.

    ``workers``: processes that draw (default: 2 where there are 2 CPUs and many images, else 1);
    the files do not depend on it.
    """
    if size not in PRESETS:
        raise LaborUsageError(f"unknown toy size {size!r}; known: {', '.join(PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LaborUsageError(f"toy seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, force)
    preset = PRESETS[size]
    plan = _plan(preset, int(seed))
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(plan) >= 100 else 1
    start = time.perf_counter()
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        raise LaborError(f"{out_dir}: cannot create it ({exc.strerror or exc})") from exc

    counts = {d: np.zeros(256, np.int64) for d in DOMAINS}
    drawn = _drawn(plan, workers)
    try:
        lists: dict[tuple[str, str], list[str]] = {("source", sp): [] for sp in SPLITS}
        for done, ((job, image_path, label_path, split), (image_png, label_png, hist)) in enumerate(zip(plan, drawn), 1):
            domain = job[1]
            for rel, data in ((image_path, image_png), (label_path, label_png)):
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            counts[domain] += hist
            if domain == "source":
                lists[domain, split].append(Path(image_path).name)
            if progress:
                progress(done, len(plan))
        for split in SPLITS:
            (tmp / "source" / f"{split}.txt").write_text("".join(n + "\n" for n in lists["source", split]))
        for domain in DOMAINS:
            (tmp / domain / "labor-dataset.json").write_text(_dataset_json(f"toy {domain}", preset[domain]["size"], int(seed)))
        # into place: an old output (with force) goes only once the new one is complete
        old = None
        if out_dir.exists():
            if any(out_dir.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
                os.replace(out_dir, old / "old")
            else:
                out_dir.rmdir()
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # a full disk, a folder that vanished: nothing half-drawn is left
        drawn.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise LaborError(f"{out_dir}: cannot write ({exc.strerror or exc}); nothing was written") from exc
    except BaseException:
        drawn.close()  # stops the pool, if any, before the half-drawn folder goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    train_ids = cityscapes_id_table()
    domains = {}
    for domain in DOMAINS:
        spec, hist = preset[domain], counts[domain]
        all_px = max(int(hist.sum()), 1)
        domains[domain] = {
            "path": str(out_dir / domain),
            "layout": "gta5" if domain == "source" else "cityscapes",
            "image_size": list(spec["size"]),
            "images": {split: spec[split] for split in SPLITS},
            "class_share": {lab.name: float(hist[lab.label_id] / all_px) for lab in CITYSCAPES_LABELS},
            "void_share": float(hist[train_ids == 255].sum() / all_px),
        }
    return {
        "out_dir": str(out_dir),
        "seed": int(seed),
        "size": size,
        "counts": {f"{d} {split}": preset[d][split] for d in DOMAINS for split in SPLITS},
        "domains": domains,
        "seconds": round(time.perf_counter() - start, 3),
    }
