"""Depth-quality metrics and depth export (16-bit PNG, colour maps, PLY)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dagan.eval.depth_metrics import (
    abs_rel,
    delta_accuracy,
    focal_ratio,
    mean_depth_metrics,
    median_scale,
    relative_structure_error,
    scale_invariant_log_rmse,
)
from dagan.infer.depth_export import (
    apply_colormap,
    colorize,
    depth_to_points,
    disparity_to_uint16,
    read_ply,
    uint16_to_disparity,
    write_ply,
    write_png16,
)


def _face(seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy depth map (a 'face' at ~0.5 m) and a circular mask."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    depth = 0.5 + 0.05 * (x**2 + y**2) + 0.01 * rng.standard_normal((size, size))
    return depth, x**2 + y**2 < 0.8


def test_relative_structure_is_affine_invariant_and_flat_is_one() -> None:
    d, m = _face()
    assert relative_structure_error(d, d, m) == pytest.approx(0.0, abs=1e-9)
    assert relative_structure_error(3.0 * d + 7.0, d, m) == pytest.approx(0.0, abs=1e-9)
    assert relative_structure_error(np.full_like(d, 2.0), d, m) == pytest.approx(1.0)
    # unrelated noise explains almost nothing; an inverted relief is fitted with a < 0 and is still perfect
    noise = np.random.default_rng(1).random(d.shape) + 0.1
    assert 0.9 < relative_structure_error(noise, d, m) <= 1.0
    assert relative_structure_error(-d + 2, d, m) == pytest.approx(0.0, abs=1e-9)
    # half the relief lost → error grows, but stays below flat
    blurred = 0.5 * d + 0.5 * d[m].mean()
    noisy = blurred + 0.02 * np.random.default_rng(2).standard_normal(d.shape)
    assert 0.0 < relative_structure_error(noisy, d, m) < 1.0


def test_relative_structure_formula_by_hand() -> None:
    gt = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 1.0, 2.0, 2.0])
    a, b = np.polyfit(pred, gt, 1)  # least-squares line, as the metric fits
    rmse = np.sqrt(np.mean((a * pred + b - gt) ** 2))
    assert relative_structure_error(pred, gt) == pytest.approx(rmse / gt.std())


def test_median_scaled_metrics_ignore_global_scale() -> None:
    d, m = _face()
    pred = 0.37 * d
    assert median_scale(pred, d, m) == pytest.approx(1 / 0.37)
    assert abs_rel(pred, d, m) == pytest.approx(0.0, abs=1e-12)
    assert abs_rel(pred, d, m, scale=False) == pytest.approx(0.63)
    assert delta_accuracy(pred, d, m) == 1.0
    assert scale_invariant_log_rmse(pred, d, m) == pytest.approx(0.0, abs=1e-7)
    # a 30% error on half the pixels: AbsRel = 0.15 (median unchanged), δ<1.25 = 0.5
    gt = np.ones(100)
    p = np.ones(100)
    p[:40] = 1.3
    assert abs_rel(p, gt) == pytest.approx(0.4 * 0.3)
    assert delta_accuracy(p, gt) == pytest.approx(0.6)


def test_invalid_pixels_are_ignored_and_errors_are_clear() -> None:
    d, m = _face()
    gt = d.copy()
    gt[0, :] = 0.0  # no ground truth
    gt[1, :] = np.nan
    assert abs_rel(d, gt) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shape"):
        abs_rel(d, d[:-1])
    with pytest.raises(ValueError, match="valid pixels"):
        abs_rel(d, d, np.zeros_like(m))
    with pytest.raises(ValueError, match="constant"):
        relative_structure_error(d, np.ones_like(d))
    assert focal_ratio(115.0, 100.0) == pytest.approx(1.15)


def test_mean_metrics_average_frames() -> None:
    d1, m = _face(0)
    d2, _ = _face(1)
    gt = np.stack([d1, d2])
    pred = np.stack([d1, np.full_like(d2, 1.0)])
    out = mean_depth_metrics(pred, gt, np.stack([m, m]))
    assert out["rel_structure"] == pytest.approx(0.5)
    assert set(out) == {"rel_structure", "abs_rel", "delta_1.25", "si_log_rmse"}


def test_png16_round_trip(tmp_path) -> None:
    disp = np.linspace(0, 1, 64 * 48).reshape(48, 64).astype(np.float32)
    path = write_png16(tmp_path / "d.png", disp)
    img = Image.open(path)
    assert img.size == (64, 48) and img.mode.startswith("I")
    back = uint16_to_disparity(np.asarray(img))
    assert np.abs(back - disp).max() <= 0.5 / 65535 + 1e-7
    assert disparity_to_uint16(np.array([-1.0, 0.5, 2.0])).tolist() == [0, 32768, 65535]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_colormaps_are_monotone_in_lightness() -> None:
    t = np.linspace(0, 1, 50)
    for name in ("viridis", "magma"):
        rgb = apply_colormap(t, name)
        assert rgb.shape == (50, 3) and rgb.min() >= 0 and rgb.max() <= 1
        luma = rgb @ np.array([0.299, 0.587, 0.114])
        assert np.all(np.diff(luma) > 0), name
    with pytest.raises(ValueError, match="colour map"):
        apply_colormap(t, "jet")
    preview = colorize(np.random.default_rng(0).random((8, 9)))
    assert preview.shape == (8, 9, 3) and preview.dtype == np.uint8


def test_point_cloud_geometry_and_ply_round_trip(tmp_path) -> None:
    K = np.array([[100.0, 0, 15.5], [0, 100.0, 11.5], [0, 0, 1]])
    depth = np.full((24, 32), 2.0)
    pts = depth_to_points(depth, K)
    assert pts[11, 15, 0] == pytest.approx(-0.01) and pts[0, 0, 1] == pytest.approx(-0.23)
    assert np.allclose(pts[..., 2], 2.0)
    # project back: u = fx·X/Z + cx
    u = K[0, 0] * pts[..., 0] / pts[..., 2] + K[0, 2]
    assert np.allclose(u, np.arange(32)[None, :].repeat(24, 0), atol=1e-4)
    colors = np.random.default_rng(0).integers(0, 256, (24 * 32, 3), dtype=np.uint8)
    write_ply(tmp_path / "c.ply", pts.reshape(-1, 3), colors)
    back, cols = read_ply(tmp_path / "c.ply")
    assert np.allclose(back, pts.reshape(-1, 3)) and np.array_equal(cols, colors)
    head = (tmp_path / "c.ply").read_bytes()[:200].decode("ascii", "replace")
    assert "element vertex 768" in head and "binary_little_endian" in head
