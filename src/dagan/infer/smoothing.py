"""Streaming temporal smoothing of driving keypoints and Jacobians against jitter (One-Euro filter).

The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a first-order low-pass whose cutoff rises with
the signal's speed: a still face is held steady (low cutoff, jitter removed) while fast motion is followed
with little lag (high cutoff). Per element x_t, sampled at ``fps``::

    α(f) = 1 / (1 + fps / (2π f))                         smoothing factor for cutoff f (Hz)
    ẋ_t  = α(d_cutoff)·(x_t − x̂_{t−1})·fps + (1 − α(d_cutoff))·ẋ_{t−1}
    f_t  = min_cutoff + beta·|ẋ_t|
    x̂_t  = α(f_t)·x_t + (1 − α(f_t))·x̂_{t−1},             x̂_0 = x_0

Keypoints live in [-1, 1], so ``beta`` is in units of (Hz per normalised unit per second). It is causal
(one frame in, one out), so it streams and suits real-time use.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KeypointSmoother", "OneEuroFilter", "one_euro_alpha"]

KeypointDict = dict[str, Tensor]


def one_euro_alpha(cutoff: Tensor | float, fps: float) -> Tensor | float:
    """α = 1 / (1 + fps/(2π f_c)): the low-pass factor of cutoff ``f_c`` Hz at ``fps`` samples per second."""
    return 1.0 / (1.0 + fps / (2.0 * math.pi * cutoff))


class OneEuroFilter:
    """One-Euro filter over tensors of any fixed shape; ``filter(x)`` takes one sample per call."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs fps, min_cutoff, d_cutoff > 0 and beta >= 0")
        self.fps, self.min_cutoff = float(fps), float(min_cutoff)
        self.beta, self.d_cutoff = float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past (next sample is passed through unchanged)."""
        self._x: Tensor | None = None
        self._dx: Tensor | None = None

    def filter(self, x: Tensor) -> Tensor:
        if self._x is None or self._dx is None:
            self._x = x.clone()
            self._dx = torch.zeros_like(x)
            return x
        if x.shape != self._x.shape:
            raise ValueError(f"OneEuroFilter got shape {tuple(x.shape)} after {tuple(self._x.shape)}")
        a_d = one_euro_alpha(self.d_cutoff, self.fps)
        self._dx = a_d * (x - self._x) * self.fps + (1.0 - a_d) * self._dx
        alpha = one_euro_alpha(self.min_cutoff + self.beta * self._dx.abs(), self.fps)
        self._x = alpha * x + (1.0 - alpha) * self._x
        return self._x.clone()


class KeypointSmoother:
    """One-Euro smoothing of a keypoint stream: ``kp → kp`` for a batch of consecutive frames (B×K×2 values
    and B×K×2×2 Jacobians, filtered frame by frame in batch order; the state carries over between calls).

    ``min_cutoff`` (Hz) sets the strength: lower is smoother (e.g. 0.5 strong, 1.5 mild). The Jacobians use
    the same settings as the positions.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.settings = {"fps": fps, "min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        OneEuroFilter(**self.settings)  # validate now, not at the first frame
        self._filters: dict[str, OneEuroFilter] = {}

    def reset(self) -> None:
        self._filters.clear()

    def __call__(self, kp: KeypointDict) -> KeypointDict:
        out = dict(kp)
        for key in ("value", "jacobian"):
            if key not in kp:
                continue
            filt = self._filters.setdefault(key, OneEuroFilter(**self.settings))
            frames = kp[key]
            # filter in float32 even under autocast: the state accumulates over the whole video
            out[key] = torch.stack([filt.filter(f.float()) for f in frames]).to(frames.dtype)
        return out
