"""Face depth network F_d: ResNet encoder + Monodepth2-style U-Net decoder → disparity σ ∈ (0, 1).

The layout and parameter names are those of the Monodepth2-format depth checkpoints shipped with the
official DaGAN (``encoder.pth`` ↔ :class:`ResnetEncoder`, ``depth.pth`` ↔ :class:`DepthDecoder`), so they
load without renaming once the non-tensor entries (``height``, ``width``, ``use_stereo``) and ``encoder.fc.*``
are dropped. The sigmoid output is a *disparity*; downstream modules consume it raw, and
``dagan.geometry.camera.disparity_to_depth`` converts it for the depth-training geometry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.errors import CheckpointError, InputError
from dagan.models.resnet import ResNet, detect_backbone, load_state_dict_checked, load_torchvision_resnet

__all__ = [
    "ConvBlock",
    "DepthDecoder",
    "FaceDepthNet",
    "ReflectConv3x3",
    "ResnetEncoder",
    "detect_backbone",
    "load_depth_net_state",
    "monodepth2_encoder_state",
]

# Monodepth2's fixed input normalisation (not ImageNet's per-channel statistics).
INPUT_MEAN = 0.45
INPUT_STD = 0.225
DECODER_CHANNELS = (16, 32, 64, 128, 256)


class ResnetEncoder(nn.Module):
    """Normalise (x − 0.45)/0.225, then a :class:`ResNet` on ``num_input_images`` stacked RGB frames.

    The ResNet is the attribute ``encoder``, so keys read ``encoder.conv1.weight`` … as in Monodepth2's
    ``encoder.pth`` / ``pose_encoder.pth``. Returns the five feature maps (strides 2…32).
    """

    def __init__(self, backbone: str = "resnet18", num_input_images: int = 1, width: float = 1.0) -> None:
        super().__init__()
        self.encoder = ResNet(backbone, num_input_images, width=width)
        self.channels = self.encoder.channels

    @property
    def backbone(self) -> str:
        return self.encoder.backbone

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.encoder((x - INPUT_MEAN) / INPUT_STD)

    def load_imagenet_weights(self, source: str | os.PathLike[str] | Mapping[str, object]) -> None:
        """Initialise from torchvision-format ImageNet weights (file or state dict) of the same depth."""
        if self.encoder.width != 1.0:
            raise CheckpointError(
                f"ImageNet weights need a standard-width encoder, but this one has width {self.encoder.width}"
            )
        net = load_torchvision_resnet(source, self.encoder.num_input_images)
        if net.backbone != self.backbone:
            raise CheckpointError(
                f"ImageNet weights are a {net.backbone}, but this encoder is a {self.backbone}"
            )
        self.encoder.load_state_dict(net.state_dict())


class ReflectConv3x3(nn.Module):
    """Reflection padding 1 then a 3×3 conv (keys ``conv.weight`` / ``conv.bias``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))


class ConvBlock(nn.Module):
    """Reflection-padded 3×3 conv + ELU (keys ``conv.conv.weight`` / ``conv.conv.bias``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ReflectConv3x3(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(self.conv(x))


class DepthDecoder(nn.Module):
    """U-Net decoder from the five encoder maps to disparities at scales 0..num_scales−1 (1/2^s resolution).

    For i = 4..0: x ← ConvBlock(x); x ← nearest×2(x); x ← [x, skip_{i−1}] (i > 0); x ← ConvBlock(x); and for
    i < num_scales, σ_i = sigmoid(conv3×3(x)). ``decoder`` holds the ten ConvBlocks in that order
    (``decoder.0`` … ``decoder.9``) followed by the disparity convs of scales 0.. (``decoder.10`` …).
    """

    def __init__(self, encoder_channels: list[int] | tuple[int, ...], num_scales: int = 4) -> None:
        super().__init__()
        if not 1 <= num_scales <= 4:
            raise ValueError(f"num_scales must be in 1..4, got {num_scales}")
        if len(encoder_channels) != 5:
            raise ValueError(f"expected 5 encoder channel counts, got {len(encoder_channels)}")
        self.num_scales = num_scales
        blocks: list[nn.Module] = []
        for i in range(4, -1, -1):
            cin = encoder_channels[-1] if i == 4 else DECODER_CHANNELS[i + 1]
            blocks.append(ConvBlock(cin, DECODER_CHANNELS[i]))
            skip = encoder_channels[i - 1] if i > 0 else 0
            blocks.append(ConvBlock(DECODER_CHANNELS[i] + skip, DECODER_CHANNELS[i]))
        blocks += [ReflectConv3x3(DECODER_CHANNELS[s], 1) for s in range(num_scales)]
        self.decoder = nn.ModuleList(blocks)

    def forward(self, features: list[Tensor], scales: tuple[int, ...] | None = None) -> list[Tensor]:
        """Disparities for ``scales`` (default all, finest first) from the encoder's five maps."""
        scales = tuple(range(self.num_scales)) if scales is None else scales
        for s in scales:
            if not 0 <= s < self.num_scales:
                raise ValueError(f"scale {s} not produced by this decoder (num_scales={self.num_scales})")
        out: dict[int, Tensor] = {}
        x = features[-1]
        for step, i in enumerate(range(4, -1, -1)):
            x = self.decoder[2 * step](x)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.decoder[2 * step + 1](x)
            if i in scales:
                out[i] = torch.sigmoid(self.decoder[10 + i](x))
        return [out[s] for s in scales]


class FaceDepthNet(nn.Module):
    """F_d: RGB image in [0, 1] (B×3×H×W, H and W multiples of 32, ≥ 64) → disparity B×1×H×W in (0, 1).

    ``encoder`` / ``decoder`` state dicts are the official ``encoder.pth`` / ``depth.pth`` layouts.
    """

    def __init__(self, backbone: str = "resnet18", num_scales: int = 4, width: float = 1.0) -> None:
        super().__init__()
        # width < 1 narrows the encoder only (small demo models); the decoder adapts to its channels.
        self.encoder = ResnetEncoder(backbone, num_input_images=1, width=width)
        self.decoder = DepthDecoder(self.encoder.channels, num_scales)

    @property
    def backbone(self) -> str:
        return self.encoder.backbone

    @property
    def num_scales(self) -> int:
        return self.decoder.num_scales

    def forward(self, image: Tensor) -> Tensor:
        """Disparity at the input resolution (scale 0)."""
        return self.decoder(self.encoder(_check_image(image)), scales=(0,))[0]

    def forward_multiscale(self, image: Tensor) -> list[Tensor]:
        """Disparities at scales 0..num_scales−1, scale s being (H/2^s)×(W/2^s)."""
        return self.decoder(self.encoder(_check_image(image)))


def _check_image(image: Tensor) -> Tensor:
    # The U-Net concatenates ×2-upsampled maps with stride-2^i skips, so sizes must divide by 32, and
    # reflection padding needs the stride-32 bottleneck to be at least 2×2.
    if image.dim() != 4 or image.shape[1] != 3:
        raise InputError(f"depth net expects B×3×H×W images, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h % 32 or w % 32 or h < 64 or w < 64:
        raise InputError(f"depth net input height and width must be multiples of 32 and >= 64, got {h}×{w}")
    return image


def monodepth2_encoder_state(state_dict: Mapping[str, object]) -> dict[str, Tensor]:
    """Keep the tensor entries of a Monodepth2 ``encoder.pth`` that a :class:`ResnetEncoder` holds.

    Drops the non-tensor ``height`` / ``width`` / ``use_stereo`` entries and the classifier ``encoder.fc.*``.
    """
    return {
        k: v for k, v in state_dict.items() if isinstance(v, Tensor) and not k.startswith("encoder.fc.")
    }


def load_depth_net_state(net: FaceDepthNet, encoder_state: Mapping[str, object],
                         decoder_state: Mapping[str, object]) -> None:
    """Load Monodepth2-format encoder/decoder state dicts into ``net`` with one-line errors on mismatch.

    Disparity convs for scales the net does not have (``num_scales`` < 4) are ignored.
    """
    backbone = detect_backbone(encoder_state)
    if backbone != net.backbone:
        raise CheckpointError(
            f"depth weights are a {backbone} encoder, but the model expects a {net.backbone}"
        )
    load_state_dict_checked(net.encoder, monodepth2_encoder_state(encoder_state), "depth encoder weights")
    last = 10 + net.num_scales
    decoder = {
        k: v for k, v in decoder_state.items()
        if not (k.startswith("decoder.") and k.split(".")[1].isdigit() and int(k.split(".")[1]) >= last)
    }
    load_state_dict_checked(net.decoder, decoder, "depth decoder weights")
