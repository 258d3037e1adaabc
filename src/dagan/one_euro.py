"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): streaming smoothing against jitter.

A first-order low-pass whose cutoff rises with the signal's speed: a still signal is held steady (low cutoff,
jitter removed) while fast motion is followed with little lag (high cutoff). Per element x_t, sampled at
``fps``::

    α(f) = 1 / (1 + fps / (2π f))                         smoothing factor for cutoff f (Hz)
    ẋ_t  = α(d_cutoff)·(x_t − x̂_{t−1})·fps + (1 − α(d_cutoff))·ẋ_{t−1},      ẋ_0 = 0
    f_t  = min_cutoff + beta·|ẋ_t|
    x̂_t  = α(f_t)·x_t + (1 − α(f_t))·x̂_{t−1},                              x̂_0 = x_0

``min_cutoff`` sets the strength (lower is smoother); ``beta`` is in Hz per (signal unit per second), so it
depends on the signal's scale. It is causal (one sample in, one out), so it streams and suits real-time use.

The arithmetic is array-agnostic: samples may be floats, numpy arrays or torch tensors (anything with
``+ − ×  /`` and ``abs``), so the keypoint smoother (:mod:`dagan.infer.smoothing`, tensors) and the face box
smoother (:mod:`dagan.faces.smoothing`, numpy) share this one implementation.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

__all__ = ["OneEuroFilter", "smoothing_factor"]

# A sample: a float, a numpy array or a torch tensor of a fixed shape (not constrained further so that this
# module imports neither numpy nor torch).
Signal = TypeVar("Signal")


def smoothing_factor(cutoff: Any, fps: float) -> Any:
    """α = 1 / (1 + fps / (2π f_c)): the factor of a first-order low-pass with cutoff ``f_c`` Hz (a number or
    an array of them) sampled at ``fps`` samples per second."""
    return 1.0 / (1.0 + fps / (2.0 * math.pi * cutoff))


class OneEuroFilter(Generic[Signal]):
    """One-Euro filter over samples of a fixed shape; ``filter(x)`` takes one sample per call and returns the
    smoothed sample (the first one unchanged). The filter keeps the first sample as its state without copying
    it, so a caller must not modify a sample in place after passing it."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs fps, min_cutoff, d_cutoff > 0 and beta >= 0")
        self.fps, self.min_cutoff = float(fps), float(min_cutoff)
        self.beta, self.d_cutoff = float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past (the next sample is passed through unchanged)."""
        self._x: Any = None
        self._dx: Any = 0.0

    @property
    def value(self) -> Signal | None:
        """The last smoothed sample (None before the first)."""
        return self._x

    def filter(self, x: Signal) -> Signal:
        sample: Any = x  # arithmetic on whatever array type the caller uses
        if self._x is None:
            self._x, self._dx = sample, 0.0
            return x
        shape, before = tuple(getattr(sample, "shape", ())), tuple(getattr(self._x, "shape", ()))
        if shape != before:
            raise ValueError(f"OneEuroFilter got shape {shape} after {before}")
        a_d = smoothing_factor(self.d_cutoff, self.fps)
        self._dx = a_d * (sample - self._x) * self.fps + (1.0 - a_d) * self._dx
        alpha = smoothing_factor(self.min_cutoff + self.beta * abs(self._dx), self.fps)
        self._x = alpha * sample + (1.0 - alpha) * self._x
        return self._x
