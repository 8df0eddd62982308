"""The night-time camera: light the drawn street, then record it the way a camera does at night.

Each surface's colour is what it reflects by day; at night it is lit only by the moon and the
city's glow (dim, bluish), the street lamps (pools of orange or cold white light below them),
the headlights of oncoming cars and the ego car's low beam. Lamps, lit windows, traffic lights,
car lights and the sky give off their own light, with a halo of glare around the bright ones.
The camera then brightens the dark frame (so its noise grows with it), blurs it as the car
moves during the long exposure, and darkens its corners.
"""

from __future__ import annotations

import numpy as np

from labor_cli.data.toy.camera_effects import gaussian_blur
from labor_cli.data.toy.objects import HEADLIGHT
from labor_cli.data.toy.scene import LABEL_ID, Scene


def photograph_at_night(scene: Scene) -> np.ndarray:
    """The drawn scene as a night-time camera records it, as 8-bit RGB."""
    canvas, rng, look = scene.canvas, scene.rng, scene.style.night
    radiance = canvas.rgb * illumination(scene) + canvas.glow
    strength = rng.uniform(*look.glare)
    radiance = radiance + strength * gaussian_blur(canvas.glow, 1.5 * scene.scale)
    radiance = radiance + 0.5 * strength * gaussian_blur(canvas.glow, 5.0 * scene.scale)
    image = radiance * rng.uniform(*look.exposure)
    image = motion_blur(image, rng.uniform(*look.motion_blur) * scene.scale, rng.uniform(-0.35, 0.35))
    corners = ((canvas.xs - canvas.width / 2) / (canvas.width / 2)) ** 2
    corners = corners + ((canvas.ys - canvas.height / 2) / (canvas.height / 2)) ** 2
    image = image * (1.0 - scene.style.vignetting * corners)[..., None]
    image = add_sensor_noise(image, rng.uniform(*look.read_noise), look.shot_noise, rng)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def illumination(scene: Scene) -> np.ndarray:
    """(H, W, 3) light falling on each visible surface, relative to daylight."""
    canvas, camera, look = scene.canvas, scene.camera, scene.style.night
    # every pixel's point in the world, from its depth (the sky and the bonnet have none)
    solid = np.isfinite(canvas.depth) & (canvas.depth > 0) & (canvas.depth < 1e8)
    z = np.where(solid, canvas.depth, 1.0)
    x = (canvas.xs - camera.centre_x) * z / camera.focal
    y = camera.height - (canvas.ys - camera.horizon) * z / camera.focal
    ambient = scene.rng.uniform(*look.ambient) * np.asarray(look.ambient_tint, np.float32)
    light = np.broadcast_to(ambient, canvas.rgb.shape).astype(np.float32)
    for lamp in scene.lights:
        distance2 = (x - lamp.x) ** 2 + (y - lamp.y) ** 2 + (z - lamp.z) ** 2
        falloff = lamp.power / (1.0 + distance2 / lamp.reach**2)
        if lamp.downward:  # the hood sends the light down: a pool on the ground, dim walls beside it
            falloff = falloff * np.clip((lamp.y - y) / np.sqrt(distance2 + 1e-6), 0.15, 1.0)
        light = light + np.where(solid, falloff, 0.0)[..., None] * lamp.colour
    light = light + low_beam(scene, x, y, z, solid)[..., None] * (np.asarray(HEADLIGHT, np.float32) / 255.0)
    return light


def low_beam(scene: Scene, x: np.ndarray, y: np.ndarray, z: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """The ego car's headlights: a cone down the road ahead, brightest near the car and low down;
    traffic signs send it back many times brighter (they are retroreflective)."""
    look = scene.style.night
    across = np.exp(-((x / (0.25 * z + 0.6)) ** 2))
    along = look.headlights / (1.0 + (z / look.headlight_reach) ** 2)
    sign = scene.canvas.label == LABEL_ID["traffic sign"]
    high = np.where(sign, 1.0, np.exp(-np.maximum(y - 1.2, 0.0)))
    beam = across * along * high * np.where(sign, look.retroreflection, 1.0)
    return np.where(solid & (z > 1.0), beam, 0.0)


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """The image smeared over ``length`` pixels in direction ``angle`` (radians from the x axis)."""
    if length < 1.0:
        return image
    steps = int(np.ceil(length)) + 1
    pad = int(np.ceil(length / 2)) + 1
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    out = np.zeros_like(image)
    for t in np.linspace(-length / 2, length / 2, steps):
        dy, dx = int(round(t * np.sin(angle))), int(round(t * np.cos(angle)))
        out += padded[pad + dy : pad + dy + height, pad + dx : pad + dx + width]
    return out / steps


def add_sensor_noise(image: np.ndarray, read_noise: float, shot_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Read noise, and shot noise that grows with the signal: grainy in the dark, mostly in
    brightness (one draw for all channels) and partly in colour."""
    sigma = np.sqrt(read_noise**2 + shot_noise**2 * np.maximum(image, 0.0))
    height, width = image.shape[:2]
    grain = rng.normal(0, 0.8, (height, width, 1)).astype(np.float32)
    colour = rng.normal(0, 0.6, (height, width, 3)).astype(np.float32)
    return image + sigma * (grain + colour)
