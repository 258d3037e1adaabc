"""ResNet backbones (He et al., 2016) used as encoders by the face depth and pose networks.

Parameter names follow the torchvision layout (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0/1`` …) so that ImageNet weights and the Monodepth2-format depth checkpoints of the
official DaGAN load without renaming. There is no classifier: ``fc`` / ``avgpool`` are absent, and
loaders drop ``fc.*`` entries. Bottleneck blocks put the stride on the 3×3 conv (torchvision's "v1.5").

The backbone returns the five feature maps a U-Net decoder needs (Monodepth2 convention):
``relu(bn1(conv1(x)))`` at stride 2, ``layer1(maxpool(·))`` at stride 4, ``layer2..4`` at 8, 16, 32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dagan.errors import CheckpointError


@dataclass(frozen=True)
class ResNetSpec:
    """Block type and number of blocks per stage of one ResNet depth."""

    bottleneck: bool
    blocks: tuple[int, int, int, int]


RESNET_SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(False, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(False, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(True, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(True, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(True, (3, 8, 36, 3)),
}


def _check_backbone(backbone: str) -> ResNetSpec:
    if backbone not in RESNET_SPECS:
        raise ValueError(f"unknown ResNet backbone {backbone!r}; choose one of {', '.join(RESNET_SPECS)}")
    return RESNET_SPECS[backbone]


def scaled_channels(channels: int, width: float) -> int:
    """Channels of a stage scaled by the width multiplier w: max(8, round(c·w)) (c itself at w = 1)."""
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return channels if width == 1.0 else max(8, int(round(channels * width)))


def resnet_channels(backbone: str, width: float = 1.0) -> list[int]:
    """Channels of the five feature maps: [64, 64, 128, 256, 512] (basic blocks) or ×4 after the stem.

    With a width multiplier w every stage has ``scaled_channels(64·2^i, w)`` channels (narrow encoders
    for small models); w = 1 is the standard ResNet.
    """
    expansion = 4 if _check_backbone(backbone).bottleneck else 1
    stem = scaled_channels(64, width)
    return [stem] + [scaled_channels(64 * 2**i, width) * expansion for i in range(4)]


class BasicBlock(nn.Module):
    """Two 3×3 convs with BatchNorm; identity (or 1×1 conv + BN) shortcut; ReLU after the sum."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided) → 1×1 expand ×4, each with BatchNorm; shortcut; ReLU after the sum."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1×1 strided conv + BN when the shape changes (keys ``downsample.0`` / ``downsample.1``)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class ResNet(nn.Module):
    """ResNet trunk without classifier on ``num_input_images`` stacked RGB images (3·n input channels).

    ``forward`` returns the five feature maps listed in :attr:`channels` (strides 2, 4, 8, 16, 32).
    ``width`` multiplies every stage's channels (see :func:`scaled_channels`); at 1.0 the parameter
    names and shapes are torchvision's.
    """

    # the four stages, added by name in __init__ (torchvision's parameter names)
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, backbone: str = "resnet18", num_input_images: int = 1, width: float = 1.0) -> None:
        super().__init__()
        spec = _check_backbone(backbone)
        if num_input_images < 1:
            raise ValueError(f"num_input_images must be >= 1, got {num_input_images}")
        self.backbone = backbone
        self.num_input_images = num_input_images
        self.width = float(width)
        self.channels = resnet_channels(backbone, width)
        block = Bottleneck if spec.bottleneck else BasicBlock

        stem = self.channels[0]
        self.conv1 = nn.Conv2d(3 * num_input_images, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = stem
        for stage, num_blocks in enumerate(spec.blocks):
            stage_channels = scaled_channels(64 * 2**stage, width)
            stride = 1 if stage == 0 else 2
            blocks = []
            for i in range(num_blocks):
                blocks.append(block(in_channels, stage_channels, stride if i == 0 else 1))
                in_channels = stage_channels * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation for ReLU nets (fan-out, as torchvision); BN starts as the identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


def expand_input_weights(weight: Tensor, num_images: int) -> Tensor:
    """Turn a first-conv kernel for one RGB image into one for ``num_images`` stacked images.

    W' = [W, W, …, W] / n (concatenated along the input-channel axis, Monodepth2's recipe), so that n
    identical frames give exactly the single-image response: Σ_k (W/n) * x = W * x.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected a 4-D conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    return torch.cat([weight] * num_images, dim=1) / num_images


def detect_backbone(state_dict: Mapping[str, object]) -> str:
    """Name of the ResNet a state dict holds ("resnet18", "resnet50", …), read from its keys.

    Works with any key prefix (``encoder.``, ``module.encoder.`` …). Bottleneck nets are recognised by
    ``layer1.0.conv3`` (absent from ResNet-18/34); the depth by the number of blocks in each stage.
    """
    blocks: list[set[int]] = [set() for _ in range(4)]
    bottleneck = False
    for key in state_dict:
        parts = str(key).split(".")
        for j, part in enumerate(parts[:-2]):
            if part in ("layer1", "layer2", "layer3", "layer4") and parts[j + 1].isdigit():
                blocks[int(part[-1]) - 1].add(int(parts[j + 1]))
                if part == "layer1" and parts[j + 1] == "0" and parts[j + 2] == "conv3":
                    bottleneck = True
                break
    counts = tuple(len(b) for b in blocks)
    if 0 in counts:
        raise CheckpointError("weights do not look like a ResNet: their keys name no layer1..layer4 blocks")
    for name, spec in RESNET_SPECS.items():
        if spec.bottleneck == bottleneck and spec.blocks == counts:
            return name
    kind = "bottleneck" if bottleneck else "basic-block"
    raise CheckpointError(f"unsupported ResNet: {kind} net with {counts} blocks per stage")


def _read_state_dict(source: str | os.PathLike[str] | Mapping[str, object]) -> dict[str, object]:
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"ResNet weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; report them all as one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read ResNet weights {path}: {first_line}") from exc
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} is not a state dict (found {type(loaded).__name__})")
    return dict(loaded)


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, object], what: str) -> None:
    """``module.load_state_dict`` with one-line :class:`CheckpointError` messages on any mismatch.

    Missing BatchNorm ``num_batches_tracked`` counters (old checkpoints) are tolerated.
    """
    own = module.state_dict()
    tensors = {}
    for key, value in state_dict.items():
        if key not in own:
            raise CheckpointError(f"{what}: unexpected entry {key!r}")
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{what}: entry {key!r} is not a tensor")
        if value.shape != own[key].shape:
            raise CheckpointError(
                f"{what}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
            )
        tensors[key] = value
    missing = [k for k in own if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what}: missing entry {missing[0]!r}{more}")
    module.load_state_dict(tensors, strict=False)


def load_torchvision_resnet(
    source: str | os.PathLike[str] | Mapping[str, object], num_input_images: int = 1
) -> ResNet:
    """A :class:`ResNet` holding torchvision-format weights (e.g. ImageNet ``resnet18-f37072fd.pth``).

    The depth is detected from the keys; ``fc.*`` is dropped and a leading ``module.`` stripped. For
    ``num_input_images`` > 1 the first conv is expanded with :func:`expand_input_weights`. Files are read
    with ``weights_only=True``; any problem raises :class:`CheckpointError`.
    """
    state = _read_state_dict(source)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    net = ResNet(detect_backbone(state), num_input_images)
    conv1 = state.get("conv1.weight")
    if isinstance(conv1, Tensor) and num_input_images > 1 and conv1.shape[1] == 3:
        state["conv1.weight"] = expand_input_weights(conv1, num_input_images)
    load_state_dict_checked(net, state, "ResNet weights")
    return net
