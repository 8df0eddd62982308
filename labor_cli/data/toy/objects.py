"""The objects that stand on the ground: trees, poles with lights, signs and lamps, people,
two-wheelers (ridden or parked) and vehicles, and where each kind is placed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labor_cli.data.toy.canvas import Sprite
from labor_cli.data.toy.scene import LABEL_ID, Light, Scene, fractional
from labor_cli.data.toy.street import leaf_colours

HEADLIGHT = (255, 246, 220)
TAIL_LIGHT = (255, 40, 30)
INTERIOR_LIGHT = (255, 232, 190)  # a bus's or tram's lit windows at night


def night_glow(scene: Scene, colour, strength: float = 1.0):
    """What a lit lamp gives off, at night; None by day (nothing is drawn glowing then)."""
    return None if scene.style.night is None else np.asarray(colour, np.float32) * strength


def ground_point(scene: Scene, x: float, z: float):
    """The image (column, row) of the ground at lateral ``x`` and depth ``z``."""
    return scene.camera.column(x, z), scene.camera.row(z)


def draw_tree(scene: Scene, x: float, z: float) -> None:
    canvas, camera, rng = scene.canvas, scene.camera, scene.rng
    height, crown = rng.uniform(4.0, 9.0), rng.uniform(1.5, 3.2)
    centre_x, bottom = ground_point(scene, x, z)
    w_px, h_px = camera.pixels(2 * crown, z), camera.pixels(height, z)
    sprite = Sprite(canvas, centre_x, bottom, max(w_px, 3), max(h_px, 4), z)
    if not sprite.visible:
        return
    trunk_width = max(camera.pixels(0.3, z), scene.min_pixels(2.0)) / sprite.width
    crown_bottom = crown * 2 / height
    sprite.paint(
        sprite.rect(0.5 - trunk_width / 2, 0.5 + trunk_width / 2, crown_bottom * 0.6, 1.0),
        scene.pick_colour("trunk"),
        LABEL_ID["vegetation"],
    )
    blob = ((sprite.u - 0.5) / 0.5) ** 2 + (
        (sprite.v - crown_bottom / 2 - 0.02) / (crown_bottom / 2 + 0.02)
    ) ** 2 < 0.75 + 0.6 * sprite.noise("medium")
    sprite.paint(blob, leaf_colours(scene, sprite.box, scene.pick_colour("vegetation")), LABEL_ID["vegetation"])
    sprite.commit()


def draw_pole(scene: Scene, x: float, z: float, height: float, top_label: str | None) -> None:
    """A pole, optionally topped with a traffic light, a sign or a street lamp arm."""
    canvas, camera, rng = scene.canvas, scene.camera, scene.rng
    centre_x, bottom = ground_point(scene, x, z)
    w = max(camera.pixels(0.16, z), scene.min_pixels(3.0))
    h = camera.pixels(height, z)
    colour = scene.pick_colour("pole")
    # arm over the road for street lamps (and sometimes lights)
    side = -1 if x < scene.road_centre else 1
    arm = top_label == "lamp" or (top_label == "traffic light" and rng.random() < 0.4)
    arm_len = camera.pixels(rng.uniform(1.5, 3.0), z) if arm else 0.0
    width = 2 * (arm_len + w) + 2
    sprite = Sprite(canvas, centre_x, bottom, width, h, z)
    if not sprite.visible:
        return
    pole_u = 0.5
    half = w / 2 / width
    cylinder = 0.8 + 0.4 * np.clip((sprite.u - pole_u + half) / (2 * half), 0, 1) if scene.style.shading == 0 else 1.0
    sprite.paint(sprite.rect(pole_u - half, pole_u + half, 0.0, 1.0), colour, LABEL_ID["pole"], shade=cylinder)
    if arm:
        thick = max(camera.pixels(0.12, z), scene.min_pixels(2.0))
        end = pole_u - side * arm_len / width
        sprite.paint(
            sprite.line(pole_u, thick / 2 / h + 0.01, end, thick / 2 / h + 0.01, thick), colour, LABEL_ID["pole"]
        )
    sprite.commit()
    top = bottom - h
    arm_end = centre_x - side * arm_len
    if top_label == "traffic light":
        draw_traffic_light(scene, centre_x, top, z - 0.05)
        if arm:
            draw_traffic_light(
                scene,
                arm_end,
                top + max(camera.pixels(0.2, z), 1) + max(camera.pixels(1.0, z), scene.min_pixels(11.0)),
                z - 0.05,
            )
    elif top_label == "traffic sign":
        draw_sign(scene, centre_x, top + max(camera.pixels(0.35, z), scene.min_pixels(3.0)), z - 0.05)
    elif top_label == "lamp":
        lamp_width = max(camera.pixels(0.5, z), scene.min_pixels(4.0))
        lamp_height = max(camera.pixels(0.2, z), scene.min_pixels(2.0))
        lamp = Sprite(canvas, arm_end, top + lamp_height + 1, lamp_width, lamp_height, z - 0.05)
        lamp.paint(np.ones_like(lamp.mask), colour * 0.8, LABEL_ID["pole"], glow=night_glow(scene, scene.lamp_colour))
        lamp.commit()
        if scene.style.night is not None:
            night = scene.style.night
            x_lamp = x - side * arm_len * z / camera.focal  # the arm's end, in metres
            power = rng.uniform(*night.lamp_power)
            scene.lights.append(Light(x_lamp, height, z, scene.lamp_colour / 255.0, power, night.lamp_reach, True))


def draw_traffic_light(scene: Scene, centre_x: float, bottom: float, z: float) -> None:
    camera, rng = scene.camera, scene.rng
    w = max(camera.pixels(0.4, z), scene.min_pixels(5.0))
    h = max(camera.pixels(1.0, z), scene.min_pixels(11.0))
    sprite = Sprite(scene.canvas, centre_x, bottom, w, h, z)
    if not sprite.visible:
        return
    sprite.paint(np.ones_like(sprite.mask), scene.pick_colour("light_housing"), LABEL_ID["traffic light"])
    lit = rng.integers(3)
    lamps = ((230, 40, 30), (240, 180, 20), (40, 220, 90))
    r = max(min(w, h / 3) * 0.32, 0.6)
    for k in range(3):
        on = k == lit
        colour = np.asarray(lamps[k], np.float32) * (1.0 if on else 0.3)
        glow = night_glow(scene, lamps[k]) if on else None
        sprite.paint(sprite.disc(0.5, (k + 0.5) / 3, r), colour, LABEL_ID["traffic light"], glow=glow)
    sprite.commit()


def draw_sign(scene: Scene, centre_x: float, bottom: float, z: float) -> None:
    camera, rng = scene.camera, scene.rng
    size = max(camera.pixels(0.8, z), scene.min_pixels(7.0))
    sprite = Sprite(scene.canvas, centre_x, bottom, size, size, z)
    if not sprite.visible:
        return
    face = scene.pick_colour("sign", 6)
    shape = rng.integers(3)
    if shape == 0:
        m = sprite.ellipse(0.5, 0.5, 0.5, 0.5)
    elif shape == 1:
        m = np.abs(sprite.u - 0.5) <= sprite.v / 2 + 1e-3  # triangle, point up
    else:
        m = sprite.rect(0, 1, 0, 1)
    sprite.paint(m, face, LABEL_ID["traffic sign"])
    border = 1.0 - 2.0 / max(size, 2.0)
    inner = (np.abs(sprite.u - 0.5) < 0.5 * border) & (np.abs(sprite.v - 0.55) < 0.45 * border)
    if face.mean() > 200:  # white signs get a red rim
        sprite.paint(m & ~inner, (200, 30, 30), LABEL_ID["traffic sign"])
    else:
        sprite.paint(m & inner & sprite.rect(0.3, 0.7, 0.4, 0.6), (240, 240, 240), LABEL_ID["traffic sign"])
    sprite.commit()


def draw_person(scene: Scene, centre_x: float, bottom: float, z: float, rider: bool = False, seat: float = 0.0) -> None:
    """A pedestrian, or (rider=True) a rider sitting ``seat`` metres above the ground."""
    camera, rng = scene.camera, scene.rng
    tall = rng.uniform(1.6, 1.9) * rng.uniform(*scene.style.person_scale)
    h = camera.pixels(tall, z)
    w = max(camera.pixels(0.55, z), scene.min_pixels(3.0))
    sprite = Sprite(scene.canvas, centre_x, bottom, w, h, z)
    if not sprite.visible:
        return
    label = LABEL_ID["rider"] if rider else LABEL_ID["person"]
    shirt, trousers, skin = scene.pick_colour("shirt"), scene.pick_colour("trousers"), scene.pick_colour("skin")
    shade = scene.shade(sprite.noise("medium"))
    head_r = 0.12 / tall
    if rider:
        hip = 1.0 - (seat + 0.1) / tall
        lean = rng.uniform(0.05, 0.15)
        sprite.paint(
            sprite.line(0.5, hip, 0.5 + rng.uniform(-0.1, 0.1), 1.0 - 0.35 / tall, max(w * 0.35, 2)),
            trousers,
            label,
            shade,
        )
        sprite.paint(sprite.line(0.5, hip, 0.5 + lean, 0.2, max(w * 0.55, 2)), shirt, label, shade)
        sprite.paint(sprite.ellipse(0.5 + lean, 0.09, 0.3, head_r * 1.2), skin, label)
        sprite.paint(sprite.ellipse(0.5 + lean, 0.07, 0.34, head_r), scene.pick_colour("helmet"), label)
    else:
        phase = rng.uniform(-1, 1)
        sprite.paint(sprite.ellipse(0.5, 0.075, 0.26, head_r * 0.9), skin, label)
        sprite.paint(sprite.rect(0.18, 0.82, 0.14, 0.56), shirt, label, shade)
        sprite.paint(sprite.rect(0.0, 0.2, 0.16, 0.5) | sprite.rect(0.8, 1.0, 0.16, 0.5), shirt * 0.9, label, shade)
        swing = 0.16 * phase * (sprite.v - 0.55) / 0.45
        legs = (np.abs(sprite.u - 0.34 - swing) < 0.13) | (np.abs(sprite.u - 0.66 + swing) < 0.13)
        sprite.paint(legs & (sprite.v >= 0.55), trousers, label, shade)
        if rng.random() < 0.3:  # a bag
            sprite.paint(sprite.rect(0.0, 0.25, 0.4, 0.6), scene.pick_colour("trousers") * 1.2, label)
    sprite.commit()


def draw_two_wheeler(scene: Scene, centre_x: float, bottom: float, z: float, kind: str, ridden: bool) -> None:
    camera, rng = scene.camera, scene.rng
    motor = kind == "motorcycle"
    length, height = (2.0, 1.15) if motor else (1.75, 1.05)
    w, h = camera.pixels(length, z), camera.pixels(height, z)
    sprite = Sprite(scene.canvas, centre_x, bottom, w, h, z)
    if not sprite.visible:
        return
    label = LABEL_ID[kind]
    flip = rng.random() < 0.5
    if flip:
        sprite.u = 1.0 - sprite.u
        sprite.px = sprite.width - sprite.px
    wheel_r = camera.pixels(0.33 if motor else 0.34, z)
    rim = max(camera.pixels(0.07, z), scene.min_pixels(1.5))
    wy = 1.0 - 0.34 / height
    colour = scene.pick_colour(kind)
    tyre = scene.pick_colour("tyre", 3)
    for wx in (0.18, 0.82):
        if motor:
            sprite.paint(sprite.disc(wx, wy, wheel_r), tyre, label)
            sprite.paint(sprite.disc(wx, wy, wheel_r * 0.45), (150, 150, 150), label)
        else:
            sprite.paint(sprite.disc(wx, wy, wheel_r, max(wheel_r - rim, 0)), tyre, label)
    thick = max(camera.pixels(0.06, z), scene.min_pixels(2.0))
    if motor:
        sprite.paint(sprite.ellipse(0.5, 0.55, 0.32, 0.22), colour, label)  # tank and engine
        sprite.paint(sprite.rect(0.3, 0.6, 0.35, 0.45), (30, 30, 30), label)  # seat
        sprite.paint(sprite.line(0.82, wy, 0.72, 0.15, thick), (120, 120, 120), label)  # fork
    else:
        seat, handle, crank = (0.42, 0.3), (0.74, 0.22), (0.46, wy)
        for a, b in (
            ((0.18, wy), seat),
            (seat, crank),
            (crank, (0.18, wy)),
            (seat, handle),
            (crank, handle),
            (handle, (0.82, wy)),
        ):
            sprite.paint(sprite.line(a[0], a[1], b[0], b[1], thick), colour, label)
    sprite.commit()
    if ridden:
        seat_u = 0.42 if not motor else 0.45
        if flip:
            seat_u = 1.0 - seat_u
        draw_person(scene, centre_x - w / 2 + seat_u * w, bottom, z - 0.05, rider=True, seat=0.75 if motor else 0.85)


@dataclass
class Vehicle:
    """A vehicle's sprite and what its painter shares: where it is seen from, its glass, tyres,
    shading and wheels (radius in pixels, centre as v)."""

    sprite: Sprite
    label: int
    view: str
    facing: bool
    parked: bool
    glass: np.ndarray
    tyre: np.ndarray
    shade: np.ndarray | float
    wheel_r: float
    wheel_v: float


# width, length and height in metres
VEHICLE_SIZES = {"car": (1.8, 4.4, 1.5), "truck": (2.5, 8.0, 3.4), "bus": (2.55, 12.0, 3.2), "train": (2.65, 26.0, 3.7)}


def draw_vehicle(
    scene: Scene,
    centre_x: float,
    bottom: float,
    z: float,
    kind: str,
    view: str,
    facing: bool = False,
    parked: bool = False,
) -> None:
    """car / truck / bus / train seen from behind (or the front) or from the side. At night the
    lights of a vehicle on the move glow, and so do a bus's or tram's windows."""
    camera, rng = scene.camera, scene.rng
    width_m, length_m, height_m = VEHICLE_SIZES[kind]
    if kind == "car":
        height_m *= rng.uniform(0.9, 1.15)
    w = camera.pixels(width_m if view == "rear" else length_m, z)
    h = camera.pixels(height_m, z)
    sprite = Sprite(scene.canvas, centre_x, bottom, w, h, z)
    if not sprite.visible:
        return
    glass, tyre = scene.pick_colour("glass", 6), scene.pick_colour("tyre", 3)
    wheel_m = 0.35 if kind == "car" else 0.5  # wheel radius in metres
    vehicle = Vehicle(
        sprite=sprite,
        label=LABEL_ID[kind],
        view=view,
        facing=facing,
        parked=parked,
        glass=glass,
        tyre=tyre,
        shade=scene.shade(sprite.noise("coarse")),
        wheel_r=camera.pixels(wheel_m, z),
        wheel_v=1.0 - wheel_m / height_m,
    )
    VEHICLE_PAINTERS[kind](scene, vehicle)
    sprite.commit()


def front_or_tail_lights(scene: Scene, vehicle: Vehicle):
    """The colour of the lamps seen (headlights when it faces us, else tail lights) and their
    glow (none for a parked vehicle)."""
    colour = (230, 230, 200) if vehicle.facing else (210, 30, 30)
    glow = None if vehicle.parked else night_glow(scene, HEADLIGHT if vehicle.facing else TAIL_LIGHT)
    return colour, glow


def paint_car(scene: Scene, car: Vehicle) -> None:
    sprite, label, shade = car.sprite, car.label, car.shade
    body = scene.pick_colour("car")
    if car.view == "rear":
        sprite.paint(sprite.rect(0.0, 0.08, 0.82, 1.0) | sprite.rect(0.92, 1.0, 0.82, 1.0), car.tyre, label)
        sprite.paint(sprite.rect(0.0, 1.0, 0.42, 0.9), body, label, shade)
        cabin = (sprite.v >= 0.04) & (sprite.v < 0.42) & (np.abs(sprite.u - 0.5) < 0.36 + 0.12 * sprite.v / 0.42)
        sprite.paint(cabin, body, label, shade)
        sprite.paint(
            cabin & (sprite.v > 0.1) & (np.abs(sprite.u - 0.5) < 0.3 + 0.1 * sprite.v / 0.42), car.glass, label
        )
        lights, glow = front_or_tail_lights(scene, car)
        sprite.paint(sprite.rect(0.04, 0.2, 0.5, 0.6) | sprite.rect(0.8, 0.96, 0.5, 0.6), lights, label, glow=glow)
        sprite.paint(sprite.rect(0.38, 0.62, 0.64, 0.74), (235, 235, 235), label)  # number plate
        sprite.paint(sprite.rect(0.0, 1.0, 0.82, 0.9), body * 0.55, label)  # bumper
    else:
        sprite.paint(sprite.rect(0.0, 1.0, 0.4, 0.86), body, label, shade)
        cabin = (
            (sprite.v >= 0.04)
            & (sprite.v < 0.4)
            & (sprite.u > 0.2 + 0.1 * (0.4 - sprite.v) / 0.36)
            & (sprite.u < 0.8 - 0.08 * (0.4 - sprite.v) / 0.36)
        )
        sprite.paint(cabin, body, label, shade)
        sprite.paint(cabin & (sprite.v > 0.1) & ~sprite.rect(0.48, 0.52, 0, 1), car.glass, label)
        for wx in (0.2, 0.8):
            sprite.paint(sprite.disc(wx, car.wheel_v, car.wheel_r), car.tyre, label)
            sprite.paint(sprite.disc(wx, car.wheel_v, car.wheel_r * 0.5), (170, 170, 170), label)


def paint_truck(scene: Scene, truck: Vehicle) -> None:
    sprite, label, shade = truck.sprite, truck.label, truck.shade
    cargo, cabin = scene.pick_colour("truck_cargo"), scene.pick_colour("truck_cabin")
    if truck.view == "rear":
        sprite.paint(sprite.rect(0.05, 0.25, 0.85, 1.0) | sprite.rect(0.75, 0.95, 0.85, 1.0), truck.tyre, label)
        sprite.paint(sprite.rect(0.0, 1.0, 0.0, 0.86), cargo, label, shade)
        sprite.paint(sprite.rect(0.49, 0.51, 0.05, 0.84), cargo * 0.7, label)  # the doors' seam
        sprite.paint(sprite.rect(0.0, 1.0, 0.8, 0.88), (40, 40, 40), label)
    else:
        sprite.paint(sprite.rect(0.0, 0.76, 0.0, 0.82), cargo, label, shade)
        sprite.paint(sprite.rect(0.78, 1.0, 0.25, 0.86), cabin, label, shade)
        sprite.paint(sprite.rect(0.84, 0.98, 0.3, 0.5), truck.glass, label)
        sprite.paint(sprite.rect(0.0, 1.0, 0.82, 0.88), (40, 40, 40), label)
        for wx in (0.12, 0.24, 0.88):
            sprite.paint(sprite.disc(wx, truck.wheel_v, truck.wheel_r), truck.tyre, label)


def paint_bus(scene: Scene, bus: Vehicle) -> None:
    sprite, label, shade = bus.sprite, bus.label, bus.shade
    body = scene.pick_colour("bus")
    lit_glass = night_glow(scene, INTERIOR_LIGHT, 0.5)
    if bus.view == "rear":
        sprite.paint(sprite.rect(0.0, 1.0, 0.0, 0.92), body, label, shade)
        sprite.paint(sprite.rect(0.06, 0.94, 0.1, 0.42), bus.glass, label, glow=lit_glass)
        lights, glow = front_or_tail_lights(scene, bus)
        sprite.paint(sprite.rect(0.04, 0.16, 0.72, 0.8) | sprite.rect(0.84, 0.96, 0.72, 0.8), lights, label, glow=glow)
        sprite.paint(sprite.rect(0.0, 1.0, 0.88, 1.0), (30, 30, 30), label)
    else:
        sprite.paint(sprite.rect(0.0, 1.0, 0.0, 0.9), body, label, shade)
        band = sprite.rect(0.02, 0.98, 0.18, 0.5) & (fractional(sprite.u * 9) > 0.1)
        sprite.paint(band, bus.glass, label, glow=lit_glass)
        sprite.paint(sprite.rect(0.0, 1.0, 0.62, 0.68), body * 0.6, label)
        sprite.paint(sprite.rect(0.2, 0.26, 0.18, 0.88), bus.glass, label)  # door
        for wx in (0.16, 0.8):
            sprite.paint(sprite.disc(wx, bus.wheel_v, bus.wheel_r), bus.tyre, label)


def paint_tram(scene: Scene, tram: Vehicle) -> None:
    """A tram (the "train" class), with its pantograph rods above the roof."""
    sprite, label, shade = tram.sprite, tram.label, tram.shade
    body, stripe = scene.pick_colour("train"), scene.pick_colour("train_stripe", 4)
    rod = max(scene.camera.pixels(0.08, sprite.depth), scene.min_pixels(1.5))
    lit_glass = night_glow(scene, INTERIOR_LIGHT, 0.5)
    sprite.paint(sprite.rect(0.0, 1.0, 0.12, 0.95), body, label, shade)
    if tram.view == "rear":
        sprite.paint(sprite.rect(0.08, 0.92, 0.18, 0.5), tram.glass, label, glow=lit_glass)
        sprite.paint(sprite.rect(0.0, 1.0, 0.62, 0.7), stripe, label)
        sprite.paint(sprite.line(0.5, 0.12, 0.3, 0.0, rod), (60, 60, 60), label)
        lights = sprite.rect(0.1, 0.2, 0.76, 0.82) | sprite.rect(0.8, 0.9, 0.76, 0.82)
        sprite.paint(lights, (240, 240, 210), label, glow=night_glow(scene, HEADLIGHT))
    else:
        band = sprite.rect(0.01, 0.99, 0.2, 0.5) & (fractional(sprite.u * 14) > 0.12)
        sprite.paint(band, tram.glass, label, glow=lit_glass)
        sprite.paint(sprite.rect(0.0, 1.0, 0.62, 0.7), stripe, label)
        sprite.paint(fractional(sprite.u * 3) < 0.006, body * 0.5, label)  # the joints between cars
        for pu in (0.3, 0.7):
            sprite.paint(sprite.line(pu, 0.12, pu + 0.04, 0.0, rod), (60, 60, 60), label)


VEHICLE_PAINTERS = {"car": paint_car, "truck": paint_truck, "bus": paint_bus, "train": paint_tram}


# Where a forced object goes: near enough to be seen whole (depth range in metres).
FORCED_DEPTH = {
    "traffic_light": (8.0, 22.0),
    "sign": (7.0, 20.0),
    "bicycle": (5.0, 16.0),
    "motorcycle": (5.0, 16.0),
    "bicycle_rider": (6.0, 18.0),
    "motorcycle_rider": (6.0, 18.0),
    "truck": (10.0, 25.0),
    "bus": (10.0, 25.0),
    "train": (12.0, 30.0),
    "car": (6.0, 20.0),
    "person": (4.0, 15.0),
    "tree": (6.0, 20.0),
}


@dataclass
class Placement:
    """Where objects stand on a scene's ground. Each spot is drawn from the scene's generator, so
    the order of the calls is part of what a seed gives."""

    scene: Scene

    def in_view(self, x: float, z: float) -> bool:
        """Whether (x, z) is in the image's columns, or just beside them."""
        width = self.scene.canvas.width
        return -0.1 * width < self.scene.camera.column(x, z) < 1.1 * width

    def place(self, key: str, k: int, sample) -> tuple[float, float]:
        """(x, z) from ``sample(z_range)``: the k-th object of ``key``. The first of a forced kind
        is sampled in its FORCED_DEPTH range, again until well in view (8 tries at most)."""
        if key not in self.scene.forced or k > 0:
            return sample(None)
        width = self.scene.canvas.width
        for _ in range(8):
            x, z = sample(FORCED_DEPTH[key])
            if 0.1 * width < self.scene.camera.column(x, z) < 0.9 * width:
                break
        return x, z

    def depth(self, z_range: tuple[float, float] | None, lo: float, hi: float) -> float:
        """A depth in ``z_range`` when one is given, else in [lo, hi)."""
        return self.scene.rng.uniform(*z_range) if z_range else self.scene.rng.uniform(lo, hi)

    def sidewalk_x(self, side: int, inner: float = 0.3, outer: float = 0.3) -> float:
        """A lateral position on ``side``'s sidewalk, ``inner`` from the road and ``outer`` from its edge."""
        scene = self.scene
        width = scene.sidewalk[0 if side < 0 else 1]
        return scene.road_centre + side * (scene.road_half + scene.rng.uniform(inner, max(width - outer, inner + 0.01)))

    def random_side(self) -> int:
        """-1 (left) or 1 (right), evenly."""
        return -1 if self.scene.rng.random() < 0.5 else 1


def draw_objects(scene: Scene) -> None:
    """Trees, street furniture, people, two-wheelers and vehicles, each where it belongs. The canvas
    keeps the nearest paint, so the order is free; it is kept because it is the order of the random
    draws that a seed gives."""
    spots = Placement(scene)
    draw_trees(scene, spots)
    draw_street_furniture(scene, spots)
    draw_people(scene, spots)
    draw_two_wheelers(scene, spots)
    draw_vehicles_in_lanes(scene, spots)
    draw_parked_cars(scene, spots)


def draw_trees(scene: Scene, spots: Placement) -> None:
    """Trees on the green sides, and along the sidewalks' outer edges where there is no green."""
    rng = scene.rng

    def tree_spot(depth_range):
        side = spots.random_side()
        i = 0 if side < 0 else 1
        x = scene.edge(side, rng.uniform(0.3, scene.terrain[i])) if scene.terrain[i] > 0.5 else scene.edge(side, -0.4)
        return x, spots.depth(depth_range, 5.0, 60.0)

    for k in range(scene.count("tree")):
        x, z = spots.place("tree", k, tree_spot)
        if spots.in_view(x, z):
            draw_tree(scene, x, z)


# street furniture: the placement key, what tops the pole, and the pole's height range in metres
STREET_FURNITURE = (
    ("streetlight", "lamp", 6.0, 8.5),
    ("traffic_light", "traffic light", 3.2, 4.5),
    ("sign", "traffic sign", 2.2, 3.2),
)


def draw_street_furniture(scene: Scene, spots: Placement) -> None:
    """Street lamps, traffic lights and signs on poles at the road's edge."""
    rng = scene.rng

    def pole_spot(depth_range):
        x = scene.road_centre + spots.random_side() * (scene.road_half + rng.uniform(0.3, 0.7))
        return x, spots.depth(depth_range, 4.0, 45.0)

    for key, top, hmin, hmax in STREET_FURNITURE:
        for k in range(scene.count(key)):
            x, z = spots.place(key, k, pole_spot)
            if spots.in_view(x, z):
                draw_pole(scene, x, z, rng.uniform(hmin, hmax), top)


def draw_people(scene: Scene, spots: Placement) -> None:
    """People on the sidewalks (more of them near), some on the zebra crossing, some in pairs."""
    rng = scene.rng

    def sidewalk_spot(depth_range):
        x = spots.sidewalk_x(spots.random_side())
        return x, rng.uniform(*depth_range) if depth_range else 3.5 + 32.0 * rng.random() ** 1.5

    for k in range(scene.count("person")):
        x, z = spots.place("person", k, sidewalk_spot)
        if scene.crossing is not None and rng.random() < 0.2:  # crossing the road instead
            x = scene.road_centre + rng.uniform(-scene.road_half, scene.road_half)
            z = scene.crossing[0] - rng.uniform(1.5, 3.5)
        if spots.in_view(x, z):
            draw_person(scene, *ground_point(scene, x, z), z)
        if scene.style.groups and rng.random() < scene.style.groups:  # a second person beside the first
            dx = rng.uniform(0.5, 0.9) * (1 if rng.random() < 0.5 else -1)
            dz = rng.uniform(-0.3, 0.6)
            draw_person(scene, *ground_point(scene, x + dx, z + dz), z + dz)


def draw_two_wheelers(scene: Scene, spots: Placement) -> None:
    """Bicycles and motorcycles: parked on the sidewalk, and ridden at the road's edge."""
    rng = scene.rng

    def parked_spot(depth_range):
        return spots.sidewalk_x(spots.random_side()), spots.depth(depth_range, 4.0, 25.0)

    def ridden_spot(depth_range):
        x = scene.road_centre + spots.random_side() * (scene.road_half - rng.uniform(0.6, 1.4))
        return x, spots.depth(depth_range, 4.5, 30.0)

    for kind in ("bicycle", "motorcycle"):
        for k in range(scene.count(kind)):
            x, z = spots.place(kind, k, parked_spot)
            if spots.in_view(x, z):
                draw_two_wheeler(scene, *ground_point(scene, x, z), z, kind, ridden=False)
        for k in range(scene.count(f"{kind}_rider")):
            x, z = spots.place(f"{kind}_rider", k, ridden_spot)
            if spots.in_view(x, z):
                draw_two_wheeler(scene, *ground_point(scene, x, z), z, kind, ridden=True)


def draw_vehicles_in_lanes(scene: Scene, spots: Placement) -> None:
    """Cars, trucks, buses and trams in the lanes: the right lanes go away from us, the left ones
    come towards us; some cross the street at the crossing, seen from the side."""
    rng = scene.rng
    lane_centres = [
        scene.road_centre - scene.road_half + (a + b) / 2 for a, b in zip(scene.lanes[:-1], scene.lanes[1:])
    ]

    def lane_spot(kind, depth_range):
        if kind == "train":  # trams run in the middle of the road
            x = scene.road_centre + rng.uniform(-0.5, 0.5)
        else:
            x = lane_centres[rng.integers(len(lane_centres))] + rng.uniform(-0.3, 0.3)
        return x, spots.depth(depth_range, 6.0 if kind == "car" else 9.0, 70.0)

    for kind in ("car", "truck", "bus", "train"):
        for k in range(scene.count(kind)):
            x, z = spots.place(kind, k, lambda depth_range, kind=kind: lane_spot(kind, depth_range))
            view = "rear"
            if scene.crossing is not None and rng.random() < 0.35:
                view, z = "side", (scene.crossing[0] + scene.crossing[1]) / 2
                x = rng.uniform(-12, 12)
            if spots.in_view(x, z):
                facing = x < scene.road_centre
                draw_vehicle(scene, *ground_point(scene, x, z), z, kind, view, facing=facing)
                if facing and view == "rear" and scene.style.night is not None:  # its headlights light the road
                    scene.lights.append(Light(x, 0.7, z - 0.5, np.asarray(HEADLIGHT) / 255.0, 1.2, 3.0, False))


def draw_parked_cars(scene: Scene, spots: Placement) -> None:
    """Cars parked along both edges of the road, seen from behind or from the side."""
    rng = scene.rng
    for _ in range(scene.count("parked_car")):
        side = spots.random_side()
        x = scene.road_centre + side * (scene.road_half - 1.1)
        z = rng.uniform(5.0, 50.0)
        view = "side" if rng.random() < 0.3 else "rear"
        if spots.in_view(x, z):
            draw_vehicle(scene, *ground_point(scene, x, z), z, "car", view, facing=side < 0, parked=True)
