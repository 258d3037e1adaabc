"""FOMM occlusion-aware generator (the depth-free ``fomm`` baseline) and the parts the DaGAN generators share.

Siarohin et al., "First Order Motion Model for Image Animation" (NeurIPS 2019): encode the source,
warp the features with the dense motion T_{S←D} (resized to the feature size), multiply by the occlusion
map M, decode:

    F_w = M ⊙ warp(E(S), T_{S←D}),        Î = sigmoid(final(up(bottleneck(F_w)))).

All warps use ``grid_sample`` on corner-aligned grids; the official models were trained with
``align_corners=False`` (see :mod:`dagan.geometry.grids`), which is the default here and a constructor
switch for the other variants. Module names follow the FOMM/DaGAN checkpoints (``first``, ``down_blocks``,
``bottleneck.r{i}``, ``up_blocks``, ``final``, ``dense_motion_network``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.config import DenseMotionParams, ModelParams
from dagan.errors import InputError
from dagan.geometry.grids import resize_deformation, warp
from dagan.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from dagan.models.dense_motion import DenseMotionNetwork
from dagan.models.generators.base import Generator, KeypointDict, SourceCache

__all__ = [
    "KeypointWarpingGenerator",
    "OcclusionAwareGenerator",
    "expand_to_batch",
    "feature_channels",
    "resize_map",
]


def feature_channels(block_expansion: int, max_features: int, level: int) -> int:
    """Encoder channels at ``level`` (0 = stem): min(max_features, block_expansion·2^level)."""
    return min(max_features, block_expansion * 2**level)


def make_down_blocks(block_expansion: int, max_features: int, num_down_blocks: int) -> nn.ModuleList:
    """The encoder's 3×3 down blocks, level i → i+1."""
    return nn.ModuleList(
        DownBlock2d(
            feature_channels(block_expansion, max_features, i),
            feature_channels(block_expansion, max_features, i + 1),
        )
        for i in range(num_down_blocks)
    )


def make_up_blocks(block_expansion: int, max_features: int, num_down_blocks: int) -> nn.ModuleList:
    """The decoder's 3×3 up blocks, level n → … → 0 (mirror of :func:`make_down_blocks`)."""
    n = num_down_blocks
    return nn.ModuleList(
        UpBlock2d(
            feature_channels(block_expansion, max_features, n - i),
            feature_channels(block_expansion, max_features, n - i - 1),
        )
        for i in range(n)
    )


def expand_to_batch(tensor: Tensor, batch: int) -> Tensor:
    """View a cached batch-1 tensor as batch ``batch`` (no copy); batches that already match pass through."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] != 1:
        raise InputError(f"source batch {tensor.shape[0]} does not match driving batch {batch} (use 1 or {batch})")
    return tensor.expand(batch, *tensor.shape[1:])


def resize_map(values: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a B×C×h×w map (align_corners=False, as the official code); no-op when sizes match."""
    if values.shape[2] == height and values.shape[3] == width:
        return values
    return F.interpolate(values, size=(height, width), mode="bilinear", align_corners=False)


def _dense_motion_kwargs(params: DenseMotionParams | Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return dataclasses.asdict(DenseMotionParams())
    if isinstance(params, DenseMotionParams):
        return dataclasses.asdict(params)
    return dict(params)


class KeypointWarpingGenerator(Generator):
    """Dense motion network + appearance encoder (``first``, ``down_blocks``): what every variant shares.

    Subclasses add a decoder (and, for DaGAN, a depth encoder and attention) and implement
    :meth:`encode_source` / :meth:`decode`.
    """

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
    ) -> None:
        super().__init__()
        if num_down_blocks < 1:
            raise ValueError(f"num_down_blocks must be >= 1, got {num_down_blocks}")
        self.num_channels = num_channels
        self.num_down_blocks = num_down_blocks
        self.estimate_occlusion_map = estimate_occlusion_map
        self.align_corners = align_corners
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            num_channels=num_channels,
            estimate_occlusion_map=estimate_occlusion_map,
            align_corners=align_corners,
            **_dense_motion_kwargs(dense_motion_params),
        )
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = make_down_blocks(block_expansion, max_features, num_down_blocks)
        #: channels of the deepest (warped) feature map
        self.bottleneck_channels = feature_channels(block_expansion, max_features, num_down_blocks)

    @staticmethod
    def generator_kwargs(model_params: ModelParams) -> dict[str, Any]:
        """Constructor arguments from a typed model config (FOMM schema)."""
        gp, cp = model_params.generator_params, model_params.common_params
        return {
            "num_channels": cp.num_channels,
            "num_kp": cp.num_kp,
            "block_expansion": gp.block_expansion,
            "max_features": gp.max_features,
            "num_down_blocks": gp.num_down_blocks,
            "estimate_occlusion_map": gp.estimate_occlusion_map,
            "dense_motion_params": gp.dense_motion_params,
            "align_corners": model_params.align_corners,
        }

    def encode_appearance(self, source_image: Tensor) -> Tensor:
        """E(S): stem then down blocks → B×C×H/2^n×W/2^n."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        return out

    def motion(
        self, source_image: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> dict[str, Tensor]:
        """Dense motion; the source image and keypoints may have batch 1 against B driving keypoints."""
        batch = kp_driving["value"].shape[0]
        source_image = expand_to_batch(source_image, batch)
        kp_source = {key: expand_to_batch(value, batch) for key, value in kp_source.items()}
        return self.dense_motion_network(source_image, kp_driving, kp_source)

    def warp_features(self, features: Tensor, motion: Mapping[str, Tensor]) -> Tensor:
        """M ⊙ warp(F, T): the deformation is resized to the feature size, the occlusion map bilinearly."""
        h, w = features.shape[2:]
        grid = resize_deformation(motion["deformation"], h, w)
        out = warp(features, grid, align_corners=self.align_corners)
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            out = out * resize_map(occlusion, h, w)
        return out

    def deform_image(self, image: Tensor, deformation: Tensor) -> Tensor:
        """The image warped at its own resolution by the (resized) deformation."""
        h, w = image.shape[2:]
        image = expand_to_batch(image, deformation.shape[0])
        return warp(image, resize_deformation(deformation, h, w), align_corners=self.align_corners)

    def motion_outputs(self, source_image: Tensor, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The output-dict entries every variant reports (see :mod:`dagan.models.generators.base`)."""
        out = {
            "mask": motion["mask"],
            "sparse_deformed": motion["sparse_deformed"],
            "deformation": motion["deformation"],
            "deformed": self.deform_image(source_image, motion["deformation"]),
        }
        if "occlusion_map" in motion:
            out["occlusion_map"] = motion["occlusion_map"]
        return out


class OcclusionAwareGenerator(KeypointWarpingGenerator):
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
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            block = ResBlock2d(self.bottleneck_channels, kernel_size=3, padding=1)
            self.bottleneck.add_module(f"r{i}", block)
        self.up_blocks = make_up_blocks(block_expansion, max_features, num_down_blocks)
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    @classmethod
    def from_config(cls, model_params: ModelParams) -> OcclusionAwareGenerator:
        kwargs = cls.generator_kwargs(model_params)
        kwargs["num_bottleneck_blocks"] = model_params.generator_params.num_bottleneck_blocks
        return cls(**kwargs)

    def decode_features(self, features: Tensor) -> Tensor:
        """bottleneck → up blocks → final 7×7 conv → sigmoid."""
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        return {"features": self.encode_appearance(source_image)}

    def decode(
        self,
        source_image: Tensor,
        cache: SourceCache,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
    ) -> dict[str, Tensor]:
        batch = kp_driving["value"].shape[0]
        motion = self.motion(source_image, kp_driving, kp_source)
        features = self.warp_features(expand_to_batch(cache["features"], batch), motion)
        out = self.motion_outputs(source_image, motion)
        out["prediction"] = self.decode_features(features)
        return out
