"""Temporal smoothing of face/crop boxes for a stable driving-video crop tube.

A box is smoothed as centre (cx, cy) and size (w, h): centre and size move differently (a nodding head moves
its centre, the detector's box size mostly jitters), so each gets its own amount of smoothing.

* :func:`smooth_boxes` — offline, whole sequence: fills missed frames by linear interpolation, then a
  Gaussian filter along time (zero phase: no lag).
* :class:`BoxSmoother` — streaming, one box per call: a One-Euro filter (:mod:`dagan.one_euro`), a
  first-order low-pass whose cutoff rises with speed, so a still face is held steady and a moving face is
  followed with little lag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from dagan.faces.boxes import BoxLike, FaceBox, box_array
from dagan.one_euro import OneEuroFilter


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


class BoxSmoother:
    """Streaming One-Euro smoothing of boxes: ``update(box) -> smoothed box``, one call per frame.

    The centre (cx, cy) and the size (w, h) are each One-Euro filtered, measured in units of the first box's
    size so the settings do not depend on resolution. Centre and size have their own ``min_cutoff`` (the size
    is held steadier) and share ``beta`` and ``d_cutoff``. A frame without a face (``update(None)``) returns
    the last smoothed box (or None before the first face) without changing the state.
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
        self._center: OneEuroFilter[np.ndarray] = OneEuroFilter(fps, min_cutoff, beta, d_cutoff)
        self._size: OneEuroFilter[np.ndarray] = OneEuroFilter(fps, size_min_cutoff, beta, d_cutoff)
        self._scale: float | None = None

    def reset(self) -> None:
        """Forget the past (call at a scene cut or when the tracked face changes)."""
        self._scale = None
        self._center.reset()
        self._size.reset()

    def update(self, box: BoxLike | None) -> FaceBox | None:
        if box is None:
            return None if self._scale is None else self._box()
        z = _to_cxcywh(box_array(box))
        if self._scale is None:
            self._scale = max(float(max(z[2], z[3])), 1e-6)
        z = z / self._scale
        self._center.filter(z[:2])
        self._size.filter(z[2:])
        return self._box()

    def _box(self) -> FaceBox:
        assert self._scale is not None and self._center.value is not None and self._size.value is not None
        smoothed = np.concatenate([self._center.value, self._size.value])
        return FaceBox.from_array(_to_xyxy(smoothed * self._scale))
