"""Streaming temporal smoothing of driving keypoints and Jacobians against jitter: a One-Euro filter
(:mod:`dagan.one_euro`) per keypoint coordinate and Jacobian entry.

Keypoints live in [-1, 1], so ``beta`` is in Hz per (normalised unit per second). The filter is causal (one
frame in, one out), so it streams and suits real-time use.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dagan.one_euro import OneEuroFilter

__all__ = ["KeypointSmoother"]

KeypointDict = dict[str, Tensor]


class KeypointSmoother:
    """One-Euro smoothing of a keypoint stream: ``kp → kp`` for a batch of consecutive frames (B×K×2 values
    and B×K×2×2 Jacobians, filtered frame by frame in batch order; the state carries over between calls).

    ``min_cutoff`` (Hz) sets the strength: lower is smoother (e.g. 0.5 strong, 1.5 mild). The Jacobians use
    the same settings as the positions.
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.settings = {"fps": fps, "min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        OneEuroFilter(**self.settings)  # validate now, not at the first frame
        self._filters: dict[str, OneEuroFilter[Tensor]] = {}

    def reset(self) -> None:
        self._filters.clear()

    def __call__(self, kp: KeypointDict) -> KeypointDict:
        out = dict(kp)
        for key in ("value", "jacobian"):
            if key not in kp:
                continue
            filt = self._filters.setdefault(key, OneEuroFilter(**self.settings))
            frames = kp[key]
            # filter in float32 even under autocast: the state accumulates over the whole video; a copy, as
            # the filter keeps a sample as its state and the caller's tensor may change in place
            samples = frames.to(torch.float32, copy=True)
            out[key] = torch.stack([filt.filter(f) for f in samples]).to(frames.dtype)
        return out
