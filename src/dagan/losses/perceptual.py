"""Multi-scale perceptual (VGG feature-matching) reconstruction loss (FOMM eq. 8 / DaGAN++ L_P)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dagan.models.blocks import AntiAliasInterpolation2d
from dagan.models.vgg import VGGFeatures, freeze


def scale_name(scale: float) -> str:
    """A pyramid scale as written in dict keys: 1 → "1", 0.5 → "0.5" (FOMM's ``prediction_0.5``; the same
    format as :func:`dagan.models.discriminator.scale_name`)."""
    return f"{float(scale):g}"


def scale_key(scale: float) -> str:
    """A pyramid scale as written in *module* names, where '.' is not allowed: 1 → "1", 0.5 → "0-5"."""
    return scale_name(scale).replace(".", "-")


class ImagePyramid(nn.Module):
    """Anti-aliased down-scaled copies of an image, one per scale.

    Modules are stored as ``downs["down_<scale_key>"]`` ("down_0-5") and ``forward`` returns
    ``{"prediction_<scale_name>": image}`` ("prediction_0.5") — the input format of the multi-scale
    discriminator. Scale 1 is the image itself.
    """

    def __init__(self, scales: Sequence[float], channels: int = 3) -> None:
        super().__init__()
        if not scales:
            raise ValueError("an image pyramid needs at least one scale")
        self.scales = tuple(float(s) for s in scales)
        self.downs = nn.ModuleDict(
            {f"down_{scale_key(s)}": AntiAliasInterpolation2d(channels, s) for s in self.scales}
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {f"prediction_{scale_name(s)}": self.downs[f"down_{scale_key(s)}"](x) for s in self.scales}


def multiscale_perceptual_loss(
    pred: Tensor,
    target: Tensor,
    vgg: VGGFeatures,
    scales: Sequence[float],
    weights: Sequence[float],
    pyramid: ImagePyramid | None = None,
) -> Tensor:
    """L_P = Σ_s Σ_i w_i · mean|φ_i(P_s(pred)) − φ_i(P_s(target))| with the target features detached.

    φ_i are the VGG taps (5 for the default backbones), P_s the anti-aliased pyramid level at scale s,
    means over all elements of the feature map. A weight of 0 skips that tap. Images are RGB in [0, 1].
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if len(weights) != len(vgg.taps):
        raise ValueError(f"{len(weights)} perceptual weights given for {len(vgg.taps)} VGG taps")
    if pyramid is None:
        pyramid = ImagePyramid(scales, pred.shape[1]).to(pred.device)
    pyr_pred = pyramid(pred)
    with torch.no_grad():
        pyr_target = pyramid(target)
    total = pred.new_zeros(())
    for s in scales:
        key = f"prediction_{scale_name(s)}"
        feats_pred = vgg(pyr_pred[key])
        with torch.no_grad():  # the target is a constant: no graph, less memory
            feats_target = vgg(pyr_target[key])
        for w, fp, ft in zip(weights, feats_pred, feats_target):
            if w != 0:
                total = total + w * torch.abs(fp - ft).mean()
    return total


class PerceptualLoss(nn.Module):
    """Frozen VGG + image pyramid computing :func:`multiscale_perceptual_loss`.

    The VGG stays in eval mode with ``requires_grad = False`` even when the parent module is put in train
    mode; gradients still flow to the *input* images. ``backbone_name`` records which weights are in use.
    """

    def __init__(
        self,
        vgg: VGGFeatures,
        scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
        weights: Sequence[float] = (10.0, 10.0, 10.0, 10.0, 10.0),
        channels: int = 3,
    ) -> None:
        super().__init__()
        if len(weights) != len(vgg.taps):
            raise ValueError(f"{len(weights)} perceptual weights given for {len(vgg.taps)} VGG taps")
        self.vgg = freeze(vgg)
        self.pyramid = ImagePyramid(scales, channels)
        self.scales = tuple(float(s) for s in scales)
        self.weights = tuple(float(w) for w in weights)
        self.backbone_name = vgg.source

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return multiscale_perceptual_loss(pred, target, self.vgg, self.scales, self.weights, self.pyramid)
