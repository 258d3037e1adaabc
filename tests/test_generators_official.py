"""The official-compatible generators: ``fomm`` (OcclusionAwareGenerator), ``dagan`` (DepthAwareGenerator) and
``dagan-spade`` (SPADEDepthAwareGenerator)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dagan.config import Config, DenseMotionParams, GeneratorParams, ModelParams
from dagan.geometry.grids import make_coordinate_grid
from dagan.models.attention import DaganAttention
from dagan.models.factory import build_generator
from dagan.models.generators.dagan import DepthAwareGenerator
from dagan.models.generators.dagan_spade import SPADE, SPADEDepthAwareGenerator, SPADEResnetBlock
from dagan.models.generators.fomm import OcclusionAwareGenerator
from dagan.models.spectral_norm import spectral_sigma

ARCHS = {
    "fomm": OcclusionAwareGenerator,
    "dagan": DepthAwareGenerator,
    "dagan-spade": SPADEDepthAwareGenerator,
}
NUM_KP = 5


def tiny(arch: str, **overrides) -> torch.nn.Module:
    """A narrow model with the official layout (2 down blocks, dense motion at 1/4)."""
    kwargs = dict(
        num_kp=NUM_KP,
        block_expansion=8,
        max_features=32,
        num_down_blocks=2,
        dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=3, scale_factor=0.25),
    )
    if arch != "dagan-spade":
        kwargs["num_bottleneck_blocks"] = 2
    else:
        kwargs["spade_hidden"] = 8
    kwargs.update(overrides)
    return ARCHS[arch](**kwargs)


def random_kp(batch: int, num_kp: int = NUM_KP, jitter: float = 0.3) -> dict[str, torch.Tensor]:
    value = torch.rand(batch, num_kp, 2) * 1.6 - 0.8
    jacobian = torch.eye(2) + jitter * torch.randn(batch, num_kp, 2, 2)
    return {"value": value, "jacobian": jacobian}


def set_gamma(model: torch.nn.Module, value: float) -> None:
    if hasattr(model, "AttnModule"):
        with torch.no_grad():
            model.AttnModule.gamma.fill_(value)


# --------------------------------------------------------------------------- official layout


@pytest.fixture(scope="module")
def official_models() -> dict[str, torch.nn.Module]:
    # The released vox-adv-256 generator config (defaults) with 15 keypoints.
    return {arch: cls(num_kp=15) for arch, cls in ARCHS.items()}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_official_parameter_counts(official_models):
    dagan, spade, fomm = official_models["dagan"], official_models["dagan-spade"], official_models["fomm"]
    assert count(dagan) == 46_096_917
    assert count(dagan.dense_motion_network) == 37_796_433
    assert count(spade) == 67_545_305
    assert count(spade.dense_motion_network) == 37_796_433
    assert count(spade.decoder) == 28_914_119
    # FOMM = DaGAN without the depth encoder (373,120) and the attention block (82,241).
    assert count(dagan.AttnModule) == 82_241
    assert count(fomm) == 46_096_917 - 373_120 - 82_241


def test_official_state_dict_keys(official_models):
    dagan_keys = set(official_models["dagan"].state_dict())
    for key in (
        "AttnModule.query_conv.weight",
        "AttnModule.key_conv.bias",
        "AttnModule.value_conv.weight",
        "AttnModule.gamma",
        "bottleneck.r5.conv2.weight",
        "bottleneck.r0.norm1.running_mean",
        "dense_motion_network.down.weight",
        "dense_motion_network.mask.weight",
        "dense_motion_network.occlusion.bias",
        "src_first.conv.weight",
        "src_down_blocks.1.norm.running_var",
        "down_blocks.1.conv.weight",
        "up_blocks.1.norm.weight",
        "final.weight",
    ):
        assert key in dagan_keys, key
    spade_keys = set(official_models["dagan-spade"].state_dict())
    for key in (
        "decoder.G_middle_0.conv_0.weight_orig",
        "decoder.G_middle_2.conv_1.weight_u",
        "decoder.G_middle_2.conv_1.weight_v",
        "decoder.G_middle_1.norm_0.mlp_shared.0.weight",
        "decoder.up_0.conv_s.weight_orig",
        "decoder.up_1.norm_s.mlp_gamma.weight",
        "decoder.up_1.norm_1.mlp_beta.bias",
        "decoder.compress.weight",
        "decoder.fc.weight",
        "decoder.conv_img.weight",
        "AttnModule.gamma",
        "src_down_blocks.1.norm.running_var",
    ):
        assert key in spade_keys, key
    assert not any(k.startswith(("bottleneck.", "up_blocks.", "final.")) for k in spade_keys)
    assert "decoder.G_middle_0.conv_s.weight_orig" not in spade_keys  # no learned shortcut at 512 → 512
    assert "decoder.up_0.conv_s.bias" not in spade_keys
    fomm_keys = set(official_models["fomm"].state_dict())
    assert not any(k.startswith(("AttnModule.", "src_")) for k in fomm_keys)
    assert official_models["fomm"].uses_depth is False
    assert official_models["dagan"].uses_depth and official_models["dagan-spade"].uses_depth


# --------------------------------------------------------------------------- motion


@pytest.mark.parametrize("arch", list(ARCHS))
def test_equal_keypoints_give_identity_deformation(arch):
    torch.manual_seed(0)
    model = tiny(arch).eval()
    set_gamma(model, 0.5)
    source, depth = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    kp = random_kp(2)  # any Jacobian: J_S J_D^{-1} = I when both sides are equal
    with torch.no_grad():
        out = model(source, kp, kp, depth)
        moved = model(source, random_kp(2), kp, depth)
    identity = make_coordinate_grid(16, 16).expand(2, 16, 16, 2)
    # the soft masks sum to 1 and every sparse motion is the identity, whatever the weights
    assert torch.allclose(out["deformation"], identity, atol=1e-4)
    assert (moved["deformation"] - identity).abs().max() > 1e-2


@pytest.mark.parametrize("align_corners", [True, False])
def test_align_corners_is_passed_to_every_warp(align_corners):
    torch.manual_seed(0)
    dm = dict(block_expansion=8, max_features=32, num_blocks=3, scale_factor=1.0)
    model = tiny("dagan", dense_motion_params=dm, align_corners=align_corners).eval()
    assert model.dense_motion_network.align_corners is align_corners
    source = torch.rand(1, 3, 32, 32)
    kp = random_kp(1)
    with torch.no_grad():
        out = model(source, kp, kp, torch.rand(1, 1, 32, 32))
    # an identity corner-aligned grid reproduces the image only when grid_sample is corner-aligned too
    identical = torch.allclose(out["deformed"], source, atol=1e-5)
    assert identical is align_corners
    sparse = out["sparse_deformed"][:, 0]  # the dense motion's own background warp
    assert torch.allclose(sparse, source, atol=1e-5) is align_corners


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize(("size", "batch"), [(64, 2), (256, 1)])
def test_output_shapes_and_range(arch, size, batch):
    torch.manual_seed(1)
    model = tiny(arch).train()
    set_gamma(model, 0.5)
    h = size // 4
    with torch.no_grad():
        source, depth = torch.rand(batch, 3, size, size), torch.rand(batch, 1, size, size)
        out = model(source, random_kp(batch), random_kp(batch), depth)
    assert out["prediction"].shape == (batch, 3, size, size)
    assert out["deformed"].shape == (batch, 3, size, size)
    assert out["deformation"].shape == (batch, h, h, 2)
    assert out["occlusion_map"].shape == (batch, 1, h, h)
    assert out["mask"].shape == (batch, NUM_KP + 1, h, h)
    assert out["sparse_deformed"].shape == (batch, NUM_KP + 1, 3, h, h)
    pred = out["prediction"]
    assert torch.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1
    assert pred.std() > 0
    assert torch.allclose(out["mask"].sum(1), torch.ones(batch, h, h), atol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_cached_source_decodes_a_driving_batch(arch):
    """Streaming inference: a batch-1 source cache and batch-1 source keypoints against 3 driving frames."""
    torch.manual_seed(2)
    # float64: batch-1 and batch-3 convolutions round differently in float32, and the randomly initialised
    # SPADE decoder amplifies that noise to ~2e-5; in float64 the two paths must agree to rounding.
    model = tiny(arch).eval().double()
    set_gamma(model, 0.7)
    source, depth = torch.rand(1, 3, 64, 64).double(), torch.rand(1, 1, 64, 64).double()
    kp_source = {k: v.double() for k, v in random_kp(1).items()}
    kp_driving = {k: v.double() for k, v in random_kp(3).items()}
    with torch.no_grad():
        cache = model.encode_source(source, depth if model.uses_depth else None)
        assert all(t.shape[0] == 1 for t in cache.values())
        streamed = model.decode(source, cache, kp_driving, kp_source)
        kp_source3 = {k: v.repeat(3, *([1] * (v.dim() - 1))) for k, v in kp_source.items()}
        full = model(source.repeat(3, 1, 1, 1), kp_driving, kp_source3, depth.repeat(3, 1, 1, 1))
    assert set(streamed) == set(full)
    for key in full:
        assert streamed[key].shape == full[key].shape, key
        assert torch.allclose(streamed[key], full[key], atol=1e-9), key
    # the three driving frames really differ
    assert (full["prediction"][0] - full["prediction"][1]).abs().max() > 1e-4


def test_depth_generators_need_the_source_depth():
    model = tiny("dagan")
    with pytest.raises(ValueError, match="source disparity"):
        model.encode_source(torch.rand(1, 3, 64, 64), None)
    cache = model.encode_source(torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="source batch 2 does not match driving batch 3"):
        model.decode(torch.rand(2, 3, 64, 64), cache, random_kp(3), random_kp(3))


def test_driving_depth_is_unused():
    torch.manual_seed(3)
    model = tiny("dagan").eval()
    set_gamma(model, 0.5)
    args = (torch.rand(1, 3, 64, 64), random_kp(1), random_kp(1), torch.rand(1, 1, 64, 64))
    with torch.no_grad():
        a = model(*args)["prediction"]
        b = model(*args, driving_depth=torch.rand(1, 1, 64, 64))["prediction"]
    assert torch.equal(a, b)


# --------------------------------------------------------------------------- attention


def naive_dagan_attention(attn: DaganAttention, depth: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """The official formula written out: energy = QᵀK (B×N×N), A = softmax over keys, out = γ·V·Aᵀ + F."""
    b, c, h, w = feat.shape
    q = F.relu(attn.query_conv(depth)).view(b, -1, h * w).permute(0, 2, 1)  # B×N×C'
    k = F.relu(attn.key_conv(feat)).view(b, -1, h * w)  # B×C'×N
    v = F.relu(attn.value_conv(feat)).view(b, -1, h * w)  # B×C×N
    a = torch.softmax(torch.bmm(q, k), dim=-1)
    return attn.gamma * torch.bmm(v, a.permute(0, 2, 1)).view(b, c, h, w) + feat


def test_attention_matches_naive_reference():
    torch.manual_seed(4)
    attn = DaganAttention(16)
    with torch.no_grad():
        attn.gamma.fill_(0.8)
    depth, feat = torch.rand(2, 16, 5, 6), torch.rand(2, 16, 5, 6)
    with torch.no_grad():
        ours = attn(depth, feat)
        ref = naive_dagan_attention(attn, depth, feat)
        # the unscaled energy matters: the standard 1/sqrt(d) form gives a different result
        q = attn.project_query(depth)
        k = F.relu(attn.key_conv(feat)).flatten(2).transpose(1, 2).unsqueeze(1)
        v = F.relu(attn.value_conv(feat)).flatten(2).transpose(1, 2).unsqueeze(1)
        scaled = F.scaled_dot_product_attention(q, k, v)  # default scale 1/√d, d = 16/8
    assert ours.shape == feat.shape
    assert torch.allclose(ours, ref, atol=1e-5)
    assert (ours - feat).abs().max() > 1e-2  # γ ≠ 0: the block changes the features
    scaled_out = attn.gamma * scaled.squeeze(1).transpose(1, 2).reshape_as(feat) + feat
    assert not torch.allclose(scaled_out, ref, atol=1e-3)


def test_attention_broadcasts_a_cached_query():
    torch.manual_seed(5)
    attn = DaganAttention(16)
    with torch.no_grad():
        attn.gamma.fill_(1.0)
        depth, feat = torch.rand(1, 16, 4, 4), torch.rand(3, 16, 4, 4)
        out = attn.attend(attn.project_query(depth), feat)
        ref = naive_dagan_attention(attn, depth.repeat(3, 1, 1, 1), feat)
    assert torch.allclose(out, ref, atol=1e-5)


# --------------------------------------------------------------------------- training


def zero_grad_parameters(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


def training_step(model: torch.nn.Module) -> None:
    model.train()
    out = model(torch.rand(2, 3, 32, 32), random_kp(2), random_kp(2), torch.rand(2, 1, 32, 32))
    F.mse_loss(out["prediction"], torch.rand_like(out["prediction"])).backward()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_backward_reaches_every_parameter(arch):
    torch.manual_seed(6)
    model = tiny(arch)
    # With γ = 0 (its initial value) the attention branch is multiplied by zero, so its projections and
    # the whole depth encoder get exactly zero gradient on the first step (see the next test); any γ ≠ 0
    # exposes them.
    set_gamma(model, 0.5)
    training_step(model)
    assert zero_grad_parameters(model) == []


def test_initial_gamma_gates_the_attention_branch():
    torch.manual_seed(7)
    model = tiny("dagan")
    assert model.AttnModule.gamma.item() == 0.0
    training_step(model)
    assert model.AttnModule.gamma.grad.abs().item() > 0  # γ itself learns from the first step
    gated = {n.split(".")[0] + "." + n.split(".")[1] for n in zero_grad_parameters(model)}
    assert gated == {
        "AttnModule.query_conv", "AttnModule.key_conv", "AttnModule.value_conv",
        "src_first.conv", "src_first.norm", "src_down_blocks.0", "src_down_blocks.1",
    }


# --------------------------------------------------------------------------- SPADE


def test_spade_normalisation_formula():
    torch.manual_seed(8)
    spade = SPADE(6, 7, hidden=8)
    x, label = torch.randn(2, 6, 8, 8), torch.rand(2, 7, 16, 16)
    with torch.no_grad():
        out = spade(x, label)
        small = label[:, :, ::2, ::2]  # nearest down-sampling by 2 keeps every other pixel
        hidden = F.relu(spade.mlp_shared[0](small))
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        normed = (x - mean) / torch.sqrt(var + 1e-5)
        ref = normed * (1 + spade.mlp_gamma(hidden)) + spade.mlp_beta(hidden)
    assert torch.allclose(out, ref, atol=1e-5)


def test_spade_block_uses_stored_spectral_vectors_in_eval():
    torch.manual_seed(9)
    block = SPADEResnetBlock(8, 4, label_channels=7, hidden=8)
    x, label = torch.randn(1, 8, 8, 8), torch.rand(1, 7, 8, 8)
    conv = block.conv_s
    u0, v0 = conv.weight_u.clone(), conv.weight_v.clone()
    block.eval()
    with torch.no_grad():
        block(x, label)
        block(x, label)
    assert torch.equal(conv.weight_u, u0) and torch.equal(conv.weight_v, v0)  # no power iteration
    sigma = spectral_sigma(conv.weight_orig, u0, v0)
    assert torch.allclose(conv.weight, conv.weight_orig / sigma, atol=1e-6)
    block.train()
    with torch.no_grad():
        block(x, label)
    assert not torch.equal(conv.weight_u, u0)  # training does one power-iteration step per forward


def test_build_generator_builds_the_configured_model():
    gp = GeneratorParams(
        block_expansion=8, max_features=32, num_bottleneck_blocks=1,
        dense_motion_params=DenseMotionParams(block_expansion=8, max_features=32, num_blocks=3),
    )
    for arch, cls in ARCHS.items():
        params = ModelParams(arch=arch, align_corners=True, generator_params=gp)
        params.common_params.num_kp = NUM_KP
        model = build_generator(Config(model_params=params))
        assert type(model) is cls
        assert model.align_corners and model.dense_motion_network.align_corners, arch
        assert model.dense_motion_network.mask.out_channels == NUM_KP + 1
        assert model.first.conv.out_channels == 8
        if arch != "dagan-spade":  # the SPADE decoder has three middle blocks instead of a bottleneck
            assert len(model.bottleneck) == 1
