"""The depth-training geometry end to end on rendered ground truth: warping frame t+1 into frame t with the true
depth, head pose and K (through ``dagan.geometry.camera.inverse_warp``) reproduces frame t on face pixels, far
better than a wrong pose does."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_erosion

from dagan.data.synthetic import render_video
from dagan.geometry.camera import inverse_warp
from dagan.losses.photometric import photometric_error


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float().div(255).unsqueeze(0)


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.eye(4)
    out[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return out


def test_true_geometry_reproduces_the_next_frame() -> None:
    clip = render_video(seed=3, frames=6, size=128, non_rigid=0.0)
    k = torch.from_numpy(clip.intrinsics).float().unsqueeze(0)
    errors = {"true": [], "identity": [], "yaw+3deg": []}
    for t in range(0, 5, 2):
        target, source = _to_tensor(clip.frames[t]), _to_tensor(clip.frames[t + 1])
        depth = torch.from_numpy(clip.depth[t]).float()[None, None]
        # interior face pixels that stay on the face in the next frame (no silhouette occlusions)
        mask = binary_erosion(clip.mask[t], iterations=4) & binary_erosion(clip.mask[t + 1], iterations=4)
        true = clip.poses[t + 1] @ np.linalg.inv(clip.poses[t])  # camera t -> camera t+1
        wrong = clip.poses[t + 1] @ _yaw(np.deg2rad(3.0)) @ np.linalg.inv(clip.poses[t])
        poses = {"true": true, "identity": np.eye(4), "yaw+3deg": wrong}
        for name, pose in poses.items():
            warped, valid = inverse_warp(source, depth, torch.from_numpy(pose).float().unsqueeze(0), k)
            err = photometric_error(warped, target)[0, 0].numpy()
            keep = mask & (valid[0, 0].numpy() > 0)
            errors[name].append(float(err[keep].mean()))
    true, identity, wrong = (np.mean(errors[n]) for n in ("true", "identity", "yaw+3deg"))
    assert true < 0.5 * identity, errors
    assert true < 0.5 * wrong, errors
    assert true < 0.05, errors
    print({name: round(float(np.mean(v)), 4) for name, v in errors.items()})
