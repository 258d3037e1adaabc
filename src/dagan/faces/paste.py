"""Paste a generated face crop back into the full frame it was cut from, with a soft-edged mask.

The mask is computed once per box (:class:`PasteBack`) and applied to every generated frame. It is exactly 0
outside the inscribed rounded square of the box, so every pixel there — and everywhere outside the box —
is returned bit-for-bit unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dagan.errors import InputError
from dagan.faces.boxes import BoxLike, box_array, check_image

#: Default feather: the mask ramps from 1 to 0 over the outer 30 % of the box's half-size. The face box
#: fills the central ~56 % of a crop made with the default scale 1.8, so the face itself is never blended.
DEFAULT_FEATHER = 0.3


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Cubic Hermite ramp 3t² − 2t³ of t clipped to [0, 1] (0 → 0, 1 → 1, zero slope at both ends)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def paste_mask(
    u: np.ndarray, v: np.ndarray, feather: float = DEFAULT_FEATHER, exponent: float = 4.0
) -> np.ndarray:
    """Soft mask at box-normalised positions u, v ∈ [−1, 1] (box centre 0, box edges ±1).

    d = (|u|^p + |v|^p)^(1/p) is the superellipse "radius" (p = 2: ellipse; p = 4: rounded square);
    mask = smoothstep((1 − d) / feather): 1 inside d ≤ 1 − feather, exactly 0 for d ≥ 1.
    """
    if not 0.0 < feather <= 1.0:
        raise ValueError(f"feather must be in (0, 1], got {feather}")
    d = (np.abs(u) ** exponent + np.abs(v) ** exponent) ** (1.0 / exponent)
    return smoothstep((1.0 - d) / feather)


class PasteBack:
    """Composites generated crops into a copy of ``full_image`` at ``box`` (float pixel-edge coordinates,
    may reach outside the image; the crop of size ``crop_size`` is stretched to the box).

    ``paster(crop)`` → uint8 array of the full image's shape: out = full + mask·(resize(crop) − full) inside
    the box, rounded; bit-identical to ``full_image`` wherever the mask is 0.
    """

    def __init__(
        self,
        full_image: np.ndarray,
        box: BoxLike,
        crop_size: int | tuple[int, int],
        feather: float = DEFAULT_FEATHER,
        exponent: float = 4.0,
    ) -> None:
        self.full = check_image(full_image, "full image").copy()
        if self.full.ndim != 3:
            raise InputError(f"full image must be H×W×3 RGB, got shape {self.full.shape}")
        self.crop_hw = (
            (crop_size, crop_size) if isinstance(crop_size, int) else (int(crop_size[0]), int(crop_size[1]))
        )
        x0, y0, x1, y1 = box_array(box)
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"paste box must have positive width and height, got {(x0, y0, x1, y1)}")
        self.box = (x0, y0, x1, y1)
        h, w = self.full.shape[:2]
        # Integer region of the image touched by the box.
        self.rx0, self.ry0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
        self.rx1, self.ry1 = min(int(math.ceil(x1)), w), min(int(math.ceil(y1)), h)
        if self.rx1 <= self.rx0 or self.ry1 <= self.ry0:
            self.mask = np.zeros((0, 0, 1), dtype=np.float32)
            return
        # Mask at the region's pixel centres, in box-normalised coordinates.
        cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        u = (np.arange(self.rx0, self.rx1) + 0.5 - cx) / (bw / 2)
        v = (np.arange(self.ry0, self.ry1) + 0.5 - cy) / (bh / 2)
        self.mask = paste_mask(u[None, :], v[:, None], feather, exponent).astype(np.float32)[:, :, None]
        self._orig = self.full[self.ry0 : self.ry1, self.rx0 : self.rx1].astype(np.float32)

    def _resample(self, crop: np.ndarray) -> np.ndarray:
        """The crop resampled onto the region's pixel grid (box → crop coordinates: (x − x0)·s/w)."""
        ch, cw = self.crop_hw
        x0, y0, x1, y1 = self.box
        sx, sy = cw / (x1 - x0), ch / (y1 - y0)
        # The region reaches up to one image pixel past the box: give the crop an edge margin covering that.
        margin = int(math.ceil(max(sx, sy))) + 1
        padded = np.pad(crop, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
        src = (
            (self.rx0 - x0) * sx + margin,
            (self.ry0 - y0) * sy + margin,
            (self.rx1 - x0) * sx + margin,
            (self.ry1 - y0) * sy + margin,
        )
        size = (self.rx1 - self.rx0, self.ry1 - self.ry0)
        return np.asarray(Image.fromarray(padded).resize(size, Image.Resampling.BICUBIC, box=src))

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        check_image(crop, "generated crop")
        if crop.shape != (*self.crop_hw, 3):
            raise InputError(f"generated crop must have shape {(*self.crop_hw, 3)}, got {crop.shape}")
        out = self.full.copy()
        if self.mask.size == 0:
            return out
        warped = self._resample(np.ascontiguousarray(crop)).astype(np.float32)
        blended = self._orig + self.mask * (warped - self._orig)
        out[self.ry0 : self.ry1, self.rx0 : self.rx1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out


def paste_back(
    full_image: np.ndarray, generated_crop: np.ndarray, box: BoxLike, feather: float = DEFAULT_FEATHER
) -> np.ndarray:
    """One-off :class:`PasteBack`: ``generated_crop`` (s×s×3 uint8) blended into ``full_image`` at ``box``."""
    return PasteBack(full_image, box, generated_crop.shape[:2], feather)(generated_crop)
