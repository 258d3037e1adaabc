"""Multi-scale discriminator: official layout/count, keypoint conditioning, spectral norm numerics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dagan.geometry.grids import keypoint_gaussians
from dagan.models.discriminator import Discriminator, MultiScaleDiscriminator, min_input_size, scale_name
from dagan.models.spectral_norm import apply_spectral_norm, has_spectral_norm, spectral_sigma

OFFICIAL_D_PARAMS = 2_774_209


def tiny(**overrides) -> MultiScaleDiscriminator:
    kwargs = dict(scales=[1], block_expansion=8, max_features=32, num_blocks=4, num_kp=3)
    kwargs.update(overrides)
    return MultiScaleDiscriminator(**kwargs)


def random_kp(b: int, k: int) -> torch.Tensor:
    return torch.rand(b, k, 2) * 1.6 - 0.8


def test_official_parameter_count_and_checkpoint_layout() -> None:
    d = MultiScaleDiscriminator(scales=[1.0])  # config floats still give the official key "1"
    assert sum(p.numel() for p in d.parameters()) == OFFICIAL_D_PARAMS
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    expected = {"discs.1.conv.weight": (1, 512, 1, 1), "discs.1.conv.bias": (1,)}
    for i, (cin, cout) in enumerate([(18, 64), (64, 128), (128, 256), (256, 512)]):
        expected[f"discs.1.down_blocks.{i}.conv.weight"] = (cout, cin, 4, 4)
        expected[f"discs.1.down_blocks.{i}.conv.bias"] = (cout,)
        if i > 0:  # no norm on the first block; affine InstanceNorm keeps no running statistics
            expected[f"discs.1.down_blocks.{i}.norm.weight"] = (cout,)
            expected[f"discs.1.down_blocks.{i}.norm.bias"] = (cout,)
    assert shapes == expected


def test_forward_256_shapes() -> None:
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(scales=[1]).eval()
    with torch.no_grad():
        out = d({"prediction_1": torch.rand(1, 3, 256, 256)}, random_kp(1, 15))
    assert set(out) == {"prediction_map_1", "feature_maps_1"}
    # 4×4 convs without padding: 256 → 253 → pool 126 → 123 → 61 → 58 → 29 → 26
    assert [tuple(f.shape) for f in out["feature_maps_1"]] == [
        (1, 64, 126, 126), (1, 128, 61, 61), (1, 256, 29, 29), (1, 512, 26, 26),
    ]
    assert out["prediction_map_1"].shape == (1, 1, 26, 26)
    assert torch.isfinite(out["prediction_map_1"]).all()


def test_input_is_image_then_keypoint_gaussians_and_keypoints_are_detached() -> None:
    torch.manual_seed(1)
    d = tiny()
    seen: list[torch.Tensor] = []
    d.discs["1"].down_blocks[0].conv.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    image = torch.rand(2, 3, 64, 64)
    kp = random_kp(2, 3).requires_grad_(True)
    out = d(image, kp)
    x = seen[0]
    assert x.shape == (2, 6, 64, 64)
    torch.testing.assert_close(x[:, :3], image)
    torch.testing.assert_close(x[:, 3:], keypoint_gaussians(kp.detach(), 64, 64, 0.01))
    out["prediction_map_1"].sum().backward()
    assert kp.grad is None  # the discriminator never moves the keypoints
    # moving a keypoint changes the verdict; a keypoint dict is accepted as well
    with torch.no_grad():
        a = d(image, kp.detach())["prediction_map_1"]
        b = d(image, {"value": kp.detach() + 0.3})["prediction_map_1"]
    assert not torch.allclose(a, b)


def test_without_keypoints() -> None:
    d = tiny(use_kp=False)
    assert d.discs["1"].down_blocks[0].conv.in_channels == 3
    out = d(torch.rand(2, 3, 64, 64))
    assert out["prediction_map_1"].shape[1] == 1
    with pytest.raises(ValueError, match="no keypoints"):
        tiny()(torch.rand(2, 3, 64, 64))


def test_multi_scale_keys_and_pyramid_lookup() -> None:
    assert [scale_name(s) for s in (1, 1.0, 0.5, 0.25)] == ["1", "1", "0.5", "0.25"]
    d = tiny(scales=[1, 0.5])
    assert set(d.discs) == {"1", "0-5"}
    pyramid = {"prediction_1": torch.rand(2, 3, 128, 128), "prediction_0.5": torch.rand(2, 3, 64, 64)}
    out = d(pyramid, random_kp(2, 3))
    assert set(out) == {"prediction_map_1", "feature_maps_1", "prediction_map_0.5", "feature_maps_0.5"}
    assert out["prediction_map_0.5"].shape[-1] < out["prediction_map_1"].shape[-1]
    with pytest.raises(KeyError, match="prediction_0.5"):
        d({"prediction_1": pyramid["prediction_1"]}, random_kp(2, 3))
    with pytest.raises(ValueError, match="single image tensor"):
        d(pyramid["prediction_1"], random_kp(2, 3))


@pytest.mark.parametrize("sn", [False, True])
def test_gradients_reach_every_parameter_in_training(sn: bool) -> None:
    torch.manual_seed(2)
    d = tiny(sn=sn).train()
    out = d(torch.rand(2, 3, 64, 64), random_kp(2, 3))
    loss = (out["prediction_map_1"] ** 2).mean() + sum(f.abs().mean() for f in out["feature_maps_1"])
    loss.backward()
    dead = [n for n, p in d.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


# --------------------------------------------------------------------------- spectral norm


def unconverged_sn_conv(seed: int) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = apply_spectral_norm(nn.Conv2d(5, 7, 3))
    # stored vectors far from the singular vectors, as in a real (partly trained) checkpoint
    with torch.no_grad():
        conv.weight_u.copy_(F.normalize(torch.randn(7), dim=0))
        conv.weight_v.copy_(F.normalize(torch.randn(5 * 9), dim=0))
    return conv


def test_spectral_norm_layout() -> None:
    conv = unconverged_sn_conv(3)
    assert has_spectral_norm(conv)
    assert {n for n, _ in conv.named_parameters()} == {"weight_orig", "bias"}
    assert {n: tuple(b.shape) for n, b in conv.named_buffers()} == {"weight_u": (7,), "weight_v": (45,)}
    assert set(conv.state_dict()) == {"bias", "weight_orig", "weight_u", "weight_v"}


def test_spectral_norm_eval_uses_stored_u_and_v() -> None:
    conv = unconverged_sn_conv(4).eval()
    u, v, w = conv.weight_u.clone(), conv.weight_v.clone(), conv.weight_orig.detach().clone()
    x = torch.randn(2, 5, 9, 9)
    with torch.no_grad():
        y = conv(x)
    sigma = torch.dot(u, w.reshape(7, -1) @ v)
    torch.testing.assert_close(spectral_sigma(w, u, v), sigma)
    torch.testing.assert_close(y, F.conv2d(x, w / sigma, conv.bias))
    torch.testing.assert_close(conv.weight_u, u)  # no power iteration in eval
    torch.testing.assert_close(conv.weight_v, v)
    # … and that is not the exact spectral norm, so the test tells the two apart
    exact = torch.linalg.matrix_norm(w.reshape(7, -1), ord=2)
    assert not torch.allclose(sigma.abs(), exact, rtol=1e-2)
    # training does one power-iteration step, updating the stored vectors in place
    conv.train()
    with torch.no_grad():
        conv(x)
    assert not torch.allclose(conv.weight_u, u)


def test_spectral_norm_state_dict_round_trip_without_metadata() -> None:
    """Converters rebuild plain dicts (e.g. stripping ``module.``), which drops the version metadata."""
    src = unconverged_sn_conv(5)
    state = {k: v.clone() for k, v in src.state_dict().items()}  # plain dict: no _metadata
    dst = apply_spectral_norm(nn.Conv2d(5, 7, 3))
    dst.load_state_dict(state)
    torch.testing.assert_close(dst.weight_v, src.weight_v)
    x = torch.randn(1, 5, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(dst.eval()(x), src.eval()(x))


def test_sn_discriminator_eval_equals_plain_one_with_normalised_weights() -> None:
    torch.manual_seed(6)
    d_sn = tiny(sn=True)
    with torch.no_grad():
        for m in d_sn.modules():
            if isinstance(m, nn.Conv2d):
                m.weight_u.copy_(F.normalize(torch.randn_like(m.weight_u), dim=0))
                m.weight_v.copy_(F.normalize(torch.randn_like(m.weight_v), dim=0))
    d_sn.eval()
    state = {}
    for k, v in d_sn.state_dict().items():
        if k.endswith("weight_orig"):
            prefix = k[: -len("weight_orig")]
            u, w = d_sn.state_dict()[prefix + "weight_u"], d_sn.state_dict()[prefix + "weight_v"]
            state[prefix + "weight"] = v / spectral_sigma(v, u, w)
        elif not k.endswith(("weight_u", "weight_v")):
            state[k] = v
    d_plain = tiny(sn=False).eval()
    d_plain.load_state_dict(state)
    image, kp = torch.rand(2, 3, 64, 64), random_kp(2, 3)
    before = copy.deepcopy(d_sn.state_dict())
    with torch.no_grad():
        a, b = d_sn(image, kp), d_plain(image, kp)
    torch.testing.assert_close(a["prediction_map_1"], b["prediction_map_1"])
    for fa, fb in zip(a["feature_maps_1"], b["feature_maps_1"], strict=True):
        torch.testing.assert_close(fa, fb)
    for k, v in d_sn.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_min_input_size_is_exact() -> None:
    assert min_input_size(4) == 61
    assert min_input_size(1) == 4
    disc = Discriminator(num_channels=3, block_expansion=8, max_features=32, use_kp=False)
    assert disc(torch.rand(1, 3, 61, 61))[1].shape[-2:] == (2, 2)
    with pytest.raises(ValueError, match="too small"):
        disc(torch.rand(1, 3, 60, 80))
    single = Discriminator(num_channels=3, block_expansion=8, num_blocks=1, use_kp=False)
    assert single(torch.rand(1, 3, 4, 4))[1].shape[-2:] == (1, 1)


def test_discriminator_module_returns_features_and_map() -> None:
    disc = Discriminator(num_channels=3, block_expansion=8, max_features=32, num_kp=2)
    feats, pred = disc(torch.rand(1, 3, 64, 64), random_kp(1, 2))
    assert len(feats) == 4 and pred.shape[:2] == (1, 1)
