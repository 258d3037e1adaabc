"""Convolutional building blocks shared by the keypoint detector, dense motion and generators.

Parameter names (``conv``, ``norm``, ``norm1``/``conv1`` …, ``down_blocks``/``up_blocks``) match the FOMM /
DaGAN checkpoints so that official weights load without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SameBlock2d(nn.Module):
    """conv → BatchNorm → ReLU at constant resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv → BatchNorm → ReLU → 2×2 average pooling (halves the resolution)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class UpBlock2d(nn.Module):
    """nearest ×2 up-sampling → conv → BatchNorm → ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm2 = nn.BatchNorm2d(features, affine=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


def level_channels(block_expansion: int, max_features: int, num_down_blocks: int) -> list[int]:
    """Channels of the generator encoder's levels 0..n: C_0 = e, C_i = min(m, e·2^i) (level 0 = full size)."""
    return [block_expansion] + [
        min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_down_blocks)
    ]


def make_encoder(in_channels: int, channels: list[int]) -> tuple[SameBlock2d, nn.ModuleList]:
    """The FOMM generator encoder: a 7×7 SameBlock stem (in → C_0) and 3×3 down blocks C_i → C_{i+1}."""
    stem = SameBlock2d(in_channels, channels[0], kernel_size=7, padding=3)
    return stem, nn.ModuleList(DownBlock2d(channels[i], channels[i + 1]) for i in range(len(channels) - 1))


def run_encoder(x: Tensor, stem: nn.Module, down_blocks: nn.ModuleList) -> list[Tensor]:
    """The feature map of every encoder level, finest first (built by :func:`make_encoder`)."""
    features = [stem(x)]
    for block in down_blocks:
        features.append(block(features[-1]))
    return features


def make_up_blocks(channels: list[int]) -> nn.ModuleList:
    """The decoder's 3×3 up blocks C_n → C_{n−1} → … → C_0, coarse to fine (mirror of the down blocks)."""
    return nn.ModuleList(UpBlock2d(channels[i + 1], channels[i]) for i in reversed(range(len(channels) - 1)))


def make_bottleneck(channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` 3×3 pre-activation residual blocks named ``r0``, ``r1``, … (the FOMM/DaGAN keys)."""
    bottleneck = nn.Sequential()
    for i in range(num_blocks):
        bottleneck.add_module(f"r{i}", ResBlock2d(channels))
    return bottleneck


class HourglassEncoder(nn.Module):
    """``num_blocks`` down blocks; returns [input, f_1, …, f_n] for the skip connections."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2**i)
            blocks.append(DownBlock2d(cin, min(max_features, block_expansion * 2 ** (i + 1))))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """``num_blocks`` up blocks, each followed by concatenation with the matching encoder feature."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(UpBlock2d(cin, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[Tensor]) -> Tensor:
        skips = list(features)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass (FOMM): output has ``block_expansion + in_features`` channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


def gaussian_kernel_1d(sigma: float, size: int) -> Tensor:
    """Normalised 1-D Gaussian exp(−(i − m)² / 2σ²), m = (size − 1)/2."""
    grid = torch.arange(size, dtype=torch.float32)
    kernel = torch.exp(-((grid - (size - 1) / 2) ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then sub-sampling by ``1/scale`` (keeps every n-th pixel starting at 0).

    σ = (1/scale − 1)/2, kernel 2·round(4σ)+1, zero padding — the FOMM/DaGAN anti-aliasing whose stored
    ``weight`` buffer is part of their checkpoints.
    """

    weight: Tensor

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.groups = channels
        if scale == 1.0:
            self.register_buffer("weight", torch.ones(channels, 1, 1, 1))
            self.ka = self.kb = 0
            self.step = 1
            return
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        k1 = gaussian_kernel_1d(sigma, size)
        kernel = torch.outer(k1, k1)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))
        self.step = int(round(1 / scale))
        if not math.isclose(1 / scale, self.step):
            raise ValueError(f"anti-alias scale must be 1/n for an integer n, got {scale}")

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, self.weight.to(out.dtype), groups=self.groups)
        return out[:, :, :: self.step, :: self.step]
