"""Depth-quality metrics for monocular (scale-ambiguous) depth against ground truth.

Every function takes a predicted depth ``pred`` and ground truth ``gt`` of the same shape and an optional
boolean ``mask`` of the pixels to score (e.g. the face); it returns a Python float for one frame. Pixels with
non-finite or non-positive ground truth are always ignored. Self-supervised monocular depth is only defined
up to scale (and, with learned intrinsics, the scale of the focal length), so the metrics first align the
prediction: by an affine fit (:func:`relative_structure_error`) or by the ratio of medians (the rest).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "abs_rel",
    "delta_accuracy",
    "depth_metrics",
    "mean_depth_metrics",
    "focal_ratio",
    "median_scale",
    "relative_structure_error",
    "scale_invariant_log_rmse",
    "valid_pixels",
]


def valid_pixels(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D arrays (pred[m], gt[m]) over m = mask ∧ finite(pred) ∧ finite(gt) ∧ gt > 0."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    keep = np.isfinite(pred) & np.isfinite(gt) & (gt > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt.shape:
            raise ValueError(f"mask {mask.shape} does not match the depth maps {gt.shape}")
        keep &= mask
    if keep.sum() < 2:
        raise ValueError("fewer than 2 valid pixels to evaluate")
    return pred[keep], gt[keep]


def relative_structure_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMSE(a·d̂ + b − d) / std(d), with (a, b) = argmin Σ (a·d̂ + b − d)² fitted by least squares.

    Measures the *shape* of the depth map independently of scale and offset: 0 is a perfect relief, 1.0 is
    what a flat (constant) prediction gets (the best constant is mean(d), whose RMSE is std(d)), and any
    prediction scores ≤ 1 because a = 0 is among the fitted candidates. The fitted slope may be negative,
    so an inverted relief also scores well: read it together with the median-scaled metrics.
    """
    p, g = valid_pixels(pred, gt, mask)
    std = g.std()
    if std <= 0:
        raise ValueError("ground truth is constant over the evaluated pixels; relative structure is undefined")
    design = np.stack([p, np.ones_like(p)], axis=1)
    coef, *_ = np.linalg.lstsq(design, g, rcond=None)
    residual = design @ coef - g
    return float(np.sqrt(np.mean(residual**2)) / std)


def median_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """s = median(d) / median(d̂): the scale that aligns a monocular prediction with the ground truth."""
    p, g = valid_pixels(pred, gt, mask)
    mp = np.median(p)
    if mp <= 0:
        raise ValueError("median predicted depth is not positive")
    return float(np.median(g) / mp)


def abs_rel(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, scale: bool = True) -> float:
    """AbsRel = mean(|s·d̂ − d| / d), with s from :func:`median_scale` (s = 1 when ``scale`` is False)."""
    p, g = valid_pixels(pred, gt, mask)
    s = float(np.median(g) / np.median(p)) if scale else 1.0
    return float(np.mean(np.abs(s * p - g) / g))


def delta_accuracy(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, threshold: float = 1.25, scale: bool = True
) -> float:
    """δ < t: the fraction of pixels with max(s·d̂/d, d/(s·d̂)) < t (t = 1.25), s the median scale."""
    p, g = valid_pixels(pred, gt, mask)
    s = float(np.median(g) / np.median(p)) if scale else 1.0
    sp = np.maximum(s * p, 1e-12)
    ratio = np.maximum(sp / g, g / sp)
    return float(np.mean(ratio < threshold))


def scale_invariant_log_rmse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SI-log RMSE (Eigen et al. 2014): sqrt(mean(g²) − mean(g)²) with g = log d̂ − log d.

    Invariant to a global scale of the prediction (a scale adds a constant to g); 0 for a perfect shape.
    """
    p, g = valid_pixels(pred, gt, mask)
    diff = np.log(np.maximum(p, 1e-12)) - np.log(g)
    return float(np.sqrt(max(np.mean(diff**2) - np.mean(diff) ** 2, 0.0)))


def focal_ratio(learned: float, true: float) -> float:
    """f̂ / f: a learned focal length relative to the true one (1.0 is exact; both in the same pixel units)."""
    if true <= 0:
        raise ValueError(f"the true focal length must be positive, got {true}")
    return float(learned) / float(true)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """All per-frame metrics above for one frame (H×W maps), as a dict."""
    return {
        "rel_structure": relative_structure_error(pred, gt, mask),
        "abs_rel": abs_rel(pred, gt, mask),
        "delta_1.25": delta_accuracy(pred, gt, mask),
        "si_log_rmse": scale_invariant_log_rmse(pred, gt, mask),
    }


def mean_depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """:func:`depth_metrics` averaged over frames (T×H×W stacks); frames with < 2 valid pixels are skipped."""
    rows = []
    for i in range(len(gt)):
        try:
            rows.append(depth_metrics(pred[i], gt[i], None if mask is None else mask[i]))
        except ValueError:
            continue
    if not rows:
        raise ValueError("no frame has enough valid pixels to evaluate")
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
