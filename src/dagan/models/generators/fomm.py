"""FOMM occlusion-aware generator (the depth-free ``fomm`` baseline), whose decoder ``dagan`` reuses.

Siarohin et al., "First Order Motion Model for Image Animation" (NeurIPS 2019): encode the source,
warp the features with the dense motion T_{S←D} (resized to the feature size), multiply by the occlusion
map M, decode:

    F_w = M ⊙ warp(E(S), T_{S←D}),        Î = sigmoid(final(up(bottleneck(F_w)))).

Encoder, dense motion and warping are the shared skeleton (:mod:`dagan.models.generators.base`). Module
names follow the FOMM/DaGAN checkpoints (``bottleneck.r{i}``, ``up_blocks``, ``final``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from dagan.config import DenseMotionParams
from dagan.models.blocks import make_bottleneck, make_up_blocks
from dagan.models.generators.base import Generator, SourceCache

__all__ = ["OcclusionAwareGenerator"]


class OcclusionAwareGenerator(Generator):
    """The FOMM generator: warped, occlusion-masked features → residual bottleneck → up blocks → 7×7 conv."""

    uses_depth = False

    def __init__(
        self,
        num_channels: int = 3,
        num_kp: int = 15,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        num_bottleneck_blocks: int = 6,
        estimate_occlusion_map: bool = True,
        dense_motion_params: DenseMotionParams | Mapping[str, Any] | None = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__(
            num_channels, num_kp, block_expansion, max_features, num_down_blocks, estimate_occlusion_map,
            dense_motion_params, align_corners,
        )
        self.bottleneck = make_bottleneck(self.bottleneck_channels, num_bottleneck_blocks)
        self.up_blocks = make_up_blocks(self.channels)
        self.final = nn.Conv2d(self.channels[0], num_channels, kernel_size=7, padding=3)

    def decode_features(self, features: Tensor) -> Tensor:
        """bottleneck → up blocks → final 7×7 conv → sigmoid."""
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        return {"features": self.encode_appearance(source_image)[-1]}

    def synthesize(self, source_image: Tensor, cache: SourceCache, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        features = cache["features"]
        assert isinstance(features, Tensor)  # the deepest level only
        return {"prediction": self.decode_features(self.warp_features(features, motion))}
