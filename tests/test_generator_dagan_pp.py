"""DaGAN++ generator (GMG): shapes, identity motion, source cache, gradients, paper-size forwards."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dagan.errors import InputError
from dagan.geometry.grids import make_coordinate_grid
from dagan.models.blocks import ResBlock2d, level_channels
from dagan.models.generators.dagan_pp import DaganPPGenerator, attention_levels

NUM_KP = 5
SIZE = 64


def tiny(**overrides: Any) -> DaganPPGenerator:
    params: dict[str, Any] = dict(
        num_kp=NUM_KP,
        block_expansion=8,
        max_features=64,
        num_down_blocks=3,
        num_bottleneck_blocks=2,
        dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=2, scale_factor=0.25),
        # 64² and 32² levels have more positions than this: their keys/values get pooled
        attention=dict(max_tokens=256),
    )
    params.update(overrides)
    return DaganPPGenerator(**params)


def keypoints(batch: int, num_kp: int = NUM_KP, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, num_kp, 2, generator=g) * 1.6 - 0.8
    jacobian = torch.eye(2) + 0.1 * torch.randn(batch, num_kp, 2, 2, generator=g)
    return {"value": value, "jacobian": jacobian}


def inputs(batch: int, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 1, size, size, generator=g)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_helpers() -> None:
    assert level_channels(64, 512, 3) == [64, 128, 256, 512]
    assert level_channels(64, 512, 4) == [64, 128, 256, 512, 512]
    assert attention_levels("all", 3) == [0, 1, 2, 3]
    assert attention_levels([2], 3) == [2]
    with pytest.raises(ValueError, match="outside"):
        attention_levels([4], 3)


def test_shapes_and_range() -> None:
    gen = tiny().train()
    src, depth = inputs(2)
    out = gen(src, keypoints(2, seed=1), keypoints(2, seed=2), depth)
    assert out["prediction"].shape == (2, 3, SIZE, SIZE)
    assert out["deformed"].shape == (2, 3, SIZE, SIZE)
    assert out["deformation"].shape == (2, 16, 16, 2)
    assert out["occlusion_map"].shape == (2, 1, 16, 16)
    assert out["mask"].shape == (2, NUM_KP + 1, 16, 16)
    assert out["sparse_deformed"].shape == (2, NUM_KP + 1, 3, 16, 16)
    assert out["prediction"].min() >= 0 and out["prediction"].max() <= 1
    assert [f.shape[-1] for f in gen.encode_source(src, depth)["features"]] == [64, 32, 16, 8]


def test_cache_holds_pooled_keys_values() -> None:
    gen = tiny().eval()
    src, depth = inputs(1)
    cache = gen.encode_source(src, depth)
    assert [k.shape[1] for k in cache["keys"]] == [256, 256, 256, 64]  # 64² and 32² pooled to 16²
    assert [v.shape[-1] for v in cache["values"]] == [8, 16, 32, 64]
    assert "depth_features" not in cache  # only the projected keys/values are kept


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_keypoints_give_identity_motion(align_corners: bool) -> None:
    gen = tiny(
        align_corners=align_corners,
        dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=2, scale_factor=1.0),
    ).eval()
    src, depth = inputs(2)
    kp = keypoints(2)
    with torch.no_grad():
        out = gen(src, kp, kp, depth)
    grid = make_coordinate_grid(SIZE, SIZE).expand(2, SIZE, SIZE, 2)
    torch.testing.assert_close(out["deformation"], grid, atol=1e-4, rtol=0)
    if align_corners:  # corner-aligned grid + align_corners=True samples exactly at the pixels
        inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
        torch.testing.assert_close(out["deformed"][inner], src[inner], atol=1e-4, rtol=0)


def test_source_cache_with_batch_one_equals_forward() -> None:
    gen = tiny().eval()
    src, depth = inputs(1)
    kp_source, kp_driving = keypoints(1, seed=3), keypoints(3, seed=4)
    with torch.no_grad():
        cache = gen.encode_source(src, depth)
        decoded = gen.decode(src, cache, kp_driving, kp_source)
        kp_source_3 = {k: v.expand(3, *v.shape[1:]) for k, v in kp_source.items()}
        full = gen(src.expand(3, -1, -1, -1), kp_driving, kp_source_3, depth.expand(3, -1, -1, -1))
    assert decoded["prediction"].shape[0] == 3
    for key in ("prediction", "deformed", "deformation", "occlusion_map", "mask"):
        torch.testing.assert_close(decoded[key], full[key], atol=1e-5, rtol=1e-5)
    # the three driving poses really give three different images
    assert not torch.allclose(decoded["prediction"][0], decoded["prediction"][1], atol=1e-3)


def test_depth_changes_the_output() -> None:
    gen = tiny().eval()
    src, depth = inputs(1)
    kp_s, kp_d = keypoints(1, seed=1), keypoints(1, seed=2)
    with torch.no_grad():
        a = gen(src, kp_d, kp_s, depth)["prediction"]
        # (a flipped map would barely matter at init: near-uniform attention averages the depth values)
        b = gen(src, kp_d, kp_s, 0.3 * depth)["prediction"]
    assert (a - b).abs().max() > 1e-4


def conv_biases_before_batchnorm(gen: torch.nn.Module) -> set[str]:
    """Conv biases that a train-mode BatchNorm right after them cancels exactly (zero gradient by design)."""
    names = set()
    for mod_name, mod in gen.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if hasattr(mod, "conv") and isinstance(getattr(mod, "norm", None), torch.nn.BatchNorm2d):
            names.add(f"{prefix}conv.bias")
        if isinstance(mod, ResBlock2d):
            names.add(f"{prefix}conv1.bias")
    return names


def backward(gen: DaganPPGenerator) -> None:
    src, depth = inputs(2)
    out = gen(src, keypoints(2, seed=1), keypoints(2, seed=2), depth)
    target = torch.rand_like(out["prediction"])
    (out["prediction"] - target).abs().mean().backward()


@pytest.mark.parametrize("scales", ["all", [2]])
def test_backward_reaches_every_parameter(scales: str | list[int]) -> None:
    gen = tiny(attention=dict(max_tokens=256, scales=scales)).train()
    backward(gen)
    inert = conv_biases_before_batchnorm(gen)
    assert inert  # the exclusion list is not vacuous
    for name, p in gen.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        if name not in inert:
            assert p.grad.abs().sum() > 0, f"{name} has a zero gradient"
    # in eval mode (running statistics) even those biases receive gradient
    gen.zero_grad(set_to_none=True)
    backward(gen.eval())
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} has a zero gradient in eval mode"


def test_single_attention_level_ablation() -> None:
    gen = tiny(attention=dict(scales=[2])).eval()
    assert list(gen.attention.keys()) == ["2"]
    assert len(gen.depth_down_blocks) == 2  # the depth encoder stops at the attended level
    src, depth = inputs(1)
    out = gen(src, keypoints(1, seed=1), keypoints(1, seed=2), depth)
    assert out["prediction"].shape == (1, 3, SIZE, SIZE)
    assert len(gen.encode_source(src, depth)["keys"]) == 1


def test_without_attention_no_depth_needed() -> None:
    gen = tiny(attention=dict(scales=[])).eval()
    assert not gen.uses_depth and not hasattr(gen, "depth_first")
    src, _ = inputs(1)
    assert gen(src, keypoints(1, seed=1), keypoints(1, seed=2))["prediction"].shape == (1, 3, SIZE, SIZE)


def test_input_errors() -> None:
    gen = tiny()
    src, depth = inputs(1)
    with pytest.raises(InputError, match="disparity"):
        gen.encode_source(src)
    with pytest.raises(InputError, match="disparity"):
        gen.encode_source(src, depth[..., :32, :32])
    with pytest.raises(InputError, match="divisible"):
        gen.encode_source(src[..., :60, :60], depth[..., :60, :60])
    cache = gen.encode_source(inputs(2)[0], inputs(2)[1])
    with pytest.raises(InputError, match="batch"):
        gen.decode(inputs(2)[0], cache, keypoints(3), keypoints(3))


@pytest.mark.slow
def test_paper_config_256() -> None:
    gen = DaganPPGenerator(num_kp=15, num_down_blocks=3).eval()
    total = sum(p.numel() for p in gen.parameters())
    dense = sum(p.numel() for p in gen.dense_motion_network.parameters())
    assert dense == 37_796_433  # the FOMM/DaGAN dense motion network
    assert total == 72_786_376  # the count the class docstring reports
    assert list(gen.attention.keys()) == ["0", "1", "2", "3"]
    src, depth = inputs(1, size=256)
    with torch.no_grad():
        out = gen(src, keypoints(1, 15, seed=1), keypoints(1, 15, seed=2), depth)
    assert out["prediction"].shape == (1, 3, 256, 256)
    assert out["deformation"].shape == (1, 64, 64, 2)
    assert torch.isfinite(out["prediction"]).all()


@pytest.mark.slow
def test_paper_config_512_four_down_blocks() -> None:
    gen = DaganPPGenerator(num_kp=15, num_down_blocks=4).eval()
    src, depth = inputs(1, size=512)
    with torch.no_grad():
        cache = gen.encode_source(src, depth)
        assert [k.shape[1] for k in cache["keys"]] == [256] * 5  # 512/2^i pooled to 16×16
        out = gen.decode(src, cache, keypoints(1, 15, seed=1), keypoints(1, 15, seed=2))
    assert out["prediction"].shape == (1, 3, 512, 512)
    assert torch.isfinite(out["prediction"]).all()
