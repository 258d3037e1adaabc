"""Keypoint detector: official layout/count, heat-map → keypoint math, Jacobian init, gradients."""

from __future__ import annotations

import pytest
import torch

from dagan.models.keypoints import KPDetector, heatmap_softmax, heatmap_to_jacobians, heatmap_to_keypoints

OFFICIAL_KP_PARAMS = 14_262_519


def official_detector(**overrides) -> KPDetector:
    kwargs = dict(
        block_expansion=32, num_kp=15, num_channels=3, max_features=1024, num_blocks=5, temperature=0.1,
        estimate_jacobian=True, scale_factor=0.25, pad=0, use_depth=True,
    )
    kwargs.update(overrides)
    return KPDetector(**kwargs)


def tiny_detector(**overrides) -> KPDetector:
    kwargs = dict(
        block_expansion=8, num_kp=5, num_channels=3, max_features=32, num_blocks=3, temperature=0.1,
        estimate_jacobian=True, scale_factor=0.25, pad=0, use_depth=True,
    )
    kwargs.update(overrides)
    return KPDetector(**kwargs)


def grid_indices(h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")


# --------------------------------------------------------------------------- pure functions


def test_delta_heatmap_gives_exact_grid_coordinate() -> None:
    h, w = 7, 11
    heat = torch.zeros(2, 3, h, w)
    points = [(0, 0), (6, 10), (3, 4)]
    for k, (i, j) in enumerate(points):
        heat[:, k, i, j] = 1.0
    kp = heatmap_to_keypoints(heat)
    assert kp.shape == (2, 3, 2)
    for k, (i, j) in enumerate(points):
        expected = torch.tensor([2 * j / (w - 1) - 1, 2 * i / (h - 1) - 1])
        torch.testing.assert_close(kp[0, k], expected)
        torch.testing.assert_close(kp[1, k], expected)


def test_uniform_heatmap_gives_centre() -> None:
    heat = torch.full((1, 2, 58, 58), 1.0 / 58**2)
    torch.testing.assert_close(heatmap_to_keypoints(heat), torch.zeros(1, 2, 2), atol=1e-6, rtol=0)


def test_heatmap_to_keypoints_is_translation_equivariant() -> None:
    h, w = 32, 40
    yy, xx = grid_indices(h, w, torch.float64)
    blob = torch.exp(-((yy - 12.3) ** 2 + (xx - 15.7) ** 2) / (2 * 1.5**2))
    blob = (blob / blob.sum()).view(1, 1, h, w)
    di, dj = 5, -7
    # the blob is far from the borders: no mass wraps around
    shifted = torch.roll(blob, shifts=(di, dj), dims=(2, 3))
    moved = heatmap_to_keypoints(shifted) - heatmap_to_keypoints(blob)
    expected = torch.tensor([2 * dj / (w - 1), 2 * di / (h - 1)], dtype=torch.float64)
    torch.testing.assert_close(moved[0, 0], expected)


def test_heatmap_softmax_normalises_each_map_with_temperature() -> None:
    logits = torch.randn(2, 3, 5, 6)
    heat = heatmap_softmax(logits, 0.1)
    torch.testing.assert_close(heat.sum(dim=(2, 3)), torch.ones(2, 3))
    expected = torch.softmax(logits.flatten(2) * 10.0, dim=2).view_as(logits)
    torch.testing.assert_close(heat, expected)
    # a lower temperature sharpens the map
    assert heatmap_softmax(logits, 0.01).amax() > heat.amax()


def test_jacobian_is_heatmap_weighted_sum_read_row_major() -> None:
    b, k, h, w = 1, 2, 4, 5
    heat = torch.softmax(torch.randn(b, k, h * w), dim=2).view(b, k, h, w)
    maps = torch.zeros(b, 4 * k, h, w)
    maps[:, 0:4] = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)  # constant maps → that matrix
    maps[:, 4 + 1, 2, 3] = 7.0  # keypoint 1, entry (0, 1), at one pixel → 7 · H_1(2, 3)
    jac = heatmap_to_jacobians(heat, maps)
    assert jac.shape == (b, k, 2, 2)
    torch.testing.assert_close(jac[0, 0], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    expected = torch.zeros(2, 2)
    expected[0, 1] = 7.0 * heat[0, 1, 2, 3]
    torch.testing.assert_close(jac[0, 1], expected)


# --------------------------------------------------------------------------- official layout


def test_official_parameter_count_and_checkpoint_layout() -> None:
    det = official_detector()
    assert sum(p.numel() for p in det.parameters()) == OFFICIAL_KP_PARAMS
    shapes = {k: tuple(v.shape) for k, v in det.state_dict().items()}
    assert shapes["down.weight"] == (4, 1, 13, 13)  # depthwise blur over RGB ⊕ disparity; a buffer
    assert "down.weight" not in dict(det.named_parameters())
    assert shapes["kp.weight"] == (15, 36, 7, 7)
    assert shapes["jacobian.weight"] == (60, 36, 7, 7)
    assert shapes["predictor.encoder.down_blocks.0.conv.weight"] == (64, 4, 3, 3)
    assert shapes["predictor.encoder.down_blocks.4.conv.weight"] == (1024, 512, 3, 3)
    assert shapes["predictor.decoder.up_blocks.0.conv.weight"] == (512, 1024, 3, 3)
    assert shapes["predictor.decoder.up_blocks.4.conv.weight"] == (32, 128, 3, 3)
    assert shapes["predictor.decoder.up_blocks.4.norm.running_var"] == (32,)
    top = {k.split(".")[0] for k in shapes}
    assert top == {"predictor", "kp", "jacobian", "down"}
    blocks = {".".join(k.split(".")[:4]) for k in shapes if k.startswith("predictor.")}
    assert blocks == {f"predictor.encoder.down_blocks.{i}" for i in range(5)} | {
        f"predictor.decoder.up_blocks.{i}" for i in range(5)
    }
    # the blur is the σ = 1.5 Gaussian, normalised per channel
    torch.testing.assert_close(det.down.weight.sum(dim=(1, 2, 3)), torch.ones(4))


def test_official_forward_256_shapes_ranges_and_identity_jacobian() -> None:
    torch.manual_seed(0)
    det = official_detector().eval()
    image, disparity = torch.rand(1, 3, 256, 256), torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        out = det(image, disparity, return_heatmap=True)
    assert set(out) == {"value", "jacobian", "heatmap"}
    assert out["value"].shape == (1, 15, 2)
    assert out["heatmap"].shape == (1, 15, 58, 58)  # 64×64 features, 7×7 heads without padding
    torch.testing.assert_close(out["heatmap"].sum(dim=(2, 3)), torch.ones(1, 15))
    assert out["value"].abs().max() <= 1.0
    # weight 0 / bias [1,0,0,1] → identity whatever the input, since each heat-map sums to 1
    torch.testing.assert_close(out["jacobian"], torch.eye(2).expand(1, 15, 2, 2))
    with torch.no_grad():
        assert set(det(image, disparity)) == {"value", "jacobian"}  # heat-map only on request


def test_disparity_changes_keypoints_only_with_depth() -> None:
    torch.manual_seed(1)
    image = torch.rand(2, 3, 64, 64)
    d1, d2 = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    det = tiny_detector().eval()
    with torch.no_grad():
        assert not torch.allclose(det(image, d1)["value"], det(image, d2)["value"])
    rgb = tiny_detector(use_depth=False).eval()
    assert rgb.down.weight.shape[0] == 3
    with torch.no_grad():
        torch.testing.assert_close(rgb(image, d1)["value"], rgb(image, None)["value"])


def test_bad_inputs_raise_clear_errors() -> None:
    det = tiny_detector()
    with pytest.raises(ValueError, match="no disparity"):
        det(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="disparity must be"):
        det(torch.rand(2, 3, 64, 64), torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="B×3×H×W"):
        det(torch.rand(2, 4, 64, 64), torch.rand(2, 1, 64, 64))


# --------------------------------------------------------------------------- behaviour


def test_keypoint_follows_a_disparity_blob_through_the_cropped_head() -> None:
    """Let the ``kp`` head read only the disparity channel (the hourglass's last skip is its raw input):
    the keypoint lands on the blob, in the coordinates of the *cropped* (padding 0) heat-map."""
    h = w = 32
    det = tiny_detector(num_kp=1, scale_factor=1.0, temperature=0.02).eval()
    disparity_channel = det.predictor.out_filters - 1
    with torch.no_grad():
        det.kp.weight.zero_()
        det.kp.bias.zero_()
        det.kp.weight[0, disparity_channel, 3, 3] = 1.0  # centre tap: map (i, j) reads input (i + 3, j + 3)
    yy, xx = grid_indices(h, w, torch.float32)
    for bi, bj in [(10, 20), (25, 6)]:
        disparity = torch.exp(-((yy - bi) ** 2 + (xx - bj) ** 2) / (2 * 0.8**2)).view(1, 1, h, w)
        with torch.no_grad():
            value = det(torch.rand(1, 3, h, w), disparity)["value"][0, 0]
        crop = h - 6  # 7×7 head, padding 0
        expected = torch.tensor([2 * (bj - 3) / (crop - 1) - 1, 2 * (bi - 3) / (crop - 1) - 1])
        torch.testing.assert_close(value, expected, atol=0.02, rtol=0)


def test_gradients_reach_every_parameter_in_training() -> None:
    torch.manual_seed(2)
    det = tiny_detector().train()
    image, disparity = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    out = det(image, disparity)
    loss = (out["value"] * torch.randn(2, 5, 2)).sum() + (out["jacobian"] * torch.randn(2, 5, 2, 2)).sum()
    loss.backward()
    dead = [n for n, p in det.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []
