"""The inference fast path (``dagan.models.inference``, ``TorchEngine(fast_path=True)``) against the networks as
trained: every rewrite on its own, then whole models of all four architectures (tiny and one full-size
DaGAN++), then real frames through ``dagan animate`` with and without ``--no-fast-path``.

BatchNorm running statistics are randomised wherever a model is built here: freshly built BatchNorms are the
identity (μ = 0, σ² = 1, γ = 1, β = 0), which would make folding trivially right.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import dagan.cli
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.config import Config, load_config
from dagan.data.video import list_frame_files
from dagan.infer.engine import TorchEngine, to_uint8
from dagan.models.blocks import ResBlock2d, SameBlock2d
from dagan.models.factory import ReenactmentModels, build_reenactment_models
from dagan.models.inference import (
    conv_bn_pairs,
    fold_batch_norm,
    fold_batch_norms,
    resolve_spectral_norms,
)
from dagan.models.resnet import BasicBlock, ResNet
from dagan.models.spectral_norm import has_spectral_norm

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = {"dagan++": "dagan++-64.yaml", "dagan": "dagan-64.yaml", "dagan-spade": "dagan-spade-64.yaml",
        "fomm": "fomm-64.yaml"}
#: float tolerance on images in [0, 1] and keypoints in [-1, 1]: rounding, far below one uint8 level (1/255)
ATOL = 1e-4
#: the fast path's promise on 8-bit frames
MAX_UINT8_LEVELS = 2


def randomise_batch_norms(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters in every BatchNorm of ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                n = bn.num_features
                assert bn.running_mean is not None and bn.running_var is not None
                bn.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                bn.weight.copy_(1 + 0.3 * torch.randn(n, generator=g))
                bn.bias.copy_(0.2 * torch.randn(n, generator=g))


def random_models(cfg: Config, seed: int = 0) -> ReenactmentModels:
    torch.manual_seed(seed)
    models = build_reenactment_models(cfg, discriminator=False)
    randomise_batch_norms(models, seed)
    with torch.no_grad():  # the DaGAN attention starts as the identity (γ = 0): make it count
        for name, p in models.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.7)
    return models.eval()


def batch_norms(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]


def animate_tensors(engine: TorchEngine, images: Tensor) -> dict[str, Tensor]:
    """The engine's three calls as animation makes them: image 0 is the source, all images drive it."""
    disparity, kp = engine.keypoints(images)
    source_disparity = None if disparity is None else disparity[:1]
    cache = engine.encode_source(images[:1], source_disparity)
    kp_source = {k: v[:1] for k, v in kp.items()}
    out = {"prediction": engine.predict(images[:1], cache, kp, kp_source), **kp}
    if disparity is not None:
        out["disparity"] = disparity.float()
    return out


def assert_same_outputs(reference: dict[str, Tensor], fast: dict[str, Tensor]) -> None:
    assert reference.keys() == fast.keys()
    for key in reference:
        diff = (reference[key] - fast[key]).abs().max().item()
        assert diff < ATOL, f"{key}: max |Δ| {diff:.2e}"
    levels = np.abs(to_uint8(reference["prediction"]).astype(int) - to_uint8(fast["prediction"]).astype(int))
    assert levels.max() <= MAX_UINT8_LEVELS


# --------------------------------------------------------------------------- the rewrites one by one


@pytest.mark.parametrize("bias", [True, False])
def test_folded_convolution_computes_batch_norm_of_the_convolution(bias: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1, stride=2, bias=bias)
    bn = nn.BatchNorm2d(7)
    randomise_batch_norms(bn)
    bn.eval()
    before = {k: v.clone() for k, v in {**conv.state_dict(), **bn.state_dict()}.items()}
    x = torch.randn(2, 5, 9, 9)
    folded = fold_batch_norm(conv, bn)
    with torch.no_grad():
        assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5)
        assert (folded(x) - conv(x)).abs().max() > 0.1  # the BatchNorm was not the identity
    after = {**conv.state_dict(), **bn.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # the inputs are left as they were


def test_batch_statistics_are_not_folded() -> None:
    block = SameBlock2d(3, 4)  # in training mode: BatchNorm normalises by each batch's own statistics
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batch_norm(block.conv, block.norm)
    assert fold_batch_norms(block) == 0 and batch_norms(block) == ["norm"]


class ConvOutputUsedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return self.norm(y) + y  # folding would change the second use


def test_pairs_are_read_from_forward() -> None:
    assert conv_bn_pairs(SameBlock2d(3, 8)) == [("conv", "norm")]
    # pre-activation: norm1 comes before conv1 (behind a ReLU); only conv1 → norm2 is a pair
    assert conv_bn_pairs(ResBlock2d(8)) == [("conv1", "norm2")]
    block = BasicBlock(8, 16, stride=2)
    assert conv_bn_pairs(block) == [("conv1", "bn1"), ("conv2", "bn2")]
    assert block.downsample is not None and conv_bn_pairs(block.downsample) == [("0", "1")]
    assert conv_bn_pairs(ResNet("resnet18", width=0.125)) == [("conv1", "bn1")]
    assert conv_bn_pairs(ConvOutputUsedTwice()) == []


def test_resolved_spectral_norm_is_the_eval_weight_bit_for_bit() -> None:
    cfg = load_config(CONFIGS / "tiny" / TINY["dagan-spade"])
    generator = random_models(cfg).generator
    assert any(has_spectral_norm(m) for m in generator.modules())  # the SPADE decoder's convolutions
    resolved = copy.deepcopy(generator)
    assert resolve_spectral_norms(resolved) > 0
    assert not any(has_spectral_norm(m) for m in resolved.modules())
    g = torch.Generator().manual_seed(1)
    source, depth = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g)
    kp = {"value": torch.rand(2, 10, 2, generator=g) * 1.6 - 0.8, "jacobian": torch.eye(2).repeat(2, 10, 1, 1)}
    kp_source = {k: v[:1] for k, v in kp.items()}
    with torch.no_grad():
        want = generator.predict(source, generator.encode_source(source, depth), kp, kp_source)
        got = resolved.predict(source, resolved.encode_source(source, depth), kp, kp_source)
    assert torch.equal(got, want)


# --------------------------------------------------------------------------- whole models


@pytest.mark.parametrize("arch", list(TINY))
def test_fast_path_keeps_the_outputs_of_every_arch(arch: str) -> None:
    cfg = load_config(CONFIGS / "tiny" / TINY[arch])
    models = random_models(cfg)
    state = {k: v.clone() for k, v in models.state_dict().items()}
    reference = TorchEngine(models, cfg, "cpu", fast_path=False)
    fast = TorchEngine(models, cfg, "cpu")
    assert reference.models is models and fast.models is not models

    # every BatchNorm left is a residual block's pre-activation norm1; no spectral-norm hook is left
    resblocks = [name for name, m in fast.models.named_modules() if isinstance(m, ResBlock2d)]
    assert batch_norms(fast.models) == [f"{name}.norm1" for name in resblocks]
    assert len(batch_norms(models)) > len(resblocks)
    assert not any(has_spectral_norm(m) for m in fast.models.modules())
    assert fast.models.discriminator is None and not fast.models.training
    # on CPU the detectors' convolutions run channels-last, the generator's keep their layout
    assert fast.models.kp_detector.kp.weight.is_contiguous(memory_format=torch.channels_last)
    assert not fast.models.generator.first.conv.weight.is_contiguous(memory_format=torch.channels_last)

    images = torch.rand(3, 3, cfg.resolution, cfg.resolution, generator=torch.Generator().manual_seed(2))
    assert_same_outputs(animate_tensors(reference, images), animate_tensors(fast, images))
    assert all(torch.equal(v, state[k]) for k, v in models.state_dict().items())  # models left as they were


@pytest.mark.slow
def test_fast_path_keeps_the_outputs_of_a_full_size_dagan_pp() -> None:
    cfg = load_config(CONFIGS / "dagan++-vox-256.yaml")
    models = random_models(cfg)
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    reference = animate_tensors(TorchEngine(models, cfg, "cpu", fast_path=False), images)
    assert_same_outputs(reference, animate_tensors(TorchEngine(models, cfg, "cpu"), images))


# --------------------------------------------------------------------------- real frames, the command line


def test_animate_with_and_without_the_fast_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = {}
    for name, flag in (("fast", "--fast-path"), ("reference", "--no-fast-path")):
        argv = ["animate", "-s", DEMO_SOURCE, "-d", DEMO_DRIVING, "-o", tmp_path / f"{name}.mp4",
                "--checkpoint", DEMO_CHECKPOINT, "--frames-out", tmp_path / name, "--no-paste-back",
                "--max-frames", "6", "--quiet", flag]
        assert dagan.cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
        frames[name] = np.stack(
            [np.asarray(Image.open(p).convert("RGB")) for p in list_frame_files(tmp_path / name)]
        ).astype(int)
    assert frames["fast"].shape == frames["reference"].shape == (6, 64, 64, 3)
    levels = int(np.abs(frames["fast"] - frames["reference"]).max())
    assert levels <= MAX_UINT8_LEVELS
