"""Performances: how a synthetic head moves — rigid head pose, mouth opening and blinks over time.

A :class:`Performance` is independent of who performs it, so any identity
(:mod:`dagan.data.identities`) can perform any performance; that is what gives cross-identity
reenactment an exact ground truth (:mod:`dagan.data.cross_identity`).

:func:`sample_performance` draws, from a seed:

* **head pose** — a sequence of key poses (yaw ±35°, pitch ±20°, roll ±12°, translation ±3 cm sideways,
  ±2 cm vertically, ±3 cm in depth around a distance of 0.37–0.45 m) held for 0.2–1.2 s and joined by
  eased turns of 0.4–1.4 s, plus a small sway (≤ 2°, ≤ 3 mm). Frame 0 is a calm start: its key pose is
  within yaw ±12°, pitch ±8°, roll ±5°, like the source photo of a reenactment usually is. Angles never
  leave the ranges above.
* **mouth** — talking: syllables every 0.12–0.3 s in phrases of 0.8–3 s separated by pauses of 0.2–0.9 s;
  each syllable opens the mouth to 0.25–0.7, one in five wide (0.8–1.0). The first phrase starts after
  0.15–0.5 s, so frame 0 has a closed mouth.
* **blinks** — 0.25 s closures every 2–5 s, the first after 0.4 s (frame 0 has open eyes).

``poses[t]`` is the 4×4 camera-from-head transform (OpenCV camera axes, metres, as in
:mod:`dagan.data.synthetic`); ``mouth_open`` and ``blink`` are in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagan.data.synthetic import FPS, rotation_matrix, smoothstep

MAX_YAW, MAX_PITCH, MAX_ROLL = np.radians(35.0), np.radians(20.0), np.radians(12.0)
_START_SCALE = (np.radians(12.0) / MAX_YAW, np.radians(8.0) / MAX_PITCH, np.radians(5.0) / MAX_ROLL)


@dataclass(frozen=True, eq=False)
class Performance:
    """Head motion and expressions over T frames."""

    seed: int
    poses: np.ndarray  # T×4×4 float64, camera-from-head
    mouth_open: np.ndarray  # T float32 in [0, 1]
    blink: np.ndarray  # T float32 in [0, 1]
    fps: float

    @property
    def frames(self) -> int:
        return len(self.poses)


def head_angles(poses: np.ndarray) -> np.ndarray:
    """T×3 (yaw, pitch, roll) in radians of T×4×4 (or 3×3) poses, inverting
    :func:`dagan.data.synthetic.rotation_matrix`: R = R_z(roll)·R_x(pitch)·R_y(yaw) has bottom row
    (−cos p·sin y, sin p, cos p·cos y) and R[0,1] = −sin r·cos p, R[1,1] = cos r·cos p (valid for |p| < 90°)."""
    r = np.asarray(poses)[..., :3, :3]
    yaw = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    pitch = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    roll = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    return np.stack([yaw, pitch, roll], -1)


def _key_track(rng: np.random.Generator, t: np.ndarray, start: float) -> np.ndarray:
    """Piecewise eased track in [−1, 1]: hold a key value, turn smoothly to the next, hold, …"""
    out = np.empty_like(t)
    value = rng.uniform(-start, start)
    t0 = 0.0
    out[:] = value
    while t0 <= t[-1]:
        hold = rng.uniform(0.2, 1.2)
        turn = rng.uniform(0.4, 1.4)
        nxt = rng.uniform(-1.0, 1.0)
        ease = smoothstep(t0 + hold, t0 + hold + turn, t)
        moving = t >= t0
        out[moving] = value + (nxt - value) * ease[moving]
        value, t0 = nxt, t0 + hold + turn
    return out


def _sway(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Small sum of two sinusoids (0.2–0.9 Hz), amplitude ≤ 1."""
    freq = rng.uniform(0.2, 0.9, 2)
    phase = rng.uniform(0.0, 2.0 * np.pi, 2)
    return 0.5 * np.sin(2.0 * np.pi * freq[:, None] * t[None] + phase[:, None]).sum(0)


def _head_poses(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    angles = []
    for limit, start in zip((MAX_YAW, MAX_PITCH, MAX_ROLL), _START_SCALE):
        track = limit * _key_track(rng, t, start) + np.radians(2.0) * _sway(rng, t)
        angles.append(np.clip(track, -limit, limit))
    distance = rng.uniform(0.37, 0.45)
    shift = [lim * _key_track(rng, t, 0.3) + 0.003 * _sway(rng, t) for lim in (0.03, 0.02, 0.03)]
    poses = np.tile(np.eye(4), (len(t), 1, 1))
    for i in range(len(t)):
        poses[i, :3, :3] = rotation_matrix(angles[0][i], angles[1][i], angles[2][i])
        poses[i, :3, 3] = (shift[0][i], shift[1][i] + 0.005, shift[2][i] + distance)
    return poses


def _talking(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    mouth = np.zeros_like(t)
    ts = rng.uniform(0.15, 0.5)
    while ts < t[-1] + 0.3:
        phrase_end = ts + rng.uniform(0.8, 3.0)
        while ts < phrase_end:
            peak = rng.uniform(0.8, 1.0) if rng.random() < 0.2 else rng.uniform(0.25, 0.7)
            width = rng.uniform(0.05, 0.09)
            mouth = np.maximum(mouth, peak * np.exp(-0.5 * ((t - ts - 2.0 * width) / width) ** 2))
            ts += rng.uniform(0.12, 0.3)
        ts += rng.uniform(0.2, 0.9)
    return mouth


def _blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    blink = np.zeros_like(t)
    tb = rng.uniform(0.4, 2.5)
    while tb < t[-1] + 0.3:
        blink = np.maximum(blink, np.exp(-(((t - tb) / 0.07) ** 2)))
        tb += rng.uniform(2.0, 5.0)
    return blink


def sample_performance(seed: int, frames: int = 64, fps: float = FPS, non_rigid: float = 1.0) -> Performance:
    """Draw a performance of ``frames`` frames at ``fps`` from its seed (same arguments, same performance).

    ``non_rigid`` scales mouth opening and blinks (0 = rigid head); the head poses do not depend on it.
    """
    if frames < 1 or fps <= 0:
        raise ValueError(f"need frames ≥ 1 and fps > 0, got frames={frames}, fps={fps}")
    t = np.arange(frames) / fps
    poses = _head_poses(np.random.default_rng([seed, 0x9E]), t)
    mouth = _talking(np.random.default_rng([seed, 0x3A]), t)
    blink = _blinks(np.random.default_rng([seed, 0xB1]), t)
    mouth = np.clip(mouth * non_rigid, 0.0, 1.0).astype(np.float32)
    blink = np.clip(blink * non_rigid, 0.0, 1.0).astype(np.float32)
    return Performance(seed, poses, mouth, blink, float(fps))
