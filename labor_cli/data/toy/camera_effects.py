"""What a camera adds to a drawn scene: the ego vehicle's bonnet and sensor effects."""

from __future__ import annotations

import numpy as np

from labor_cli.data.toy.scene import EGO_VEHICLE, Scene


def draw_bonnet(scene: Scene) -> None:
    """The ego vehicle's bonnet at the bottom of target frames (Cityscapes' id 1, ignored)."""
    canvas = scene.canvas
    top = canvas.height * scene.rng.uniform(0.88, 0.93)
    curve = top + (canvas.height * 0.05) * ((canvas.xs - canvas.width / 2) / (canvas.width / 2)) ** 2
    mask = canvas.ys >= curve
    base = scene.pick_colour("bonnet", 6)
    reflection = 0.8 + 0.5 * np.clip((canvas.ys - top) / (canvas.height - top), 0, 1)
    rgb = base * np.broadcast_to(reflection, mask.shape)[..., None] * (1.0 + 0.4 * (canvas.coarse[..., None] - 0.5))
    canvas.paint((0, canvas.height, 0, canvas.width), mask, -1.0, rgb, EGO_VEHICLE)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur of an (H, W, C) image, edges extended."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(2 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    kernel /= kernel.sum()
    padded = np.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    out = sum(kernel[i] * padded[i : i + image.shape[0]] for i in range(2 * radius + 1))
    padded = np.pad(out, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(kernel[i] * padded[:, i : i + image.shape[1]] for i in range(2 * radius + 1))


def apply_camera_effects(scene: Scene) -> np.ndarray:
    """The drawn scene as a camera records it (haze, exposure, white balance, vignetting, blur,
    noise), as 8-bit RGB."""
    style, canvas, rng = scene.style, scene.canvas, scene.rng
    rgb = canvas.rgb
    if style.haze[1] > 0:
        visibility = rng.uniform(*style.haze)
        depth = np.where(np.isfinite(canvas.depth) & (canvas.depth < 1e8), np.maximum(canvas.depth, 0), 0)
        opacity = (1.0 - np.exp(-depth / visibility))[..., None]
        haze = np.asarray(style.palettes["sky_low"][0], np.float32)
        rgb = rgb * (1 - opacity) + haze * opacity
    gain = rng.uniform(*style.gain)
    white_balance = (
        1.0 + rng.uniform(-style.white_balance, style.white_balance, 3).astype(np.float32)
        if style.white_balance
        else 1.0
    )
    rgb = rgb * gain * white_balance
    if style.vignetting:
        radius2 = ((canvas.xs - canvas.width / 2) / (canvas.width / 2)) ** 2 + (
            (canvas.ys - canvas.height / 2) / (canvas.height / 2)
        ) ** 2
        rgb = rgb * (1.0 - style.vignetting * radius2)[..., None]
    if style.blur[1] > 0:
        rgb = gaussian_blur(rgb, rng.uniform(*style.blur) * scene.scale)
    if style.noise[1] > 0:
        sigma = rng.uniform(*style.noise)
        rgb = rgb + rng.normal(0, sigma, (canvas.height, canvas.width, 1)).astype(np.float32)
        rgb = rgb + rng.normal(0, sigma * 0.4, (canvas.height, canvas.width, 3)).astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
