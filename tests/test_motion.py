"""Motion transfer (relative / absolute, adapt scale) and One-Euro keypoint smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from dagan.infer.motion import MotionTransfer, adapt_scale, hull_area, relative_keypoints, transfer_motion
from dagan.infer.smoothing import KeypointSmoother


def random_kp(
    batch: int = 1, num_kp: int = 10, seed: int = 0, spread: float = 0.6
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    value = (torch.rand(batch, num_kp, 2, generator=g) * 2 - 1) * spread
    jacobian = torch.eye(2) + 0.2 * torch.randn(batch, num_kp, 2, 2, generator=g)
    return {"value": value, "jacobian": jacobian}


# --------------------------------------------------------------------------- hull area and scale


def test_hull_area_of_known_shapes() -> None:
    square = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    assert hull_area(square) == pytest.approx(4.0)
    triangle = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert hull_area(triangle) == pytest.approx(3.0)
    # B×K×2: batch element 0 only
    batch = torch.stack([square, square * 3])
    assert hull_area(batch) == pytest.approx(4.0)


def test_hull_area_rejects_degenerate_points() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        hull_area(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 3"):
        hull_area(torch.zeros(2, 2))


def test_adapt_scale_is_ratio_of_sqrt_hull_areas_in_float64() -> None:
    src, anchor = random_kp(seed=1), random_kp(seed=2)
    expected = math.sqrt(ConvexHull(src["value"][0].double().numpy()).volume) / math.sqrt(
        ConvexHull(anchor["value"][0].double().numpy()).volume
    )
    assert adapt_scale(src, anchor) == expected
    # a face twice as large has twice the keypoint spread: s = 2
    big = {"value": anchor["value"] * 2}
    assert adapt_scale(big, anchor) == pytest.approx(2.0)


def test_adapt_scale_degenerate_falls_back_to_one_with_warning() -> None:
    flat = {"value": torch.zeros(1, 5, 2)}
    with pytest.warns(RuntimeWarning, match="adapt-scale disabled"):
        assert adapt_scale(random_kp(), flat) == 1.0


# --------------------------------------------------------------------------- relative / absolute


def test_relative_keypoints_follow_the_official_formula_exactly() -> None:
    src, anchor, drv = random_kp(seed=3), random_kp(seed=4), random_kp(batch=5, seed=5)
    s = adapt_scale(src, anchor)
    out = MotionTransfer.create(src, anchor, "relative", True)(drv)
    # x = (x_D − x_D0)·s + x_S ; J = (J_D · J_D0⁻¹) · J_S — same operations, same order: bit-identical
    value = (drv["value"] - anchor["value"]) * s + src["value"]
    jac = torch.matmul(torch.matmul(drv["jacobian"], torch.inverse(anchor["jacobian"])), src["jacobian"])
    assert torch.equal(out["value"], value)
    assert torch.equal(out["jacobian"], jac)
    # and it is what the formula means (independent float64 computation)
    d, a, sv = (t["value"].double() for t in (drv, anchor, src))
    np.testing.assert_allclose(out["value"].numpy(), ((d - a) * s + sv).numpy(), atol=1e-6)
    jd, ja, js = (t["jacobian"].double().numpy() for t in (drv, anchor, src))
    np.testing.assert_allclose(out["jacobian"].numpy(), jd @ np.linalg.inv(ja) @ js, atol=1e-5)


def test_relative_motion_at_the_anchor_gives_the_source_keypoints() -> None:
    src, anchor = random_kp(seed=6), random_kp(seed=7)
    out = transfer_motion(anchor, src, anchor, "relative", use_adapt_scale=True)
    assert torch.equal(out["value"], src["value"])  # (x_D0 − x_D0)·s + x_S = x_S exactly
    torch.testing.assert_close(out["jacobian"], src["jacobian"], atol=1e-6, rtol=1e-6)


def test_relative_without_adapt_scale_moves_by_the_raw_displacement() -> None:
    src, anchor = random_kp(seed=8), random_kp(seed=9)
    drv = {k: v.clone() for k, v in anchor.items()}
    drv["value"] = drv["value"] + torch.tensor([0.1, -0.05])
    out = transfer_motion(drv, src, anchor, "relative", use_adapt_scale=False)
    torch.testing.assert_close(out["value"] - src["value"], torch.tensor([0.1, -0.05]).expand(1, 10, 2))
    scaled = transfer_motion(drv, src, anchor, "relative", use_adapt_scale=True)
    s = adapt_scale(src, anchor)
    assert s != pytest.approx(1.0)
    torch.testing.assert_close(
        scaled["value"] - src["value"], (torch.tensor([0.1, -0.05]) * s).expand(1, 10, 2)
    )


def test_absolute_mode_passes_the_driving_keypoints_unchanged() -> None:
    drv = random_kp(batch=3, seed=10)
    out = transfer_motion(drv, random_kp(seed=11), None, "absolute")
    assert out is drv
    assert MotionTransfer.create(random_kp(), None, "absolute").scale == 1.0


def test_relative_needs_an_anchor_and_modes_are_checked() -> None:
    with pytest.raises(ValueError, match="anchor"):
        MotionTransfer.create(random_kp(), None, "relative")
    with pytest.raises(ValueError, match="relative, absolute"):
        MotionTransfer.create(random_kp(), random_kp(), "sideways")  # type: ignore[arg-type]


def test_relative_without_jacobians_transfers_values_only() -> None:
    src, anchor, drv = ({"value": random_kp(seed=s)["value"]} for s in (12, 13, 14))
    out = relative_keypoints(drv, anchor, src, scale=1.5)
    assert set(out) == {"value"}
    torch.testing.assert_close(out["value"], (drv["value"] - anchor["value"]) * 1.5 + src["value"])


# --------------------------------------------------------------------------- One-Euro smoothing


def test_keypoint_smoother_streams_across_batches() -> None:
    frames = random_kp(batch=12, seed=15)
    whole = KeypointSmoother(fps=25, min_cutoff=1.0)(frames)
    parts = KeypointSmoother(fps=25, min_cutoff=1.0)
    pieces = [parts({k: v[i : i + 5] for k, v in frames.items()}) for i in range(0, 12, 5)]
    for key in ("value", "jacobian"):
        torch.testing.assert_close(torch.cat([p[key] for p in pieces]), whole[key])
        assert torch.equal(whole[key][0], frames[key][0])
        assert not torch.allclose(whole[key][1:], frames[key][1:])  # it does change later frames


def test_smoother_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        KeypointSmoother(fps=25, min_cutoff=0.0)
