"""Face boxes and crop geometry: IoU, square (VoxCeleb-like) crop boxes, sub-pixel crops with padding.

Conventions used throughout :mod:`dagan.faces`:

* Images are numpy arrays ``H×W×3`` (or ``H×W``) of ``uint8``, RGB.
* A box ``(x0, y0, x1, y1)`` is in pixel-edge coordinates: pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``,
  so a box covering the whole image is ``(0, 0, W, H)``. Coordinates are floats and may lie outside the
  image (a face cut by the frame border).
* ``image_size`` is ``(height, width)``, the order of ``image.shape[:2]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dagan.errors import InputError

#: Default enlargement of a face detector box (side of the square crop / larger side of the face box).
#: With 1.8 the face box spans 1/1.8 ≈ 56 % of the crop side, centred — about what the face occupies in
#: the 256² VoxCeleb crops the models are trained on (those crops are the union of the SFD boxes of a
#: whole tube, which moves, enlarged by 10 % per side). Meant for boxes in the convention of
#: :mod:`dagan.faces.detect` (dlib's: eyebrows to chin), which every detector backend returns.
DEFAULT_CROP_SCALE = 1.8

#: How a crop fills the parts of its box that fall outside the image.
PAD_MODES = ("zeros", "edge")


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in pixels (edge coordinates, see module doc) with a detector score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(cx, cy)``."""
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def as_array(self) -> np.ndarray:
        """``[x0, y0, x1, y1]`` as float64."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    @classmethod
    def from_array(cls, xyxy: Sequence[float] | np.ndarray, score: float = 1.0) -> FaceBox:
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        return cls(x0, y0, x1, y1, float(score))

    def contains_point(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


@dataclass(frozen=True)
class CropBox:
    """A square crop region ``[x0, x0+size) × [y0, y0+size)`` of an image of size ``image_size``.

    ``padding`` = (left, top, right, bottom): how many pixels of the square lie outside the image on each
    side (0 where it lies inside); those pixels are filled by :func:`crop_and_resize`.
    """

    x0: float
    y0: float
    size: float
    image_size: tuple[int, int]

    @property
    def x1(self) -> float:
        return self.x0 + self.size

    @property
    def y1(self) -> float:
        return self.y0 + self.size

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + 0.5 * self.size, self.y0 + 0.5 * self.size)

    @property
    def padding(self) -> tuple[float, float, float, float]:
        h, w = self.image_size
        return (max(0.0, -self.x0), max(0.0, -self.y0), max(0.0, self.x1 - w), max(0.0, self.y1 - h))

    @property
    def needs_padding(self) -> bool:
        return any(p > 0 for p in self.padding)

    def as_box(self) -> FaceBox:
        return FaceBox(self.x0, self.y0, self.x1, self.y1)

    def as_array(self) -> np.ndarray:
        """``[x0, y0, x1, y1]`` as float64."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)


BoxLike = FaceBox | CropBox | Sequence[float] | np.ndarray


def box_array(box: BoxLike) -> np.ndarray:
    """Any box (FaceBox, CropBox or ``[x0, y0, x1, y1]``) as a float64 array ``[x0, y0, x1, y1]``."""
    if isinstance(box, FaceBox | CropBox):
        return box.as_array()
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.shape != (4,):
        raise ValueError(f"a box needs 4 numbers (x0, y0, x1, y1), got shape {np.shape(box)}")
    return arr


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two boxes: |a ∩ b| / (|a| + |b| − |a ∩ b|); 0 when both are empty."""
    ax0, ay0, ax1, ay1 = box_array(a)
    bx0, by0, bx1, by1 = box_array(b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - inter
    return float(inter / union) if union > 0 else 0.0


def union_box(boxes: Sequence[BoxLike] | np.ndarray) -> FaceBox:
    """The smallest box containing all ``boxes`` (min of x0/y0, max of x1/y1)."""
    arr = np.stack([box_array(b) for b in boxes]) if len(boxes) else np.zeros((0, 4))
    if len(arr) == 0:
        raise ValueError("union_box needs at least one box")
    return FaceBox(
        float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())
    )


def largest_face(boxes: Sequence[FaceBox]) -> FaceBox | None:
    """The box with the largest area (the main subject of a talking-head shot), or None for no boxes."""
    return max(boxes, key=lambda b: b.area) if boxes else None


def _place_interval(center: float, size: float, limit: int) -> float:
    """Start of an interval of length ``size`` centred at ``center``, shifted to lie inside ``[0, limit]``
    when it fits (size ≤ limit); otherwise kept centred on ``center`` (the crop is then padded)."""
    start = center - 0.5 * size
    if size <= limit:
        start = min(max(start, 0.0), limit - size)
    return start


def square_crop_box(
    box: BoxLike, image_size: tuple[int, int], scale: float = DEFAULT_CROP_SCALE, min_size: float = 1.0
) -> CropBox:
    """Square crop around a face box, like a VoxCeleb crop.

    side = scale · max(w, h), centred on the box centre. Along each axis the square is then shifted to lie
    inside the image when the side fits in that axis (so no padding is needed and the face is off-centre
    only as much as required); where the side is larger than the image it stays centred on the face and
    the parts outside are reported in ``CropBox.padding``. The result always contains the face box.
    """
    if scale < 1.0:
        raise ValueError(f"square_crop_box needs scale >= 1 so the crop contains the face, got {scale}")
    x0, y0, x1, y1 = box_array(box)
    h, w = int(image_size[0]), int(image_size[1])
    side = max(scale * max(x1 - x0, y1 - y0), float(min_size))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return CropBox(
        float(_place_interval(cx, side, w)), float(_place_interval(cy, side, h)), float(side), (h, w)
    )


def tube_crop_box(
    boxes: Sequence[BoxLike] | np.ndarray, image_size: tuple[int, int], increase: float = 0.1
) -> CropBox:
    """One fixed crop for a whole face tube (the FOMM/VoxCeleb preprocessing recipe).

    The union U of the tube's boxes (w × h) is enlarged by ``increase`` of its size on every side and made
    square while keeping the aspect: side = (1 + 2·increase) · max(w, h), centred on U. Then it is placed
    in the image like :func:`square_crop_box` (shifted inside when it fits, padded otherwise) instead of
    being clipped to the frame (clipping makes it non-square, and the resize would squash the face).
    Split a tube first with :func:`split_by_initial_iou` so U stays close to every frame's face.
    """
    return square_crop_box(union_box(boxes), image_size, scale=1.0 + 2.0 * increase)


def split_by_initial_iou(
    boxes: Sequence[BoxLike] | np.ndarray, min_iou: float = 0.25
) -> list[tuple[int, int]]:
    """Split a sequence of per-frame boxes into segments whose boxes overlap the segment's first box.

    A segment [start, end) continues while IoU(box_t, box_start) ≥ ``min_iou`` (VoxCeleb preprocessing
    uses 0.25); the first frame that fails starts a new segment. Returns ``[(start, end), ...]``.
    """
    arr = [box_array(b) for b in boxes]
    segments: list[tuple[int, int]] = []
    start = 0
    for t in range(1, len(arr)):
        if iou(arr[t], arr[start]) < min_iou:
            segments.append((start, t))
            start = t
    if arr:
        segments.append((start, len(arr)))
    return segments


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` if it is a uint8 H×W×3 (or H×W) array, else raise InputError naming the problem."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        desc = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise InputError(f"{what} must be a uint8 H×W×3 RGB array, got {desc}")
    if image.ndim == 3 and image.shape[2] != 3:
        raise InputError(f"{what} must have 3 colour channels (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {image.shape})")
    return image


def _padded_region(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, pad: str) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` for integer bounds that may reach outside the image, filled per ``pad``."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        if pad == "edge":  # nearest pixel of the image for every position
            ys = np.clip(np.arange(y0, y1), 0, h - 1)
            xs = np.clip(np.arange(x0, x1), 0, w - 1)
            return image[ys][:, xs]
        return np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
    region = image[cy0:cy1, cx0:cx1]
    widths = [(cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)] + [(0, 0)] * (image.ndim - 2)
    if all(a == 0 and b == 0 for a, b in widths):
        return region
    return np.pad(region, widths, mode="constant" if pad == "zeros" else "edge")


def crop_and_resize(
    image: np.ndarray,
    box: BoxLike,
    size: int | tuple[int, int],
    pad: str = "zeros",
    resample: str = "bicubic",
) -> np.ndarray:
    """Crop ``box`` (float pixel-edge coordinates, may reach outside the image) and resize it to ``size``.

    ``size`` is an int (square) or (height, width). Parts of the box outside the image are filled with
    zeros (``pad="zeros"``) or the nearest border pixel (``pad="edge"``). Sub-pixel boxes are honoured
    (a smoothed crop tube does not jitter by rounding) and down-scaling is anti-aliased (Pillow's resize
    with a source box). Returns a uint8 array of shape ``(height, width[, 3])``.
    """
    check_image(image)
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    x0, y0, x1, y1 = box_array(box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"crop box must have positive width and height, got {(x0, y0, x1, y1)}")
    # Integer region covering the box, read with padding, then a sub-pixel resize inside it.
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = max(int(np.ceil(x1)), ix0 + 1), max(int(np.ceil(y1)), iy0 + 1)
    region = np.ascontiguousarray(_padded_region(image, ix0, iy0, ix1, iy1, pad))
    filt = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "lanczos": Image.Resampling.LANCZOS,
        "nearest": Image.Resampling.NEAREST,
    }[resample]
    src = (x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0)
    return np.asarray(Image.fromarray(region).resize((out_w, out_h), filt, box=src))
