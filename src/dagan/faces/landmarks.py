"""Landmark normalisation and the "best driving frame" search (FOMM/DaGAN ``--find_best_frame``).

Relative motion transfer works best when the driving frame taken as reference has the same head pose and
expression as the source image; the official demos pick the driving frame whose normalised 2-D landmarks are
closest to the source's.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.spatial import ConvexHull, QhullError


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks with translation and scale removed: (p − mean(p)) / sqrt(area of the convex hull of p).

    The hull area is that of the 2-D point set (any landmark count ≥ 3 not all on a line), so the result
    does not depend on where the face is in the image or how large it is. Raises ValueError for degenerate
    input (fewer than 3 points, or collinear / repeated points with zero area).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"landmarks must be an N×2 array with N >= 3, got shape {pts.shape}")
    centred = pts - pts.mean(axis=0)
    try:
        area = ConvexHull(pts).volume  # in 2-D, the hull's "volume" is its area
    except QhullError as exc:
        raise ValueError("landmarks are degenerate (their convex hull has no area)") from exc
    return centred / np.sqrt(area)


def landmark_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences between two landmark sets after :func:`normalized_landmarks`."""
    return float(((normalized_landmarks(a) - normalized_landmarks(b)) ** 2).sum())


def best_frame_index(source_landmarks: np.ndarray, driving_landmarks: Iterable[np.ndarray | None]) -> int:
    """Index of the driving frame whose normalised landmarks are closest (sum of squared differences) to the
    source's. Frames without landmarks (None) are skipped; ties go to the earliest frame. Raises ValueError
    when no driving frame has landmarks."""
    src = normalized_landmarks(source_landmarks)
    best, best_dist = -1, np.inf
    for i, lm in enumerate(driving_landmarks):
        if lm is None:
            continue
        dist = float(((normalized_landmarks(lm) - src) ** 2).sum())
        if dist < best_dist:
            best, best_dist = i, dist
    if best < 0:
        raise ValueError("no driving frame has landmarks (no face found in the driving video)")
    return best


def landmarks_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box ``(x0, y0, x1, y1)`` (pixel edges) around landmarks given at pixel centres."""
    pts = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0) + 1.0
    return (float(x0), float(y0), float(x1), float(y1))
