"""Random affine + TPS equivariance transforms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dagan.geometry.grids import make_coordinate_grid
from dagan.geometry.transforms import RandomTransform, tps_kernel


def _smooth_image(b: int = 2, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(b, 3, h + 4, w + 4, generator=g, dtype=torch.float64), 5, stride=1)


def _grid_points(b: int, n: int = 7, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return make_coordinate_grid(n, n, dtype).view(1, -1, 2).expand(b, -1, -1).clone() * 0.9


def test_tps_kernel_values() -> None:
    r2 = torch.tensor([0.0, 1.0, 4.0, 0.25], dtype=torch.float64)
    expected = torch.tensor(
        [0.0, 0.0, 4 * torch.log(torch.tensor(4.0)).item(), 0.25 * torch.log(torch.tensor(0.25)).item()]
    )
    torch.testing.assert_close(tps_kernel(r2), expected.double())
    r2.requires_grad_(True)
    tps_kernel(r2).sum().backward()
    assert torch.isfinite(r2.grad).all()


def test_zero_parameters_give_identity() -> None:
    b = 2
    theta = torch.eye(2, 3, dtype=torch.float64).expand(b, 2, 3).clone()
    points = make_coordinate_grid(5, 5, torch.float64).view(-1, 2)
    t = RandomTransform(theta, points, torch.zeros(b, 25, 2, dtype=torch.float64))
    frame = _smooth_image(b)
    torch.testing.assert_close(t.transform_frame(frame), frame, atol=1e-10, rtol=0)
    coords = _grid_points(b)
    torch.testing.assert_close(t.warp_coordinates(coords), coords)
    torch.testing.assert_close(
        t.jacobian(coords), torch.eye(2, dtype=torch.float64).expand(b, coords.shape[1], 2, 2)
    )
    # zero sigmas through the sampler give the identity as well
    s = RandomTransform.sample(b, 0.0, 0.0, 5, dtype=torch.float64)
    torch.testing.assert_close(s.warp_coordinates(coords), coords)


@pytest.mark.parametrize("sigma_tps", [0.0, 0.05])
def test_jacobian_matches_finite_differences_and_autograd(sigma_tps: float) -> None:
    g = torch.Generator().manual_seed(3)
    t = RandomTransform.sample(3, 0.1, sigma_tps, 5, generator=g, dtype=torch.float64)
    coords = _grid_points(3) + 0.013  # includes points near, but not on, control points
    jac = t.jacobian(coords)
    eps = 1e-6
    fd = torch.zeros_like(jac)
    for j in range(2):
        step = torch.zeros_like(coords)
        step[..., j] = eps
        fd[..., j] = (t.warp_coordinates(coords + step) - t.warp_coordinates(coords - step)) / (2 * eps)
    torch.testing.assert_close(jac, fd, atol=1e-7, rtol=1e-6)
    # autograd of warp_coordinates, row i = ∇T_i
    c = coords.clone().requires_grad_(True)
    out = t.warp_coordinates(c)
    rows = [torch.autograd.grad(out[..., i].sum(), c, retain_graph=True)[0] for i in range(2)]
    torch.testing.assert_close(jac, torch.stack(rows, dim=-2))
    if sigma_tps > 0:  # the TPS part is really there: the Jacobian varies over the frame
        assert (jac - jac.mean(dim=1, keepdim=True)).abs().max() > 1e-3


def test_jacobian_finite_at_control_points() -> None:
    t = RandomTransform.sample(
        1, 0.05, 0.05, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    coords = t.control_points.unsqueeze(0).clone().requires_grad_(True)
    jac = t.jacobian(coords)
    assert torch.isfinite(jac).all()
    jac.sum().backward()
    assert torch.isfinite(coords.grad).all()


def test_affine_only_matches_affine_formula() -> None:
    theta = torch.tensor(
        [[[1.05, -0.08, 0.04], [0.06, 0.97, -0.03]], [[0.9, 0.1, -0.1], [-0.05, 1.1, 0.02]]],
        dtype=torch.float64,
    )
    t = RandomTransform(theta)
    coords = _grid_points(2)
    expected = coords @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]
    torch.testing.assert_close(t.warp_coordinates(coords), expected)
    torch.testing.assert_close(t.jacobian(coords), theta[:, None, :, :2].expand(2, coords.shape[1], 2, 2))
    frame = _smooth_image(2)
    grid = F.affine_grid(theta, list(frame.shape), align_corners=True)
    ref = F.grid_sample(frame, grid, padding_mode="reflection", align_corners=True)
    torch.testing.assert_close(t.transform_frame(frame), ref)


def test_rotation_convention_is_backward_warp() -> None:
    """θ = 90° rotation, T(x, y) = (−y, x): frame'[i, j] = frame(T(z_ij)) = frame[j, n−1−i]."""
    theta = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    frame = torch.arange(36, dtype=torch.float64).view(1, 1, 6, 6)
    out = RandomTransform(theta).transform_frame(frame)
    expected = torch.empty_like(frame)
    for i in range(6):
        for j in range(6):
            expected[0, 0, i, j] = frame[0, 0, j, 5 - i]
    torch.testing.assert_close(out, expected)


def test_sampling_is_deterministic_and_batchwise() -> None:
    a = RandomTransform.sample(4, generator=torch.Generator().manual_seed(7))
    b = RandomTransform.sample(4, generator=torch.Generator().manual_seed(7))
    c = RandomTransform.sample(4, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.theta, b.theta)
    torch.testing.assert_close(a.control_params, b.control_params)
    assert not torch.allclose(a.theta, c.theta)
    assert a.control_params.shape == (4, 25, 2)
    assert (a.theta[0] - a.theta[1]).abs().max() > 0  # one transform per batch element
    # the paper's sigmas give small, but real, deformations
    coords = make_coordinate_grid(16, 16).view(1, -1, 2).expand(4, -1, -1)
    disp = (a.warp_coordinates(coords) - coords).abs()
    assert 0.005 < disp.mean() < 0.3


def test_bad_inputs_raise() -> None:
    t = RandomTransform.sample(2)
    with pytest.raises(ValueError, match="B×N×2"):
        t.warp_coordinates(torch.zeros(3, 4, 2))
    with pytest.raises(ValueError, match="batch"):
        t.transform_frame(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="theta"):
        RandomTransform(torch.zeros(2, 3, 3))
