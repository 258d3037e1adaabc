"""The official DaGAN generator with a SPADE decoder (``dagan-spade``).

Same encoders, warping, occlusion and depth-query attention as :class:`~.dagan.DepthAwareGenerator`; the
FOMM decoder is replaced by a SPADE decoder (Park et al., "Semantic Image Synthesis with
Spatially-Adaptive Normalization", CVPR 2019) conditioned on a 7-channel "segmentation map"

    L = nearest_up(compress(F_en)) ⊕ (warp(S, T) ⊙ bilinear_up(M))        (4 + 3 channels, image size)

    x = fc(F_en) → G_middle_{0,1,2} → ×2 → up_0 → ×2 → up_1 → conv_img(LeakyReLU_0.2(x)) → sigmoid.

SPADE normalisation: SPADE(x, L) = IN(x) · (1 + γ(L)) + β(L), with a parameter-free instance norm,
a = ReLU(conv3×3(L↓)) (``mlp_shared.0``, 128 channels), γ = conv3×3(a), β = conv3×3(a), where L↓ is L
resized to x's size with nearest interpolation. SPADE residual block (fin → fout, f_mid = min(fin, fout)):

    out = s(x) + conv_1(φ(norm_1(conv_0(φ(norm_0(x, L))), L))),   φ = LeakyReLU(0.2),
    s(x) = conv_s(norm_s(x, L))  (1×1, no bias) when fin ≠ fout, else x,

all three convs spectrally normalised (keys ``weight_orig``/``weight_u``/``weight_v``; in eval mode the
weight is weight_orig/σ with σ = uᵀ(W v) from the *stored* u, v — see :mod:`dagan.models.spectral_norm`).

The parameter layout follows from the official count of 67,545,305 (15 keypoints, 256²): the shared part
(dense motion 37,796,433 + image/depth encoders 752,512 + attention 82,241) leaves 28,914,119 for the
decoder = compress 9,220 + fc 1,180,160 + 3 × G_middle 7,097,344 + up_0 4,877,312 + up_1 1,553,664 +
conv_img 1,731, which holds exactly with 7 label channels, 128 hidden SPADE channels, f_mid = min(fin, fout)
and learned shortcuts (with their own SPADE ``norm_s``) only in ``up_0`` and ``up_1``.

Generalisation beyond the official 256² model (ours, documented): the decoder width is ``2·C`` with C the
encoder's deepest channel count, its number of up blocks is ``num_down_blocks`` (channels halve from 2C,
the last one ends at ``block_expansion``), so 512² configs with one more down block get one more up block.
The occlusion map for the image branch is resized from the dense-motion resolution directly (the official
code resizes the feature-size copy; identical whenever the two sizes agree, as in every released config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.config import DenseMotionParams
from dagan.models.generators.base import Generator, SourceCache, resize_map
from dagan.models.generators.dagan import DepthQueryAttentionMixin
from dagan.models.spectral_norm import apply_spectral_norm

__all__ = ["SPADE", "SPADEDecoder", "SPADEDepthAwareGenerator", "SPADEResnetBlock"]


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: IN(x)·(1 + γ(L)) + β(L), γ and β predicted from the label map L."""

    def __init__(self, norm_channels: int, label_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_channels, affine=False)
        shared = nn.Conv2d(label_channels, hidden, kernel_size=3, padding=1)
        self.mlp_shared = nn.Sequential(shared, nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        label = F.interpolate(label, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(label)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block with spectrally-normalised convs and a learned 1×1 shortcut when fin ≠ fout."""

    def __init__(
        self, fin: int, fout: int, label_channels: int, hidden: int = 128, spectral: bool = True
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=1)
        self.norm_0 = SPADE(fin, label_channels, hidden)
        self.norm_1 = SPADE(fmiddle, label_channels, hidden)
        self.conv_s: nn.Conv2d | None = None
        self.norm_s: SPADE | None = None
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
            self.norm_s = SPADE(fin, label_channels, hidden)
        if spectral:
            apply_spectral_norm(self.conv_0)
            apply_spectral_norm(self.conv_1)
            if self.conv_s is not None:
                apply_spectral_norm(self.conv_s)

    def shortcut(self, x: Tensor, label: Tensor) -> Tensor:
        if self.conv_s is None or self.norm_s is None:
            return x
        return self.conv_s(self.norm_s(x, label))

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label), 0.2))
        return self.shortcut(x, label) + dx


class SPADEDecoder(nn.Module):
    """Attended features (C channels at 1/2^n) + masked warped source image → image in [0, 1]."""

    def __init__(
        self,
        in_channels: int = 256,
        out_channels: int = 64,
        num_up_blocks: int = 2,
        num_middle_blocks: int = 3,
        compress_channels: int = 4,
        image_channels: int = 3,
        hidden: int = 128,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        if num_up_blocks < 1:
            raise ValueError(f"the SPADE decoder needs at least one up block, got {num_up_blocks}")
        label = compress_channels + image_channels
        width = 2 * in_channels
        self.compress = nn.Conv2d(in_channels, compress_channels, kernel_size=3, padding=1)
        self.fc = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        for i in range(num_middle_blocks):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(width, width, label, hidden, spectral))
        for i in range(num_up_blocks):
            fin = width // 2**i
            fout = out_channels if i == num_up_blocks - 1 else width // 2 ** (i + 1)
            self.add_module(f"up_{i}", SPADEResnetBlock(fin, fout, label, hidden, spectral))
        self.conv_img = nn.Conv2d(out_channels, image_channels, kernel_size=3, padding=1)
        self.num_middle_blocks = num_middle_blocks
        self.num_up_blocks = num_up_blocks

    def label_map(self, features: Tensor, masked_image: Tensor) -> Tensor:
        """L = nearest_up(compress(F)) ⊕ masked warped image, at the image's resolution."""
        compressed = F.interpolate(self.compress(features), size=masked_image.shape[2:], mode="nearest")
        return torch.cat([compressed, masked_image], dim=1)

    def forward(self, features: Tensor, masked_image: Tensor) -> Tensor:
        label = self.label_map(features, masked_image)
        x = self.fc(features)
        for i in range(self.num_middle_blocks):
            x = getattr(self, f"G_middle_{i}")(x, label)
        for i in range(self.num_up_blocks):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = getattr(self, f"up_{i}")(x, label)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class SPADEDepthAwareGenerator(DepthQueryAttentionMixin, Generator):
    """``dagan-spade``: the official ``SPADEDepthAwareGenerator`` (67,545,305 parameters, 15 keypoints)."""

    uses_depth = True

    def __init__(
        self,
        num_channels: int = 3,
        num_kp: int = 15,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        estimate_occlusion_map: bool = True,
        dense_motion_params: DenseMotionParams | Mapping[str, Any] | None = None,
        align_corners: bool = False,
        spade_hidden: int = 128,
    ) -> None:
        super().__init__(
            num_channels, num_kp, block_expansion, max_features, num_down_blocks, estimate_occlusion_map,
            dense_motion_params, align_corners,
        )
        self.build_depth_branch()
        # num_bottleneck_blocks does not apply: the official SPADE decoder has three middle blocks.
        self.decoder = SPADEDecoder(
            self.bottleneck_channels,
            block_expansion,
            num_up_blocks=num_down_blocks,
            image_channels=num_channels,
            hidden=spade_hidden,
        )

    def synthesize(self, source_image: Tensor, cache: SourceCache, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # The decoder's label map needs the full-resolution warped source, so it is computed here (and
        # reported as ``deformed`` rather than warped a second time by ``decode``).
        features = self.attended_features(cache, motion)
        deformed = self.deform_image(source_image, motion["deformation"])
        masked = deformed
        if "occlusion_map" in motion:
            masked = masked * resize_map(motion["occlusion_map"], *masked.shape[2:])
        return {"prediction": self.decoder(features, masked), "deformed": deformed}
