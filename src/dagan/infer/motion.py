"""Motion transfer at inference: how driving keypoints are mapped onto the source face.

Keypoint dicts are ``{"value": B×K×2, "jacobian": B×K×2×2}`` (the Jacobian is optional).

* **Absolute** motion passes the driving keypoints unchanged: the generated face takes the driving face's
  keypoint *positions*, so a different face shape (identity) leaks into the result.
* **Relative** motion (FOMM/DaGAN ``normalize_kp``) moves the source keypoints by the driving motion
  relative to an anchor frame D₀ (the first, or the best-matching, driving frame)::

      x = x_S + (x_D − x_D0) · s
      J = (J_D · J_D0⁻¹) · J_S

  With *adapt scale*, s = sqrt(A(x_S)) / sqrt(A(x_D0)), where A is the area of the 2-D convex hull of the
  keypoints of batch element 0, computed in float64 — so a small driving face does not make small motions.
  Without it, s = 1. These are the official numerics; the operations run in the same order and dtype.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError
from torch import Tensor

KeypointDict = dict[str, Tensor]
MotionMode = Literal["relative", "absolute"]
MOTION_MODES: tuple[str, ...] = ("relative", "absolute")

__all__ = [
    "MOTION_MODES",
    "MotionTransfer",
    "adapt_scale",
    "hull_area",
    "relative_keypoints",
    "transfer_motion",
]


def hull_area(points: Tensor | np.ndarray) -> float:
    """Area of the 2-D convex hull of ``points`` (K×2, or B×K×2 → batch element 0), in float64.

    For 2-D input scipy's ``ConvexHull(...).volume`` is the enclosed area. Raises ValueError when the points
    are degenerate (fewer than 3, or all on one line: no area).
    """
    if isinstance(points, Tensor):
        points = points.detach().to("cpu", torch.float64).numpy()
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 3:
        pts = pts[0]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"hull_area needs K×2 or B×K×2 points, got shape {pts.shape}")
    if len(pts) < 3:
        raise ValueError(f"a convex hull area needs at least 3 keypoints, got {len(pts)}")
    try:
        return float(ConvexHull(pts).volume)
    except QhullError as exc:
        raise ValueError("keypoints are degenerate (their convex hull has no area)") from exc


def adapt_scale(kp_source: KeypointDict, kp_anchor: KeypointDict) -> float:
    """s = sqrt(A(x_S)) / sqrt(A(x_D0)): the ratio of the two faces' keypoint-hull sizes (batch element 0).

    Falls back to s = 1 with a warning when either hull is degenerate (e.g. an untrained detector that puts
    every keypoint at one spot), since no size ratio can be measured.
    """
    try:
        source_area = hull_area(kp_source["value"])
        anchor_area = hull_area(kp_anchor["value"])
    except ValueError as exc:
        warnings.warn(f"adapt-scale disabled: {exc}", RuntimeWarning, stacklevel=2)
        return 1.0
    if anchor_area <= 0.0 or source_area <= 0.0:
        warnings.warn("adapt-scale disabled: a keypoint hull has zero area", RuntimeWarning, stacklevel=2)
        return 1.0
    return math.sqrt(source_area) / math.sqrt(anchor_area)


def relative_keypoints(
    kp_driving: KeypointDict,
    kp_anchor: KeypointDict,
    kp_source: KeypointDict,
    scale: float = 1.0,
    relative_jacobian: bool = True,
) -> KeypointDict:
    """Relative motion: x = x_S + (x_D − x_D0)·s and, when all three have Jacobians and
    ``relative_jacobian``, J = (J_D · J_D0⁻¹) · J_S. Other entries of ``kp_driving`` are passed through.

    ``kp_driving`` may hold B frames; ``kp_anchor`` and ``kp_source`` hold one (batch 1, broadcast).
    """
    out = dict(kp_driving)
    out["value"] = (kp_driving["value"] - kp_anchor["value"]) * scale + kp_source["value"]
    if relative_jacobian and all("jacobian" in kp for kp in (kp_driving, kp_anchor, kp_source)):
        jacobian_change = torch.matmul(kp_driving["jacobian"], torch.inverse(kp_anchor["jacobian"]))
        out["jacobian"] = torch.matmul(jacobian_change, kp_source["jacobian"])
    return out


def transfer_motion(
    kp_driving: KeypointDict,
    kp_source: KeypointDict,
    kp_anchor: KeypointDict | None = None,
    mode: MotionMode = "relative",
    use_adapt_scale: bool = True,
    relative_jacobian: bool = True,
) -> KeypointDict:
    """The keypoints to give the generator for driving keypoints ``kp_driving`` (one call, scale computed
    here; :class:`MotionTransfer` computes it once for a whole video)."""
    return MotionTransfer.create(kp_source, kp_anchor, mode, use_adapt_scale, relative_jacobian)(kp_driving)


@dataclass(frozen=True)
class MotionTransfer:
    """Motion transfer for one source and one anchor: the adapt-scale factor is computed once.

    ``transfer(kp_driving)`` returns the generator's driving keypoints; in absolute mode they are
    ``kp_driving`` itself.
    """

    mode: MotionMode
    kp_source: KeypointDict
    kp_anchor: KeypointDict | None
    scale: float = 1.0
    relative_jacobian: bool = True

    @classmethod
    def create(
        cls,
        kp_source: KeypointDict,
        kp_anchor: KeypointDict | None,
        mode: MotionMode = "relative",
        use_adapt_scale: bool = True,
        relative_jacobian: bool = True,
    ) -> MotionTransfer:
        if mode not in MOTION_MODES:
            raise ValueError(f"motion mode must be one of {', '.join(MOTION_MODES)}, got {mode!r}")
        if mode == "relative" and kp_anchor is None:
            raise ValueError("relative motion needs the keypoints of an anchor driving frame")
        scale = 1.0
        if mode == "relative" and use_adapt_scale and kp_anchor is not None:  # relative always has an anchor
            scale = adapt_scale(kp_source, kp_anchor)
        return cls(mode, kp_source, kp_anchor, scale, relative_jacobian)

    def __call__(self, kp_driving: KeypointDict) -> KeypointDict:
        if self.mode == "absolute":
            return kp_driving
        assert self.kp_anchor is not None
        return relative_keypoints(
            kp_driving, self.kp_anchor, self.kp_source, self.scale, self.relative_jacobian
        )
