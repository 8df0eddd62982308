"""A street scene in a little pinhole-camera world, laid out at random for one image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labor_cli.data.labels import LABEL_ID_BY_NAME
from labor_cli.data.toy.canvas import Canvas
from labor_cli.data.toy.styles import Style

LABEL_ID = LABEL_ID_BY_NAME  # Cityscapes label id by class name: what the label maps hold
VOID = 0
EGO_VEHICLE = 1  # Cityscapes' "ego vehicle": the bonnet at the bottom of target frames, ignored

# Objects forced in turn (by image index, so any 3 consecutive images hold all 19 classes), and
# the classes each group must show; a scene that misses one is laid out again (same generator).
FORCED_OBJECTS = (
    ("train", "wall", "motorcycle_rider", "sign", "terrain", "person"),
    ("bus", "fence", "bicycle_rider", "traffic_light", "tree", "car"),
    ("truck", "wall", "fence", "bicycle", "motorcycle", "traffic_light", "sign", "terrain"),
)
CLASSES_SHOWN = {
    "train": ("train",),
    "bus": ("bus",),
    "truck": ("truck",),
    "car": ("car",),
    "person": ("person",),
    "wall": ("wall",),
    "fence": ("fence",),
    "terrain": ("terrain",),
    "tree": ("vegetation",),
    "sign": ("pole", "traffic sign"),
    "traffic_light": ("pole", "traffic light"),
    "bicycle": ("bicycle",),
    "motorcycle": ("motorcycle",),
    "bicycle_rider": ("bicycle", "rider"),
    "motorcycle_rider": ("motorcycle", "rider"),
}
ALWAYS_SHOWN = ("road", "sidewalk", "building", "sky")
LAYOUT_ATTEMPTS = 8


@dataclass
class Camera:
    """A pinhole camera looking down the street: world x (right), y (up) and z (depth), in metres."""

    focal: float  # in pixels
    centre_x: float  # the image column of the optical axis
    horizon: float  # the image row of the horizon
    height: float  # above the ground, in metres

    def column(self, x, z):
        """The image column of lateral position ``x`` at depth ``z``."""
        return self.centre_x + self.focal * x / z

    def row(self, z, y=0.0):
        """The image row of height ``y`` at depth ``z``."""
        return self.horizon + self.focal * (self.height - y) / z

    def pixels(self, metres, z):
        """How many pixels ``metres`` span at depth ``z``."""
        return self.focal * metres / z


@dataclass
class Light:
    """A light that lights the street at night (a lamp, a car's headlights), in world metres."""

    x: float
    y: float  # height above the ground
    z: float
    colour: np.ndarray  # (3,) in [0, 1]
    power: float  # illumination right by it, relative to daylight (half of it at ``reach`` metres)
    reach: float
    downward: bool  # a street lamp's hood sends its light down


@dataclass
class Scene:
    """One street being drawn: its generator, style, canvas, camera and layout."""

    rng: np.random.Generator
    style: Style
    canvas: Canvas
    camera: Camera
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
    # at night: the colour of this street's lamps, and the lights that objects put up as drawn
    lamp_colour: np.ndarray | None = None
    lights: list[Light] = field(default_factory=list)

    def pick_colour(self, key: str, jitter: float | None = None) -> np.ndarray:
        """A colour of the style's palette ``key``, jittered by up to ``jitter`` per channel."""
        palette = self.style.palettes[key]
        base = np.asarray(palette[self.rng.integers(len(palette))], np.float32)
        spread = self.style.jitter if jitter is None else jitter
        return np.clip(base + self.rng.uniform(-spread, spread, 3).astype(np.float32), 0, 255)

    def edge(self, side: int, extra: float = 0.0) -> float:
        """Lateral position of the sidewalk's outer edge on ``side`` (-1 left, +1 right)."""
        sidewalk_width = self.sidewalk[0 if side < 0 else 1]
        return self.road_centre + side * (self.road_half + sidewalk_width + extra)

    def facade(self, side: int) -> float:
        return self.edge(side, self.terrain[0 if side < 0 else 1])

    def min_pixels(self, pixels: float) -> float:
        """A minimum size given in pixels at 256 px width, at this image's width."""
        return pixels * self.scale

    def count(self, key: str) -> int:
        """How many objects of ``key`` to place (at least one of a forced kind)."""
        n = int(self.rng.poisson(self.style.counts[key]))
        return max(n, 1) if key in self.forced else n

    def shade(self, noise: np.ndarray) -> np.ndarray | float:
        amplitude = self.style.shading
        return 1.0 + amplitude * (noise - 0.5) * 2 if amplitude else 1.0


def fractional(x):
    """The fractional part, for stripes and tiles: ``fractional(x / period) < duty``."""
    return x - np.floor(x)


def lay_out_scene(rng: np.random.Generator, style: Style, width: int, height: int, forced: tuple[str, ...]) -> Scene:
    """A street of ``style``: the camera, the road, sidewalks, green sides, its end and a crossing."""
    canvas = Canvas(width, height, rng, glowing=style.night is not None)
    focal = rng.uniform(*style.focal) * width
    camera = Camera(
        focal=focal,
        centre_x=width / 2 + rng.uniform(-0.05, 0.05) * width,
        horizon=rng.uniform(*style.horizon) * height,
        height=rng.uniform(*style.camera_height),
    )
    scene = Scene(rng=rng, style=style, canvas=canvas, camera=camera, scale=width / 256.0, forced=forced)
    scene.road_half = rng.uniform(*style.road_half)
    n_lanes = max(2, int(round(2 * scene.road_half / 3.3)))
    scene.lanes = list(np.linspace(0, 2 * scene.road_half, n_lanes + 1))
    # the camera drives right of the road's centre line
    scene.road_centre = -rng.uniform(0.3, max(scene.road_half - 1.6, 0.4))
    scene.sidewalk = (rng.uniform(*style.sidewalk), rng.uniform(*style.sidewalk))
    scene.urban = (bool(rng.random() < style.urban), bool(rng.random() < style.urban))
    terrain = []
    terrain_side = int(rng.integers(2))
    for i in range(2):
        green = not scene.urban[i] or rng.random() < 0.35 or (i == terrain_side and "terrain" in forced)
        terrain.append(rng.uniform(1.5, 6.0) if green else 0.0)
    scene.terrain = (terrain[0], terrain[1])
    scene.end = rng.uniform(60.0, 180.0)
    if rng.random() < 0.4:
        zc = rng.uniform(14.0, 40.0)
        scene.crossing = (zc, zc + rng.uniform(8.0, 14.0))
    if style.night is not None:  # one kind of lamp per street
        scene.lamp_colour = scene.pick_colour("lamp_sodium" if rng.random() < style.night.sodium else "lamp_led", 6)
    return scene
