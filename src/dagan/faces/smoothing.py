"""Temporal smoothing of face/crop boxes for a stable driving-video crop tube.

A box is smoothed as centre (cx, cy) and size (w, h): centre and size move differently (a nodding head moves
its centre, the detector's box size mostly jitters), so each gets its own amount of smoothing.

* :func:`smooth_boxes` — offline, whole sequence: fills missed frames by linear interpolation, then a
  Gaussian filter along time (zero phase: no lag).
* :class:`BoxSmoother` — streaming, one box per call: a One-Euro filter (Casiez et al., CHI 2012), a
  first-order low-pass whose cutoff rises with speed, so a still face is held steady and a moving face is
  followed with little lag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from dagan.faces.boxes import BoxLike, FaceBox, box_array


def _to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            (xyxy[..., 0] + xyxy[..., 2]) / 2,
            (xyxy[..., 1] + xyxy[..., 3]) / 2,
            xyxy[..., 2] - xyxy[..., 0],
            xyxy[..., 3] - xyxy[..., 1],
        ],
        axis=-1,
    )


def _to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    c, s = cxcywh[..., :2], cxcywh[..., 2:] / 2
    return np.concatenate([c - s, c + s], axis=-1)


def interpolate_missing(boxes: Sequence[BoxLike | None] | np.ndarray) -> np.ndarray:
    """N×4 boxes with missing frames (None or NaN rows) filled by linear interpolation of the neighbouring
    detections (held constant before the first and after the last one). Raises if no frame has a box."""
    arr = np.array([np.full(4, np.nan) if b is None else box_array(b) for b in boxes], dtype=np.float64)
    arr = arr.reshape(-1, 4)
    valid = ~np.isnan(arr).any(axis=1)
    if not valid.any():
        raise ValueError("cannot smooth a box sequence in which no frame has a box")
    if valid.all():
        return arr
    t = np.arange(len(arr))
    return np.stack([np.interp(t, t[valid], arr[valid, k]) for k in range(4)], axis=1)


def smooth_boxes(
    boxes: Sequence[BoxLike | None] | np.ndarray, sigma_center: float = 2.0, sigma_size: float = 4.0
) -> np.ndarray:
    """Zero-phase smoothing of a whole box sequence; returns N×4 ``[x0, y0, x1, y1]``.

    Missing frames are interpolated (:func:`interpolate_missing`); then centre and size are each convolved
    along time with a Gaussian of standard deviation ``sigma_center`` / ``sigma_size`` frames (edges
    extended with the nearest value). Being symmetric, the filter adds no lag. sigma 0 leaves a part as is.
    """
    cw = _to_cxcywh(interpolate_missing(boxes))
    if sigma_center > 0:
        cw[:, :2] = gaussian_filter1d(cw[:, :2], sigma_center, axis=0, mode="nearest")
    if sigma_size > 0:
        cw[:, 2:] = gaussian_filter1d(cw[:, 2:], sigma_size, axis=0, mode="nearest")
    return _to_xyxy(cw)


def one_euro_alpha(cutoff_hz: float, fps: float) -> float:
    """Smoothing factor of a first-order low-pass with cutoff f_c sampled at rate r:
    α = 1 / (1 + τ·r) with τ = 1 / (2π f_c)."""
    return 1.0 / (1.0 + fps / (2.0 * math.pi * cutoff_hz))


class BoxSmoother:
    """Streaming One-Euro smoothing of boxes: ``update(box) -> smoothed box``, one call per frame.

    Per component x (cx, cy, w, h, measured in units of the first box's size so the settings do not depend
    on resolution): speed ẋ = (x − x̂_prev)·fps, low-passed with cutoff ``d_cutoff``; the value is then
    low-passed with cutoff f_c = ``min_cutoff`` + ``beta``·|ẋ̂| (Hz). Centre and size have their own
    ``min_cutoff`` (the size is held steadier). A frame without a face (``update(None)``) returns the last
    smoothed box (or None before the first face) without changing the state.
    """

    def __init__(
        self,
        fps: float = 25.0,
        min_cutoff: float = 1.0,
        size_min_cutoff: float = 0.3,
        beta: float = 1.5,
        d_cutoff: float = 1.0,
    ) -> None:
        if fps <= 0 or min_cutoff <= 0 or size_min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("BoxSmoother needs fps, cutoffs > 0 and beta >= 0")
        self.fps = fps
        self.min_cutoff = np.array([min_cutoff, min_cutoff, size_min_cutoff, size_min_cutoff])
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the past (call at a scene cut or when the tracked face changes)."""
        self._scale: float | None = None
        self._x: np.ndarray | None = None
        self._dx = np.zeros(4)

    def update(self, box: BoxLike | None) -> FaceBox | None:
        if box is None:
            return None if self._x is None else self._box()
        z = _to_cxcywh(box_array(box))
        if self._x is None:
            self._scale = max(float(max(z[2], z[3])), 1e-6)
            self._x = z / self._scale
            return self._box()
        z = z / self._scale
        a_d = one_euro_alpha(self.d_cutoff, self.fps)
        self._dx = a_d * (z - self._x) * self.fps + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = 1.0 / (1.0 + self.fps / (2.0 * math.pi * cutoff))
        self._x = a * z + (1 - a) * self._x
        return self._box()

    def _box(self) -> FaceBox:
        assert self._x is not None and self._scale is not None
        return FaceBox.from_array(_to_xyxy(self._x * self._scale))
