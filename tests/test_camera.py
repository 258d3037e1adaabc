"""Camera geometry for depth training: Rodrigues, poses, intrinsics, (back-)projection, inverse warping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from dagan.geometry.camera import (
    axis_angle_to_matrix,
    backproject,
    disparity_to_depth,
    grid_to_pixels,
    intrinsics_from_normalized,
    inverse_warp,
    invert_intrinsics,
    pixel_coordinates,
    pose_vector_to_matrix,
    project,
    transform_points,
)

DT = torch.float64


def _random_K(b: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    focal = 0.6 + 0.8 * torch.rand(b, 2, generator=gen, dtype=DT)
    principal = 0.4 + 0.2 * torch.rand(b, 2, generator=gen, dtype=DT)
    return intrinsics_from_normalized(focal, principal, h, w)


def test_disparity_to_depth_range_and_monotonic() -> None:
    disp = torch.linspace(0, 1, 101, dtype=DT)
    depth = disparity_to_depth(disp, 0.1, 100.0)
    assert depth[0].item() == pytest.approx(100.0)
    assert depth[-1].item() == pytest.approx(0.1)
    assert torch.all(depth[1:] < depth[:-1])
    # inverse depth is affine in the disparity
    inv = 1 / depth
    assert torch.allclose(inv, 0.01 + (10 - 0.01) * disp)
    with pytest.raises(ValueError, match="min_depth"):
        disparity_to_depth(disp, 1.0, 0.5)


def test_rodrigues_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(64, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, 56), [0.0, 1e-9, 1e-5, 1e-3, 0.5, 2.0, 3.1, math.pi]])
    vecs = axes * angles[:, None]
    ours = axis_angle_to_matrix(torch.from_numpy(vecs)).numpy()
    ref = Rotation.from_rotvec(vecs).as_matrix()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_rodrigues_gradient_finite_at_identity() -> None:
    v = torch.zeros(2, 3, dtype=DT, requires_grad=True)
    r = axis_angle_to_matrix(v)
    assert torch.equal(r.detach(), torch.eye(3, dtype=DT).expand(2, 3, 3))
    # d(R·e)/dv at 0 is −[e]×, so the gradient of R[1, 0] (≈ v_z) w.r.t. v_z is 1
    r[:, 1, 0].sum().backward()
    assert torch.all(torch.isfinite(v.grad))
    assert torch.allclose(v.grad, torch.tensor([[0.0, 0.0, 1.0]] * 2, dtype=DT))


def test_pose_inverse() -> None:
    gen = torch.Generator().manual_seed(1)
    aa = torch.randn(5, 3, generator=gen, dtype=DT)
    t = torch.randn(5, 3, generator=gen, dtype=DT)
    T = pose_vector_to_matrix(aa, t)
    T_inv = pose_vector_to_matrix(aa, t, invert=True)
    eye = torch.eye(4, dtype=DT).expand(5, 4, 4)
    assert torch.allclose(T @ T_inv, eye, atol=1e-12)
    assert torch.allclose(T[:, :3, 3], t)
    assert torch.allclose(T[:, 3], torch.tensor([0, 0, 0, 1.0], dtype=DT).expand(5, 4))


def test_intrinsics_and_inverse() -> None:
    K = intrinsics_from_normalized(torch.tensor([[1.0, 0.5]]), torch.tensor([[0.5, 0.25]]), 40, 60)
    expected = torch.tensor([[[60.0, 0.0, 29.5], [0.0, 20.0, 9.5], [0.0, 0.0, 1.0]]])
    assert torch.allclose(K, expected)
    gen = torch.Generator().manual_seed(2)
    K = _random_K(4, 32, 48, gen)
    K[:, 0, 1] = 0.3  # a skew term exercises the full closed form
    assert torch.allclose(invert_intrinsics(K), torch.linalg.inv(K), atol=1e-12)


def test_identity_pose_gives_identity_grid() -> None:
    """Identity motion: the grid is align_corners=False's pixel-centre grid, for any depth and K."""
    gen = torch.Generator().manual_seed(3)
    b, h, w = 3, 7, 11
    K = _random_K(b, h, w, gen)
    depth = 0.5 + 5 * torch.rand(b, 1, h, w, generator=gen, dtype=DT)
    grid = project(backproject(depth, invert_intrinsics(K)), K, torch.eye(4, dtype=DT).expand(b, 4, 4))
    reference = F.affine_grid(torch.eye(2, 3, dtype=DT).expand(b, 2, 3), [b, 1, h, w], align_corners=False)
    assert torch.allclose(grid, reference, atol=1e-12)
    img = torch.rand(b, 3, h, w, generator=gen, dtype=DT)
    resampled = F.grid_sample(img, grid, align_corners=False)
    assert torch.allclose(resampled, img, atol=1e-12)


def test_backproject_depth_and_rays() -> None:
    gen = torch.Generator().manual_seed(4)
    K = _random_K(2, 5, 6, gen)
    depth = 1 + torch.rand(2, 1, 5, 6, generator=gen, dtype=DT)
    pts = backproject(depth, invert_intrinsics(K))
    assert torch.allclose(pts[:, 2:], depth)  # z of a back-projected point is its depth
    # re-projecting with K recovers the pixel coordinates
    uvw = torch.einsum("bij,bjhw->bihw", K, pts)
    pix = pixel_coordinates(5, 6, DT)
    assert torch.allclose(uvw[:, :2] / uvw[:, 2:], pix[:2].expand(2, 2, 5, 6), atol=1e-12)


def test_projection_round_trip_random_pose() -> None:
    """Target pixels → source grid → source pixels, back-projected with their source depth and moved by T⁻¹,
    land on the original 3-D points: the grid normalisation agrees with K."""
    gen = torch.Generator().manual_seed(5)
    b, h, w = 4, 9, 13
    K = _random_K(b, h, w, gen)
    depth = 2 + 3 * torch.rand(b, 1, h, w, generator=gen, dtype=DT)
    aa = 0.1 * torch.randn(b, 3, generator=gen, dtype=DT)
    t = 0.2 * torch.randn(b, 3, generator=gen, dtype=DT)
    T = pose_vector_to_matrix(aa, t)
    pts = backproject(depth, invert_intrinsics(K))
    grid = project(pts, K, T)
    uv_source = grid_to_pixels(grid, h, w)  # B×H×W×2
    z_source = transform_points(pts, T)[:, 2:]
    hom = torch.cat([uv_source.permute(0, 3, 1, 2), torch.ones_like(z_source)], dim=1)
    pts_source = torch.einsum("bij,bjhw->bihw", invert_intrinsics(K), hom) * z_source
    back = transform_points(pts_source, pose_vector_to_matrix(aa, t, invert=True))
    assert torch.allclose(back, pts, atol=1e-10)
    # and the motion is not trivial
    assert (grid_to_pixels(grid, h, w) - pixel_coordinates(h, w, DT)[:2].permute(1, 2, 0)).abs().max() > 0.5


def test_inverse_warp_translated_plane_shifts_image() -> None:
    """A fronto-parallel plane at depth Z seen by a camera translated by t_x: the source view is the target
    shifted by s = f_x·t_x/Z pixels, and inverse warping undoes exactly that shift."""
    gen = torch.Generator().manual_seed(6)
    h, w, s = 16, 24, 3
    texture = torch.rand(1, 3, h, w + s, generator=gen, dtype=DT)
    target = texture[..., :w]
    source = texture[..., s:]  # source(u) = target(u + s): content moved left by s pixels
    fx, z = 30.0, 2.0
    K = torch.tensor([[[fx, 0, (w - 1) / 2], [0, fx, (h - 1) / 2], [0, 0, 1]]], dtype=DT)
    # P_s = P_t + t ⇒ u_s = u_t + f_x·t_x/Z, so sampling source at u_t − s needs t_x = −s·Z/f_x
    T = pose_vector_to_matrix(torch.zeros(1, 3, dtype=DT), torch.tensor([[-s * z / fx, 0.0, 0.0]], dtype=DT))
    depth = torch.full((1, 1, h, w), z, dtype=DT)
    warped, valid = inverse_warp(source, depth, T, K)
    assert torch.allclose(warped[..., s:], target[..., s:], atol=1e-10)
    assert torch.all(valid[..., s:] == 1)
    assert torch.all(valid[..., :s] == 0)  # columns that project left of the source image
    # wrong depth → wrong shift → visible error
    warped_wrong, _ = inverse_warp(source, depth * 2, T, K)
    assert (warped_wrong[..., s:] - target[..., s:]).abs().mean() > 0.05


def test_inverse_warp_marks_points_behind_camera_invalid() -> None:
    h, w = 6, 8
    K = torch.tensor([[[10.0, 0, 3.5], [0, 10.0, 2.5], [0, 0, 1]]])
    T = pose_vector_to_matrix(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, -2.0]]))  # camera moves past plane
    warped, valid = inverse_warp(torch.rand(1, 3, h, w), torch.ones(1, 1, h, w), T, K)
    assert torch.all(valid == 0)
    assert torch.all(torch.isfinite(warped))


def test_inverse_warp_gradients_reach_depth_and_pose() -> None:
    gen = torch.Generator().manual_seed(7)
    h, w = 12, 12
    source = F.avg_pool2d(torch.rand(1, 3, h + 2, w + 2, generator=gen), 3, 1)
    depth = torch.full((1, 1, h, w), 3.0, requires_grad=True)
    aa = torch.full((1, 3), 0.01, requires_grad=True)
    t = torch.tensor([[0.05, 0.02, 0.0]], requires_grad=True)
    K = intrinsics_from_normalized(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.5]]), h, w)
    warped, _ = inverse_warp(source, depth, pose_vector_to_matrix(aa, t), K)
    warped.square().mean().backward()
    for g in (depth.grad, aa.grad, t.grad):
        assert g is not None and torch.all(torch.isfinite(g)) and g.abs().sum() > 0


def test_inverse_warp_half_precision_inputs_use_float32_geometry() -> None:
    """A 1-pixel shift at u ≈ 250 is below float16's resolution of pixel coordinates; the warp must still
    reproduce it because the geometry runs in float32."""
    gen = torch.Generator().manual_seed(8)
    h, w, z, fx = 4, 256, 1.0, 100.0
    texture = torch.rand(1, 3, h, w + 1, generator=gen)
    target, source = texture[..., :w], texture[..., 1:]
    K = torch.tensor([[[fx, 0.0, 0.0], [0.0, fx, 0.0], [0.0, 0.0, 1.0]]])
    T = pose_vector_to_matrix(torch.zeros(1, 3), torch.tensor([[-0.25 * z / fx, 0.0, 0.0]]))
    warped, _ = inverse_warp(source.half(), torch.full((1, 1, h, w), z).half(), T, K)
    assert warped.dtype == torch.float32
    # u_s = u − 0.25, and source(u − 0.25) = target(u + 0.75): a 0.25/0.75 blend of target columns u, u+1
    expected = 0.25 * target[..., 1:-1] + 0.75 * target[..., 2:]
    assert torch.allclose(warped[..., 1:-1], expected, atol=2e-3)
