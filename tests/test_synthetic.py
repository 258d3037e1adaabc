"""Synthetic talking heads: determinism, ground-truth consistency and exact rigid reprojection."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from dagan.commands import synth as synth_cmd
from dagan.data.synthetic import (
    load_ground_truth,
    rasterize,
    render_video,
    rotation_matrix,
    write_synthetic_dataset,
)
from dagan.data.video import iter_frames, probe_video


@pytest.fixture(scope="module")
def rigid() -> object:
    return render_video(seed=11, frames=4, size=128, non_rigid=0.0)


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    u0 = np.clip(np.floor(u).astype(int), 0, w - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, h - 2)
    du, dv = u - u0, v - v0
    if img.ndim == 3:
        du, dv = du[:, None], dv[:, None]
    return ((img[v0, u0] * (1 - du) + img[v0, u0 + 1] * du) * (1 - dv)
            + (img[v0 + 1, u0] * (1 - du) + img[v0 + 1, u0 + 1] * du) * dv)


def reprojection_error(clip: object, t: int, relative: np.ndarray) -> float:
    """Back-project face pixels of frame t with GT depth and K, move them by ``relative`` (4×4), project
    into frame t+1 and compare colours there; points that leave the head or become hidden are ignored."""
    k = clip.intrinsics
    v, u = np.nonzero(clip.mask[t])
    z = clip.depth[t][v, u].astype(np.float64)
    pts = np.linalg.inv(k) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64) * z
    moved = relative[:3, :3] @ pts + relative[:3, 3:4]
    proj = k @ moved
    pu, pv = proj[0] / proj[2], proj[1] / proj[2]
    size = clip.frames.shape[1]
    inside = (pu >= 0) & (pu <= size - 1) & (pv >= 0) & (pv <= size - 1)
    pu, pv, zt = np.clip(pu, 0, size - 1), np.clip(pv, 0, size - 1), moved[2]
    visible = np.abs(_bilinear(clip.depth[t + 1].astype(np.float64), pu, pv) - zt) < 0.005
    on_head = _bilinear(clip.mask[t + 1].astype(np.float64), pu, pv) > 0.999
    keep = inside & visible & on_head
    assert keep.sum() > 500
    sampled = _bilinear(clip.frames[t + 1].astype(np.float64), pu[keep], pv[keep])
    return float(np.abs(sampled - clip.frames[t][v[keep], u[keep]]).mean())


def test_same_seed_same_clip_other_seed_differs() -> None:
    a = render_video(seed=3, frames=3, size=48)
    b = render_video(seed=3, frames=3, size=48)
    c = render_video(seed=4, frames=3, size=48)
    for name in ("frames", "depth", "mask", "poses", "intrinsics", "mouth_open", "blink"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.poses, c.poses)


def test_ground_truth_is_consistent(rigid: object) -> None:
    clip = rigid
    t, s = clip.frames.shape[:2]
    assert clip.frames.shape == (4, 128, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.depth.dtype == np.float32 and clip.mask.dtype == bool and clip.poses.shape == (4, 4, 4)
    k = clip.intrinsics
    assert k[0, 0] == k[1, 1] > 0 and k[0, 2] == k[1, 2] == (s - 1) / 2 and k[2, 2] == 1
    assert np.isfinite(clip.depth).all() and (clip.depth > 0).all()
    for i in range(t):
        m, d = clip.mask[i], clip.depth[i]
        assert 0.1 < m.mean() < 0.7  # a head, not the whole frame
        assert d[m].max() < d[~m].min()  # the head is in front of the background everywhere
        # depth is continuous inside the head and jumps exactly where the mask ends
        right_in = m[:, 1:] & m[:, :-1]
        edge = m[:, 1:] != m[:, :-1]
        jump = np.abs(np.diff(d, axis=1))
        assert jump[right_in].max() < 0.03 and jump[edge].min() > 0.3
        r = clip.poses[i, :3, :3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(r) == pytest.approx(1.0)
        # the head centre (origin of head coordinates) projects inside the frame, in front of the camera
        centre = clip.poses[i, :3, 3]
        assert 0.3 < centre[2] < 0.6 and 0 < k[0, 0] * centre[0] / centre[2] + k[0, 2] < s


def test_rigid_reprojection_with_gt_pose_is_photometrically_exact(rigid: object) -> None:
    clip = rigid
    for t in range(3):
        rel = clip.poses[t + 1] @ np.linalg.inv(clip.poses[t])
        good = reprojection_error(clip, t, rel)
        static = reprojection_error(clip, t, np.eye(4))
        tilt = np.eye(4)
        tilt[:3, :3] = rotation_matrix(0.04, 0.0, 0.0)  # 2.3° of extra yaw
        wrong = reprojection_error(clip, t, tilt @ rel)
        assert good < 2.5  # grey levels; resampling error only
        assert good < 0.4 * static and good < 0.5 * wrong


def test_motion_is_smooth_and_expressions_follow_non_rigid() -> None:
    moving = render_video(seed=5, frames=30, size=32, non_rigid=1.0)
    still = render_video(seed=5, frames=30, size=32, non_rigid=0.0)
    np.testing.assert_array_equal(moving.poses, still.poses)  # expressions never change the head pose
    rel = np.einsum("tij,tkj->tik", moving.poses[1:, :3, :3], moving.poses[:-1, :3, :3])
    angles = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() < 4.0 and angles.max() > 0.05
    assert moving.mouth_open.max() > 0.3 and (still.mouth_open == 0).all() and (still.blink == 0).all()
    differs = np.abs(moving.frames.astype(int) - still.frames).max(-1) > 0
    assert differs.any() and not (differs & ~moving.mask & ~still.mask).any()  # only the head changes


def test_rasterizer_depth_is_perspective_correct() -> None:
    """A slanted 3-D triangle: every covered pixel's depth equals the ray–plane intersection."""
    k = np.array([[50.0, 0, 15.5], [0, 50.0, 15.5], [0, 0, 1]])
    verts = np.array([[-0.3, -0.3, 1.0], [0.4, -0.2, 2.0], [0.0, 0.4, 1.5]])
    screen = (verts @ k.T)[:, :2] / verts[:, 2:]
    tri, depth, bary = rasterize(screen, verts[:, 2], np.array([[0, 1, 2]]), 32, 32)
    covered = tri >= 0
    assert 50 < covered.sum() < 32 * 32
    normal = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    v, u = np.divmod(np.nonzero(covered)[0], 32)
    rays = np.stack([(u - 15.5) / 50.0, (v - 15.5) / 50.0, np.ones(u.size)], 1)
    np.testing.assert_allclose(depth[covered], (normal @ verts[0]) / (rays @ normal), rtol=1e-9)
    # perspective-correct barycentrics reproduce the 3-D point on the triangle
    np.testing.assert_allclose(bary[covered] @ verts, rays * depth[covered][:, None], atol=1e-9)
    assert np.isinf(depth[~covered]).all()


def test_write_synthetic_dataset_layout(tmp_path: Path) -> None:
    paths = write_synthetic_dataset(tmp_path / "ds", videos=3, frames=5, size=32, seed=5, test_fraction=0.3)
    assert [p.relative_to(tmp_path / "ds").as_posix() for p in paths] == [
        "train/synth5#000.mp4", "train/synth5#001.mp4", "test/synth5#002.mp4"]
    info = probe_video(paths[0])
    assert (info.num_frames, info.width, info.fps) == (5, 32, 25.0)
    gt = load_ground_truth(tmp_path / "ds/train/synth5#000.npz")
    assert gt["depth"].shape == (5, 32, 32) and gt["depth"].dtype == np.float16
    assert gt["mask"].dtype == bool and gt["pose"].shape == (5, 4, 4) and gt["intrinsics"].shape == (3, 3)
    clip = render_video(int(np.random.SeedSequence([5, 0]).generate_state(1)[0]), 5, 32)
    np.testing.assert_allclose(gt["depth"], clip.depth, rtol=1e-3)
    decoded = np.stack(list(iter_frames(paths[0])))
    assert np.abs(decoded.astype(int) - clip.frames).mean() < 4.0  # near-lossless H.264
    pngs = write_synthetic_dataset(tmp_path / "png", videos=1, frames=3, size=32, seed=5, video_format="png")
    np.testing.assert_array_equal(np.stack(list(iter_frames(pngs[0]))), clip.frames[:3])  # exact


def test_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    synth_cmd.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--videos", "2", "--frames", "3", "--size", "24",
                              "--seed", "2", "--test-fraction", "0.5", "--format", "png"])
    assert synth_cmd.run(args) == 0
    assert "2 clips (1 train, 1 test)" in capsys.readouterr().out
    assert (tmp_path / "train/synth2#000/0000002.png").is_file()
    assert (tmp_path / "test/synth2#001.npz").is_file()
