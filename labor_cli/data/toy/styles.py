"""How each domain of the toy pair looks: palettes, camera, layout, object counts, sensor.

The source is "rendered" (flat colours, crisp edges, a sunny sky). Each target is one kind of
domain shift from it:

- ``photo`` (:data:`PHOTO_STYLE`): a daytime camera that repaints some classes in consistent
  ways (asphalt sidewalks like the source's road, brick walls like its buildings, ...), with
  haze, blur and noise;
- ``night`` (:data:`NIGHT_STYLE`): the source's colours seen by a night-time camera: dark,
  lit by street lamps and headlights, with glare, motion blur and strong sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NightLook:
    """How a night-time camera sees a street: who lights it, and what the sensor adds.

    Illumination is relative to daylight (1 = the surface looks as in the source); a lamp lights
    a point ``power / (1 + (distance / reach)^2)``, more below it than beside it.
    """

    ambient: tuple[float, float]  # moon and sky glow: the light everywhere
    ambient_tint: tuple[float, float, float]  # moonlight is bluish
    sodium: float  # chance that a street's lamps are sodium (orange); else LED (cold white)
    lamp_power: tuple[float, float]
    lamp_reach: float  # metres
    headlights: float  # the ego car's low beam, at its brightest
    headlight_reach: float  # metres
    retroreflection: float  # signs send the headlights back this many times brighter
    lit_windows: tuple[float, float]  # share of a street's windows that are lit
    moon: float  # chance of a moon in the sky
    glare: tuple[float, float]  # strength of the halo around lights
    exposure: tuple[float, float]  # the camera's gain
    motion_blur: tuple[float, float]  # length in pixels at 256 px width
    read_noise: tuple[float, float]  # grey levels
    shot_noise: float  # sigma = shot_noise * sqrt(grey level)


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
    # people walking in twos (chance per pedestrian; 0 = always alone)
    groups: float = 0.0
    # a night-time camera instead of the daytime effects above (None = daytime)
    night: NightLook | None = None


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
        "car": 3.0,
        "parked_car": 2.0,
        "truck": 0.5,
        "bus": 0.5,
        "train": 0.3,
        "person": 6.0,
        "bicycle_rider": 1.3,
        "motorcycle_rider": 1.0,
        "bicycle": 0.8,
        "motorcycle": 0.5,
        "streetlight": 2.0,
        "traffic_light": 1.8,
        "sign": 2.5,
        "tree": 3.5,
        "wall": 0.8,
        "fence": 0.8,
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

PHOTO_STYLE = Style(
    name="photo",
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
        "car": 2.0,
        "parked_car": 3.5,
        "truck": 0.3,
        "bus": 0.35,
        "train": 0.2,
        "person": 6.0,
        "bicycle_rider": 1.2,
        "motorcycle_rider": 0.6,
        "bicycle": 1.2,
        "motorcycle": 0.4,
        "streetlight": 1.5,
        "traffic_light": 2.0,
        "sign": 2.5,
        "tree": 3.0,
        "wall": 0.8,
        "fence": 0.8,
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
    groups=0.35,
)

# The target of the default pair (``shift="photo"``), by its historical name.
TARGET_STYLE = PHOTO_STYLE

NIGHT_STYLE = Style(
    name="night",
    palettes={
        # the source's colours (a night shift is light, not paint) ...
        **SOURCE_STYLE.palettes,
        # ... but dark coats and trousers, which the dark hides
        "shirt": ((42, 42, 48), (30, 36, 56), (72, 32, 36), (150, 150, 152), (46, 60, 44), (96, 80, 62)),
        "trousers": ((30, 32, 44), (24, 24, 26), (60, 54, 48)),
        "window": ((30, 34, 44), (40, 42, 54)),  # unlit glass
        "window_lit": ((255, 214, 140), (255, 190, 112), (220, 230, 255)),
        "sky_top": ((2, 3, 10), (4, 6, 16)),
        "sky_low": ((20, 18, 30), (28, 22, 24)),  # the city's glow at the horizon
        "moon": ((236, 236, 222),),
        "lamp_sodium": ((255, 164, 64), (255, 176, 80)),
        "lamp_led": ((222, 232, 255), (236, 240, 255)),
        "bonnet": ((24, 26, 30),),
    },
    jitter=10.0,
    focal=(0.60, 0.70),
    camera_height=(1.3, 1.6),
    horizon=(0.40, 0.48),
    road_half=(3.4, 6.0),
    sidewalk=(1.8, 3.6),
    urban=0.8,
    counts={
        # fewer people and bikes out at night, more parked cars, more lamps
        "car": 2.5,
        "parked_car": 4.0,
        "truck": 0.4,
        "bus": 0.3,
        "train": 0.25,
        "person": 3.0,
        "bicycle_rider": 0.8,
        "motorcycle_rider": 0.6,
        "bicycle": 0.7,
        "motorcycle": 0.4,
        "streetlight": 3.5,
        "traffic_light": 2.0,
        "sign": 2.5,
        "tree": 3.0,
        "wall": 0.8,
        "fence": 0.8,
    },
    person_scale=(0.9, 1.1),
    sidewalk_tiles=True,
    road_patches=True,
    fence_kind="slats",
    wall_kind="blocks",
    window_kind="glass",
    sky_kind="night",
    vegetation_texture=0.45,
    shading=0.1,
    ego_vehicle=True,
    haze=(0.0, 0.0),
    shadows=0.0,  # no sun
    gain=(1.0, 1.0),
    white_balance=0.0,
    blur=(0.0, 0.0),
    noise=(0.0, 0.0),
    vignetting=0.15,
    groups=0.15,
    night=NightLook(
        ambient=(0.07, 0.13),
        ambient_tint=(0.85, 0.92, 1.15),
        sodium=0.6,
        lamp_power=(1.0, 1.8),
        lamp_reach=4.0,
        headlights=0.5,
        headlight_reach=14.0,
        retroreflection=4.0,
        lit_windows=(0.15, 0.45),
        moon=0.5,
        glare=(0.5, 0.9),
        exposure=(1.0, 1.5),
        motion_blur=(1.0, 3.5),
        read_noise=(4.0, 8.0),
        shot_noise=1.0,
    ),
)
