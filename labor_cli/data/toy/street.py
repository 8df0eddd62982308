"""The street itself: sky, ground (road, sidewalks, grass), facades, hedges, walls, fences, skyline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labor_cli.data.toy.canvas import Sprite
from labor_cli.data.toy.scene import LABEL_ID, Scene, fractional


def draw_sky(scene: Scene) -> None:
    """A vertical gradient to the horizon: clear with clouds, overcast, or a night sky."""
    canvas = scene.canvas
    top, low = scene.pick_colour("sky_top", 6), scene.pick_colour("sky_low", 6)
    horizon_row = max(scene.camera.horizon, 1.0)
    t = np.clip(canvas.ys / horizon_row, 0, 1)[..., None]  # (H, 1, 1)
    rgb = np.broadcast_to(top * (1 - t) + low * t, (canvas.height, canvas.width, 3)).copy()
    glow = None
    if scene.style.sky_kind == "clear":
        cloud = scene.pick_colour("cloud", 4)
        clouds = canvas.coarse > scene.rng.uniform(0.62, 0.8)
        rgb[clouds] = cloud * (0.94 + 0.06 * canvas.medium[clouds, None])
    elif scene.style.sky_kind == "overcast":  # soft grey blotches
        rgb *= (0.95 + 0.08 * canvas.coarse)[..., None]
    else:  # night: the sky gives off its light and reflects none, so no lamp brightens it
        rgb, glow = np.zeros_like(rgb), night_sky(scene, rgb)
    canvas.paint(
        (0, canvas.height, 0, canvas.width),
        np.ones((canvas.height, canvas.width), bool),
        1e9,
        rgb,
        LABEL_ID["sky"],
        glow,
    )


def night_sky(scene: Scene, gradient: np.ndarray) -> np.ndarray:
    """The light of a night sky: the city's glow on thin clouds, a few stars, maybe the moon."""
    canvas, rng = scene.canvas, scene.rng
    glow = gradient * (0.85 + 0.3 * canvas.coarse)[..., None]
    stars = (canvas.fine > 0.998) & (canvas.ys < 0.7 * scene.camera.horizon)
    glow[stars] = rng.uniform(50.0, 130.0)
    if rng.random() < scene.style.night.moon:
        centre_x = rng.uniform(0.1, 0.9) * canvas.width
        centre_y = rng.uniform(0.15, 0.6) * max(scene.camera.horizon, 1.0)
        radius = rng.uniform(2.0, 3.5) * scene.scale
        moon = (canvas.xs - centre_x) ** 2 + (canvas.ys - centre_y) ** 2 <= radius**2
        glow[moon] = scene.pick_colour("moon", 4)
    return glow


@dataclass
class Ground:
    """The ground below the horizon, pixel by pixel from row ``top`` down: its depth ``z`` (h, 1),
    its lateral position from the road's centre ``x_road`` (h, W), the canvas noise there, and
    which pixels are road and sidewalk (the rest is terrain)."""

    top: int
    z: np.ndarray
    x_road: np.ndarray
    fine: np.ndarray
    medium: np.ndarray
    coarse: np.ndarray
    road: np.ndarray
    sidewalk: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.x_road.shape

    def labels(self) -> np.ndarray:
        label = np.full(self.shape, LABEL_ID["terrain"], np.uint8)
        label[self.road] = LABEL_ID["road"]
        label[self.sidewalk] = LABEL_ID["sidewalk"]
        return label


def draw_ground(scene: Scene) -> None:
    """Road (lanes, markings, a zebra crossing), sidewalks with a curb, and grass, with depth."""
    canvas = scene.canvas
    ground = ground_below_horizon(scene)
    if ground is None:
        return
    label = ground.labels()
    rgb = road_colours(scene, ground)
    paint_sidewalks(scene, ground, rgb)
    terrain = label == LABEL_ID["terrain"]
    rgb[terrain] = terrain_colours(scene, ground)[terrain]
    if scene.style.shadows and scene.rng.random() < scene.style.shadows:  # patches of shadow
        shadow = ground.coarse > scene.rng.uniform(0.55, 0.7)
        rgb[shadow] *= 0.72
    h, w = ground.shape
    canvas.paint(
        (ground.top, canvas.height, 0, w), np.ones((h, w), bool), np.broadcast_to(ground.z, (h, w)), rgb, label
    )


def ground_below_horizon(scene: Scene) -> Ground | None:
    """Where each pixel below the horizon meets the ground, and what is there; None when the
    horizon is at or below the image's bottom."""
    canvas, camera = scene.canvas, scene.camera
    top = int(np.ceil(camera.horizon + 0.5))
    if top >= canvas.height:
        return None
    z = camera.focal * camera.height / (canvas.ys[top:] - camera.horizon)  # (h, 1)
    x_road = (canvas.xs - camera.centre_x) * z / camera.focal - scene.road_centre  # (h, W)
    left = x_road < 0
    sidewalk_width = np.where(left, scene.sidewalk[0], scene.sidewalk[1])
    terrain_width = np.where(left, scene.terrain[0], scene.terrain[1])
    abs_x_road = np.abs(x_road)
    road = abs_x_road <= scene.road_half
    if scene.crossing is not None:
        road |= (z >= scene.crossing[0]) & (z <= scene.crossing[1])
    sidewalk = ~road & (abs_x_road <= scene.road_half + sidewalk_width)
    # beyond the sidewalk: terrain on green sides, more sidewalk in front of facades
    beyond = ~road & ~sidewalk
    urban = np.where(left, scene.urban[0], scene.urban[1])
    sidewalk |= beyond & urban & (terrain_width <= 0.01)
    return Ground(
        top,
        z,
        x_road,
        fine=canvas.fine[top:],
        medium=canvas.medium[top:],
        coarse=canvas.coarse[top:],
        road=road,
        sidewalk=sidewalk,
    )


def road_colours(scene: Scene, ground: Ground) -> np.ndarray:
    """The whole ground coloured as road: flat with a fine grain, lane markings and zebra crossings
    (the markings only on the road itself)."""
    z, x_road, abs_x_road = ground.z, ground.x_road, np.abs(ground.x_road)
    road_rgb = scene.pick_colour("road")
    grain = 1.0 + 0.05 * (ground.fine - 0.5)
    if scene.style.road_patches:
        grain = grain * (0.9 + 0.2 * ground.coarse) * (1.0 + 0.1 * (ground.medium - 0.5))
    rgb = np.empty(ground.shape + (3,), np.float32)
    rgb[:] = road_rgb * grain[..., None]
    marking = scene.pick_colour("marking", 4)
    lane_lines = np.zeros_like(ground.road)
    for boundary in scene.lanes[1:]:
        lane_lines |= (np.abs(x_road - (boundary - scene.road_half)) < 0.09) & (fractional(z / 9.0) < 0.45)
    lane_lines |= np.abs(abs_x_road - (scene.road_half - 0.35)) < 0.08
    if scene.crossing is not None:
        zebra = (z > scene.crossing[0] - 4.0) & (z < scene.crossing[0] - 1.0) & (fractional(x_road / 1.2) < 0.5)
        lane_lines |= zebra
        lane_lines &= ~((z >= scene.crossing[0]) & (z <= scene.crossing[1]) & (abs_x_road > scene.road_half))
    lane_lines &= ground.road
    rgb[lane_lines] = marking
    return rgb


def paint_sidewalks(scene: Scene, ground: Ground, rgb: np.ndarray) -> None:
    """Sidewalks into ``rgb``: tiles (source) or asphalt (target), a light curb along the road."""
    z, abs_x_road, fine = ground.z, np.abs(ground.x_road), ground.fine
    sidewalk_rgb = scene.pick_colour("sidewalk")
    if scene.style.sidewalk_tiles:
        fade = np.clip(1.0 - z / 35.0, 0, 1)
        tiles = (fractional((abs_x_road - scene.road_half) / 0.8) < 0.12) | (fractional(z / 0.8) < 0.12)
        texture = 1.0 - 0.16 * tiles * fade + 0.03 * (fine - 0.5)
    else:
        texture = (1.0 + 0.07 * (fine - 0.5)) * (0.94 + 0.12 * ground.coarse)
    rgb[ground.sidewalk] = (sidewalk_rgb * texture[..., None])[ground.sidewalk]
    curb = ground.sidewalk & (abs_x_road < scene.road_half + 0.3)
    rgb[curb] = scene.pick_colour("curb", 4)


def terrain_colours(scene: Scene, ground: Ground) -> np.ndarray:
    """The whole ground coloured as grass, with a medium grain."""
    terrain_rgb = scene.pick_colour("terrain")
    return terrain_rgb * (0.88 + 0.16 * ground.medium + 0.08 * (ground.fine - 0.5))[..., None]


def facade_texture(
    scene: Scene, along: np.ndarray, up: np.ndarray, base: np.ndarray, light: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Facade colours from world coordinates: ``along`` the wall and ``up`` from the ground
    (metres), and at night the glow of its lit windows (None by day)."""
    style, rng = scene.style, scene.rng
    period, floor = rng.uniform(2.4, 4.0), rng.uniform(2.8, 3.4)
    window_width, window_height = rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6)
    glass = scene.pick_colour("window", 6)
    windows = (
        (fractional(along / period) < window_width)
        & (fractional(up / floor) > 1 - window_height - 0.15)
        & (fractional(up / floor) < 0.85)
        & (up > floor * 0.9)
    )
    shop = (up < floor * 0.75) & (up > 0.2) & (fractional(along / (period * 2)) < 0.7)
    out = np.broadcast_to(base * light, windows.shape + (3,)).copy()
    glazed = windows | (shop & (rng.random() < 0.5))
    if style.window_kind == "glass":  # reflective glass: a vertical gradient per window
        reflection = 0.8 + 0.5 * fractional(up / floor)
        out[glazed] = (glass * reflection[..., None])[glazed]
    else:
        out[glazed] = glass
    glow = None
    if style.night is not None:
        glow = lit_windows(scene, np.floor(along / period), np.floor(up / floor), glazed)
    return out, glow


def lit_windows(scene: Scene, column: np.ndarray, storey: np.ndarray, glazed: np.ndarray) -> np.ndarray:
    """The glow of the windows that are lit: a share of the facade's window cells, each cell
    (column, storey) lit or not as a whole."""
    rng = scene.rng
    share = rng.uniform(*scene.style.night.lit_windows)
    colour = scene.pick_colour("window_lit", 12)
    salt = int(rng.integers(1 << 30))
    # an integer hash of the cell: the same on every machine, unlike a float one
    cell = (column.astype(np.int64) * 73856093) ^ (storey.astype(np.int64) * 19349663) ^ salt
    lit = glazed & (cell % 1000 < share * 1000)
    glow = np.zeros(glazed.shape + (3,), np.float32)
    glow[lit] = colour * 0.8
    return glow


def draw_side_plane(scene: Scene, x: float, z0: float, z1: float, y0: float, y1: float, label: int, colour_fn) -> None:
    """A vertical wall parallel to the road at lateral ``x`` from depth z0 to z1, height y0..y1."""
    canvas, camera = scene.canvas, scene.camera
    z0 = max(z0, 0.8)
    if z1 <= z0:
        return
    ua, ub = camera.column(x, z0), camera.column(x, z1)
    cx0, cx1 = max(int(np.floor(min(ua, ub))), 0), min(int(np.ceil(max(ua, ub))), canvas.width)
    if cx1 <= cx0:
        return
    cols = canvas.xs[:, cx0:cx1]
    dz = cols - camera.centre_x
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(dz) > 1e-3, camera.focal * x / dz, np.inf)
    valid = (z >= z0) & (z <= z1)
    top = camera.row(z, y1)
    bottom = camera.row(z, y0)
    r0 = max(int(np.floor(np.min(np.where(valid, top, canvas.height)))), 0)
    r1 = min(int(np.ceil(np.max(np.where(valid, bottom, 0)))), canvas.height)
    if r1 <= r0:
        return
    ys = canvas.ys[r0:r1]
    mask = valid & (ys >= top) & (ys < bottom)
    up = camera.height - (ys - camera.horizon) * z / camera.focal
    surface = colour_fn(np.broadcast_to(z, mask.shape), up, (r0, r1, cx0, cx1))
    rgb, glow = surface if isinstance(surface, tuple) else (surface, None)
    canvas.paint((r0, r1, cx0, cx1), mask, np.broadcast_to(z, mask.shape), rgb, label, glow)


def leaf_colours(scene: Scene, box, base: np.ndarray) -> np.ndarray:
    """Foliage: ``base`` mottled by the canvas noise inside ``box``."""
    canvas = scene.canvas
    y0, y1, x0, x1 = box
    amplitude = scene.style.vegetation_texture
    texture = 1.0 - amplitude / 2 + amplitude * (0.6 * canvas.medium[y0:y1, x0:x1] + 0.4 * canvas.fine[y0:y1, x0:x1])
    return base * texture[..., None]


def draw_street_sides(scene: Scene) -> None:
    """Facades, hedges, walls and fences along both sides, and the skyline at the street's end."""
    rng = scene.rng
    for side in (-1, 1):
        i = 0 if side < 0 else 1
        z = rng.uniform(0.8, 5.0)
        x = scene.facade(side)
        light = 1.0 if side < 0 else 0.82
        while z < scene.end:
            length = rng.uniform(8.0, 30.0)
            if scene.crossing is not None and z < scene.crossing[1] and z + length > scene.crossing[0]:
                length = max(scene.crossing[0] - z, 0.0)
                if length < 1.0:
                    z = scene.crossing[1] + rng.uniform(0.0, 3.0)
                    continue
            if scene.urban[i]:
                height = rng.uniform(6.0, 28.0)
                base = scene.pick_colour("building")

                def facade(zz, up, box, base=base, z_start=z, light=light):
                    return facade_texture(scene, zz - z_start, up, base, light)

                draw_side_plane(scene, x, z, z + length, 0.0, height, LABEL_ID["building"], facade)
            else:
                height = rng.uniform(1.0, 3.0)
                base = scene.pick_colour("vegetation")
                draw_side_plane(
                    scene,
                    x,
                    z,
                    z + length,
                    0.0,
                    height,
                    LABEL_ID["vegetation"],
                    lambda zz, up, box, base=base: leaf_colours(scene, box, base),
                )
            z += length + (rng.uniform(2.0, 10.0) if rng.random() < 0.3 else 0.0)
        # walls and fences along the sidewalk's outer edge
        for kind in ("wall", "fence"):
            for _ in range(scene.count(kind)):
                z0 = rng.uniform(2.0, 30.0) if kind not in scene.forced else rng.uniform(6.0, 14.0)
                length = rng.uniform(5.0, 25.0) if kind not in scene.forced else rng.uniform(10.0, 25.0)
                # along the property line, just in front of the facades (fences before walls)
                if kind == "wall":
                    draw_wall(scene, scene.facade(side) - side * 0.05, z0, z0 + length, rng.uniform(1.0, 2.8))
                else:
                    draw_fence(scene, scene.facade(side) - side * 0.1, z0, z0 + length, rng.uniform(1.0, 2.0))
    draw_skyline(scene)


def draw_wall(scene: Scene, x, z0, z1, height) -> None:
    base = scene.pick_colour("wall")
    bricks = scene.style.wall_kind == "bricks"

    def colour(zz, up, box):
        if bricks:
            course = np.floor(up / 0.25)
            joint = (fractional(up / 0.25) < 0.18) | (fractional(zz / 0.5 + 0.5 * course) < 0.08)
            t = np.where(joint, 0.72, 1.0) * (0.95 + 0.1 * scene.canvas.fine[box[0] : box[1], box[2] : box[3]])
        else:
            joint = (fractional(up / 0.6) < 0.07) | (fractional(zz / 1.6) < 0.03)
            t = np.where(joint, 0.85, 1.0)
        return base * t[..., None]

    draw_side_plane(scene, x, z0, z1, 0.0, height, LABEL_ID["wall"], colour)


def draw_fence(scene: Scene, x, z0, z1, height) -> None:
    base = scene.pick_colour("fence")
    mesh = scene.style.fence_kind == "mesh"

    def colour(zz, up, box):
        if mesh:
            grid = (fractional((zz + up) / 0.3) < 0.3) | (fractional((zz - up) / 0.3) < 0.3) | (up > height - 0.08)
            t = np.where(grid, 1.0, 0.55)
        else:
            slat = (fractional(zz / 0.3) < 0.6) | (np.abs(up - 0.3) < 0.06) | (np.abs(up - height + 0.2) < 0.06)
            t = np.where(slat, 1.0, 0.5)
        return base * np.asarray(t)[..., None]

    draw_side_plane(scene, x, z0, z1, 0.0, height, LABEL_ID["fence"], colour)


def draw_skyline(scene: Scene) -> None:
    """Buildings and tree lines across the end of the street (a frontal plane at depth ``end``)."""
    canvas, camera, rng = scene.canvas, scene.camera, scene.rng
    z = scene.end
    x = -camera.centre_x * z / camera.focal - 5.0
    x_max = (canvas.width - camera.centre_x) * z / camera.focal + 5.0
    while x < x_max:
        width = rng.uniform(6.0, 25.0)
        left, right = camera.column(x, z), camera.column(x + width, z)
        bottom = camera.row(z)
        if rng.random() < 0.6:
            height = rng.uniform(8.0, 45.0)
            sprite = Sprite(canvas, (left + right) / 2, bottom, right - left, camera.pixels(height, z), z)
            if sprite.visible:
                base = scene.pick_colour("building") * rng.uniform(0.85, 1.0)
                along, up = np.broadcast_arrays(
                    sprite.px * z / camera.focal, (sprite.height - sprite.py) * z / camera.focal
                )
                colours, glow = facade_texture(scene, along, up, base, 1.0)
                sprite.paint(np.ones_like(sprite.mask), colours, LABEL_ID["building"], glow=glow)
                sprite.commit()
        else:
            height = rng.uniform(6.0, 14.0)
            sprite = Sprite(canvas, (left + right) / 2, bottom, right - left, camera.pixels(height, z), z)
            if sprite.visible:
                crown = sprite.v > 0.35 * sprite.noise("coarse") + 0.1 * sprite.noise("medium")
                sprite.paint(
                    crown, leaf_colours(scene, sprite.box, scene.pick_colour("vegetation")), LABEL_ID["vegetation"]
                )
                sprite.commit()
        x += width
