"""The official CVPR-2022 DaGAN generator (``dagan``): FOMM + a source-depth encoder + one attention block.

Hong et al., "Depth-Aware Generative Adversarial Network for Talking Head Video Generation" (CVPR 2022).
The source disparity σ_S is encoded like the image (``src_first``, ``src_down_blocks``); at the deepest
level (64×64 for 256² inputs) a single attention block lets the *source depth* query the warped,
occlusion-masked appearance features F_w:

    q = ReLU(W_q F_d),  k = ReLU(W_k F_w),  v = ReLU(W_v F_w)          (1×1 convs, W_q, W_k: C → C/8)
    F_en(i) = γ · Σ_j softmax_j(q_iᵀ k_j) v_j + F_w(i)                 (no 1/√d scaling, γ learned, init 0)

then the FOMM decoder (residual bottleneck, up blocks, 7×7 conv, sigmoid). This is the reverse of the
DaGAN++ direction (query = appearance, key/value = depth; see :mod:`dagan.models.attention`). The N×N
attention map is never materialised (``scaled_dot_product_attention``) and, unlike the official code, not
returned. Module and parameter names match the official checkpoints (``AttnModule.query_conv`` …); the
driving depth is accepted and unused, as in the official model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.config import DenseMotionParams
from dagan.models.blocks import SameBlock2d
from dagan.models.generators.base import KeypointDict, SourceCache
from dagan.models.generators.fomm import (
    OcclusionAwareGenerator,
    expand_to_batch,
    make_down_blocks,
)

__all__ = ["DaganAttention", "DepthAwareGenerator", "DepthQueryAttentionMixin"]


def to_tokens(x: Tensor) -> Tensor:
    """B×C×H×W → B×1×(H·W)×C (one attention head, tokens in row-major pixel order)."""
    return x.flatten(2).transpose(1, 2).unsqueeze(1)


class DaganAttention(nn.Module):
    """The official single-head attention block: query from depth features, key/value from appearance."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f"attention needs at least {reduction} channels, got {channels}")
        self.query_conv = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        # γ = 0 at initialisation: the block starts as the identity on the warped features.
        self.gamma = nn.Parameter(torch.zeros(1))

    def project_query(self, depth_features: Tensor) -> Tensor:
        """q = ReLU(W_q F_d) as B×1×N×C/8 tokens — depends on the source only, so it can be cached."""
        return to_tokens(F.relu(self.query_conv(depth_features)))

    def attend(self, query: Tensor, features: Tensor) -> Tensor:
        """γ · softmax(q kᵀ) v + F_w, k and v from ``features`` (B×C×H×W), q from :meth:`project_query`."""
        b, c, h, w = features.shape
        key = to_tokens(F.relu(self.key_conv(features)))
        value = to_tokens(F.relu(self.value_conv(features)))
        out = F.scaled_dot_product_attention(expand_to_batch(query, b).to(value.dtype), key, value, scale=1.0)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return self.gamma * out + features

    def forward(self, depth_features: Tensor, features: Tensor) -> Tensor:
        return self.attend(self.project_query(depth_features), features)


class DepthQueryAttentionMixin:
    """Source-depth encoder + :class:`DaganAttention`, shared by the ``dagan`` and ``dagan-spade`` generators.

    Mixed into a :class:`~dagan.models.generators.fomm.KeypointWarpingGenerator`; the cache holds the
    appearance features and the attention query of the source-depth features.
    """

    src_first: SameBlock2d
    src_down_blocks: nn.ModuleList
    AttnModule: DaganAttention

    def build_depth_branch(self, block_expansion: int, max_features: int, num_down_blocks: int) -> None:
        self.src_first = SameBlock2d(1, block_expansion, kernel_size=7, padding=3)
        self.src_down_blocks = make_down_blocks(block_expansion, max_features, num_down_blocks)
        self.AttnModule = DaganAttention(self.bottleneck_channels)  # type: ignore[attr-defined]

    def encode_depth(self, source_depth: Tensor) -> Tensor:
        """E_d(σ_S): the disparity through the depth stem and down blocks."""
        out = self.src_first(source_depth)
        for block in self.src_down_blocks:
            out = block(out)
        return out

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        if source_depth is None:
            raise ValueError(f"{type(self).__name__} needs the source disparity map (source_depth)")
        if source_depth.shape[1] != 1:
            raise ValueError(f"source_depth must be B×1×H×W, got shape {tuple(source_depth.shape)}")
        return {
            "features": self.encode_appearance(source_image),  # type: ignore[attr-defined]
            "attention_query": self.AttnModule.project_query(self.encode_depth(source_depth)),
        }

    def attended_features(self, cache: SourceCache, motion: Mapping[str, Tensor], batch: int) -> Tensor:
        """Warp + occlusion-mask the cached appearance features, then attend with the cached depth query."""
        features = self.warp_features(expand_to_batch(cache["features"], batch), motion)  # type: ignore[attr-defined]
        return self.AttnModule.attend(cache["attention_query"], features)


class DepthAwareGenerator(DepthQueryAttentionMixin, OcclusionAwareGenerator):
    """``dagan``: the official ``DepthAwareGenerator`` (46,096,917 parameters with 15 keypoints)."""

    uses_depth = True

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
            num_channels, num_kp, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks,
            estimate_occlusion_map, dense_motion_params, align_corners,
        )
        self.build_depth_branch(block_expansion, max_features, num_down_blocks)

    def decode(
        self,
        source_image: Tensor,
        cache: SourceCache,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
    ) -> dict[str, Tensor]:
        batch = kp_driving["value"].shape[0]
        motion = self.motion(source_image, kp_driving, kp_source)
        features = self.attended_features(cache, motion, batch)
        out = self.motion_outputs(source_image, motion)
        out["prediction"] = self.decode_features(features)
        return out
