"""Drawing primitives: a canvas with a depth buffer, and sprites (upright objects) painted on it."""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Value noise in [0, 1): a coarse random grid, bilinearly upsampled to (h, w)."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top_left = grid[y0][:, x0]
    top_right = grid[y0][:, x0 + 1]
    bottom_left = grid[y0 + 1][:, x0]
    bottom_right = grid[y0 + 1][:, x0 + 1]
    return (top_left * (1 - fx) + top_right * fx) * (1 - fy) + (bottom_left * (1 - fx) + bottom_right * fx) * fy


class Canvas:
    """An RGB image, a label-id map and a depth buffer; the nearest paint wins.

    ``rgb`` holds what each surface reflects. With ``glowing``, ``glow`` holds the light the
    surface gives off itself (lamps, lit windows; zero elsewhere), for scenes lit afterwards.
    """

    def __init__(self, width: int, height: int, rng: np.random.Generator, glowing: bool = False):
        self.width, self.height = width, height
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.glow = np.zeros((height, width, 3), np.float32) if glowing else None
        self.label = np.zeros((height, width), np.uint8)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
        self.xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
        self.fine = rng.random((height, width), dtype=np.float32)
        self.medium = smooth_noise(rng, height, width, 3.0)
        self.coarse = smooth_noise(rng, height, width, 12.0)

    def paint(self, box, mask, depth, rgb, label, glow=None) -> None:
        """Paint ``rgb`` (3,) or (h, w, 3) and ``label`` (int or (h, w)) where ``mask`` and nearer;
        ``glow`` (like ``rgb``; None = none) is what the paint gives off, on a glowing canvas."""
        y0, y1, x0, x1 = box
        if y1 <= y0 or x1 <= x0:
            return
        nearest = self.depth[y0:y1, x0:x1]
        depth = np.broadcast_to(np.asarray(depth, np.float32), nearest.shape)
        wins = np.broadcast_to(mask, nearest.shape) & (depth < nearest)
        if not wins.any():
            return
        rgb = np.asarray(rgb, np.float32)
        self.rgb[y0:y1, x0:x1][wins] = rgb if rgb.ndim == 1 else rgb[wins]
        label = np.asarray(label)
        self.label[y0:y1, x0:x1][wins] = label if label.ndim == 0 else label[wins]
        nearest[wins] = depth[wins]
        if self.glow is not None:  # a nearer surface hides a light behind it
            glow = np.zeros(3, np.float32) if glow is None else np.asarray(glow, np.float32)
            self.glow[y0:y1, x0:x1][wins] = glow if glow.ndim == 1 else glow[wins]


class Sprite:
    """An upright object at one depth, drawn part by part in box coordinates (u, v in [0, 1])."""

    def __init__(self, canvas: Canvas, centre_x: float, bottom: float, width: float, height: float, depth: float):
        self.canvas, self.depth = canvas, depth
        self.width, self.height = width, height
        left, top = centre_x - width / 2, bottom - height
        x0, x1 = max(int(np.floor(left)), 0), min(int(np.ceil(left + width)), canvas.width)
        y0, y1 = max(int(np.floor(top)), 0), min(int(np.ceil(bottom)), canvas.height)
        self.box = (y0, y1, x0, x1)
        self.visible = x1 > x0 and y1 > y0 and width > 0.5 and height > 0.5
        h, w = max(y1 - y0, 0), max(x1 - x0, 0)
        self.px = (np.arange(x0, x0 + w, dtype=np.float32) + 0.5 - left)[None, :]  # pixels from the left
        self.py = (np.arange(y0, y0 + h, dtype=np.float32) + 0.5 - top)[:, None]  # pixels from the top
        self.u, self.v = self.px / width, self.py / height
        self.rgb = np.zeros((h, w, 3), np.float32)
        self.glow = np.zeros((h, w, 3), np.float32) if canvas.glow is not None else None
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

    def paint(self, mask, rgb, label: int, shade=None, glow=None) -> None:
        """Paint a part: ``rgb`` as :meth:`Canvas.paint`, optionally shaded, and giving off ``glow``
        (a colour, on a glowing canvas; None = none)."""
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
        if self.glow is not None:
            glow = np.zeros(3, np.float32) if glow is None else np.asarray(glow, np.float32)
            self.glow[mask] = glow if glow.ndim == 1 else np.broadcast_to(glow, self.glow.shape)[mask]

    def commit(self) -> None:
        if self.visible and self.mask.any():
            self.canvas.paint(self.box, self.mask, self.depth, self.rgb, self.label, self.glow)
