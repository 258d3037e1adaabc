"""Multi-scale patch discriminator conditioned on keypoint heat-maps (FOMM / DaGAN / DaGAN++).

Per scale s a pix2pix-style patch discriminator D_s sees the image at that scale concatenated with K
Gaussian maps of the (detached) driving keypoints, G_k(z) = exp(−½‖z − x_k‖²/σ²), σ² = ``kp_variance``:

    block i = 0 … n−1:  4×4 conv (no padding) → [InstanceNorm, i > 0] → LeakyReLU(0.2)
                        → [2×2 avg-pool, i < n−1]
    prediction map:     1×1 conv on the last block's output.

The per-block outputs are returned too (feature-matching loss). Parameter names match the official
``discriminator`` entries: ``discs.<scale>.down_blocks.<i>.{conv,norm}.*`` and ``discs.<scale>.conv.*``, with
the scale written as in the official code (``1``, ``0-5``, …); with ``sn`` the convs carry the classic
spectral-norm entries ``weight_orig``/``weight_u``/``weight_v``. Official count (K = 15, defaults): 2,774,209.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.geometry.grids import keypoint_gaussians
from dagan.models.spectral_norm import apply_spectral_norm

__all__ = ["Discriminator", "DiscriminatorBlock", "MultiScaleDiscriminator", "min_input_size", "scale_name"]


def scale_name(scale: float) -> str:
    """How a pyramid scale is written in keys: 1 → "1", 0.5 → "0.5", 0.25 → "0.25" (1.0 is "1", not "1.0")."""
    return f"{float(scale):g}"


def min_input_size(num_blocks: int, kernel_size: int = 4) -> int:
    """Smallest square side the discriminator accepts.

    Each block maps a side s to s − k + 1 (unpadded k×k conv), then ⌊·/2⌋ for all but the last block; the
    last block must leave at least 2×2 pixels because instance normalisation needs more than one pixel
    (1×1 suffices when there is a single, unnormalised block). Inverting from there gives 61 for 4 blocks.
    """
    last_output = 2 if num_blocks > 1 else 1
    size = last_output + kernel_size - 1  # input side of the last conv
    for _ in range(num_blocks - 1):
        size = 2 * size + kernel_size - 1
    return size


class DiscriminatorBlock(nn.Module):
    """4×4 conv without padding → optional InstanceNorm(affine) → LeakyReLU(0.2) → optional 2×2 avg-pool."""

    def __init__(self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=4)
        if sn:
            apply_spectral_norm(self.conv)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        if self.pool:
            out = F.avg_pool2d(out, kernel_size=2)
        return out


class Discriminator(nn.Module):
    """Single-scale patch discriminator; ``forward`` returns (feature maps of every block, prediction map)."""

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 32,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = False,
        use_kp: bool = True,
        num_kp: int = 15,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        self.use_kp = use_kp
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        blocks = []
        for i in range(num_blocks):
            first = num_channels + (num_kp if use_kp else 0)
            cin = first if i == 0 else min(max_features, block_expansion * 2**i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(DiscriminatorBlock(cin, cout, norm=i != 0, pool=i != num_blocks - 1, sn=sn))
        self.down_blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(blocks[-1].conv.out_channels, 1, kernel_size=1)
        if sn:
            apply_spectral_norm(self.conv)
        self.min_size = min_input_size(num_blocks)

    def forward(self, image: Tensor, kp: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        if min(image.shape[-2:]) < self.min_size:
            raise ValueError(
                f"discriminator input {tuple(image.shape[-2:])} is too small: "
                f"{len(self.down_blocks)} blocks need at least {self.min_size}×{self.min_size}"
            )
        out = image
        if self.use_kp:
            if kp is None:
                raise ValueError("discriminator was built with use_kp=True but no keypoints were given")
            # The discriminator judges the image given the pose; it must not move the keypoints.
            h, w = image.shape[2:]
            heat = keypoint_gaussians(kp.detach().to(image.dtype), h, w, self.kp_variance)
            out = torch.cat([out, heat], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per pyramid scale.

    ``forward(pyramid, kp)`` takes the image pyramid as a dict ``{"prediction_<scale>": B×C×h×w}`` (scale
    written by :func:`scale_name`; a plain tensor is accepted when the only scale is 1) and keypoints B×K×2
    (or a keypoint dict with ``"value"``), and returns ``{"prediction_map_<scale>": B×1×h'×w',
    "feature_maps_<scale>": [per-block features]}``.
    """

    def __init__(
        self,
        scales: list[float] | tuple[float, ...] = (1,),
        block_expansion: int = 32,
        num_channels: int = 3,
        max_features: int = 512,
        num_blocks: int = 4,
        sn: bool = False,
        use_kp: bool = True,
        num_kp: int = 15,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        if not scales:
            raise ValueError("the discriminator needs at least one scale")
        self.scales = [float(s) for s in scales]
        self.discs = nn.ModuleDict(
            {
                scale_name(s).replace(".", "-"): Discriminator(
                    num_channels, block_expansion, num_blocks, max_features, sn, use_kp, num_kp, kp_variance
                )
                for s in self.scales
            }
        )

    def forward(
        self, pyramid: dict[str, Tensor] | Tensor, kp: Tensor | dict[str, Tensor] | None = None
    ) -> dict[str, Tensor | list[Tensor]]:
        if isinstance(kp, dict):
            kp = kp["value"]
        if isinstance(pyramid, Tensor):
            if self.scales != [1.0]:
                raise ValueError(f"a single image tensor is only accepted for scales [1], not {self.scales}")
            pyramid = {"prediction_1": pyramid}
        out: dict[str, Tensor | list[Tensor]] = {}
        for key, disc in self.discs.items():
            name = key.replace("-", ".")
            image = pyramid.get(f"prediction_{name}")
            if image is None:
                have = ", ".join(sorted(pyramid))
                raise KeyError(f"image pyramid has no 'prediction_{name}' (has: {have})")
            feature_maps, prediction_map = disc(image, kp)
            out[f"feature_maps_{name}"] = feature_maps
            out[f"prediction_map_{name}"] = prediction_map
        return out
