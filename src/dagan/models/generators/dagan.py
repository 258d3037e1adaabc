"""The official CVPR-2022 DaGAN generator (``dagan``): FOMM + a source-depth encoder + one attention block.

Hong et al., "Depth-Aware Generative Adversarial Network for Talking Head Video Generation" (CVPR 2022).
The source disparity σ_S is encoded like the image (``src_first``, ``src_down_blocks``); at the deepest
level (64×64 for 256² inputs) a single :class:`~dagan.models.attention.DaganAttention` block (``AttnModule``)
lets the *source depth* query the warped, occlusion-masked appearance features F_w, then the FOMM decoder
(residual bottleneck, up blocks, 7×7 conv, sigmoid) renders the image. Module and parameter names match
the official checkpoints; the driving depth is accepted and unused, as in the official model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from dagan.config import DenseMotionParams
from dagan.models.attention import DaganAttention
from dagan.models.blocks import SameBlock2d, make_encoder, run_encoder
from dagan.models.generators.base import SourceCache
from dagan.models.generators.fomm import OcclusionAwareGenerator

__all__ = ["DepthAwareGenerator", "DepthQueryAttentionMixin"]


class DepthQueryAttentionMixin:
    """Source-depth encoder + :class:`DaganAttention`, shared by the ``dagan`` and ``dagan-spade`` generators.

    Mixed into a :class:`~dagan.models.generators.base.Generator`; the cache holds the deepest appearance
    features and the attention query of the source-depth features.
    """

    src_first: SameBlock2d
    src_down_blocks: nn.ModuleList
    AttnModule: DaganAttention
    channels: list[int]

    def build_depth_branch(self) -> None:
        self.src_first, self.src_down_blocks = make_encoder(1, self.channels)
        self.AttnModule = DaganAttention(self.channels[-1])

    def encode_depth(self, source_depth: Tensor) -> Tensor:
        """E_d(σ_S): the disparity through the depth stem and down blocks (deepest level)."""
        return run_encoder(source_depth, self.src_first, self.src_down_blocks)[-1]

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        if source_depth is None:
            raise ValueError(f"{type(self).__name__} needs the source disparity map (source_depth)")
        if source_depth.shape[1] != 1:
            raise ValueError(f"source_depth must be B×1×H×W, got shape {tuple(source_depth.shape)}")
        return {
            "features": self.encode_appearance(source_image)[-1],  # type: ignore[attr-defined]
            "attention_query": self.AttnModule.project_query(self.encode_depth(source_depth)),
        }

    def attended_features(self, cache: SourceCache, motion: Mapping[str, Tensor]) -> Tensor:
        """Warp + occlusion-mask the cached appearance features, then attend with the cached depth query."""
        features, query = cache["features"], cache["attention_query"]
        assert isinstance(features, Tensor) and isinstance(query, Tensor)  # single tensors, not per level
        warped = self.warp_features(features, motion)  # type: ignore[attr-defined]
        return self.AttnModule.attend(query, warped)


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
        self.build_depth_branch()

    def synthesize(self, source_image: Tensor, cache: SourceCache, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"prediction": self.decode_features(self.attended_features(cache, motion))}
