"""The generator skeleton the four architectures share (``dagan++``, ``dagan``, ``dagan-spade``, ``fomm``).

Every generator animates a source image S (and, for the depth-aware ones, its disparity σ_S) with two
keypoint sets in the same three steps; an architecture supplies only steps 1 and 3:

1. :meth:`Generator.encode_source` — everything that depends on the source alone (appearance features of
   the encoder ``first`` + ``down_blocks``, and the depth branch's attention inputs), once per source;
2. :meth:`Generator.motion` — the FOMM dense motion T_{S←D} and occlusion map M from the keypoints;
3. :meth:`Generator.synthesize` — warp the cached features, F_w = M ⊙ warp(F, T) (:meth:`warp_features`),
   and decode them into the driving-pose image.

:meth:`Generator.predict` returns that image alone (inference, export); :meth:`Generator.decode` adds the
training outputs; ``forward`` = ``encode_source`` + ``decode`` (training). Output dict of ``decode``:
  ``prediction`` B×3×H×W in [0, 1]; ``deformed`` the source image warped by the dense motion (full
  resolution; only ``dagan-spade``'s decoder consumes it, so ``predict`` skips it elsewhere);
  ``deformation`` B×h×w×2; ``occlusion_map`` B×1×h×w (when estimated); ``mask`` and ``sparse_deformed``
  from the dense motion network.

All warps use ``grid_sample`` on corner-aligned grids; the official models were trained with
``align_corners=False`` (see :mod:`dagan.geometry.grids`), the default here. Module names follow the
FOMM/DaGAN checkpoints (``dense_motion_network``, ``first``, ``down_blocks``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from dagan.config import DenseMotionParams
from dagan.errors import InputError
from dagan.geometry.grids import resize_deformation, warp
from dagan.models.blocks import level_channels, make_encoder, run_encoder
from dagan.models.dense_motion import DenseMotionNetwork

KeypointDict = dict[str, Tensor]
SourceCache = dict[str, Tensor | list[Tensor]]

__all__ = ["Generator", "KeypointDict", "SourceCache", "expand_to_batch", "resize_map"]


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


class Generator(nn.Module):
    """Dense motion network + appearance encoder, and the per-frame steps around :meth:`synthesize`.

    The encoder has ``num_down_blocks`` + 1 levels with :attr:`channels` [e, min(m, 2e), …] (e =
    ``block_expansion``, m = ``max_features``; level i at 1/2^i of the input size). Subclasses add the
    depth branch and the decoder and implement :meth:`encode_source` and :meth:`synthesize`.
    """

    #: whether the generator consumes the source disparity (the keypoint detector may still use depth)
    uses_depth: bool = True

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
        #: channels of the encoder levels 0..n (finest first)
        self.channels = level_channels(block_expansion, max_features, num_down_blocks)
        #: channels of the deepest feature map
        self.bottleneck_channels = self.channels[-1]
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            num_channels=num_channels,
            estimate_occlusion_map=estimate_occlusion_map,
            align_corners=align_corners,
            **_dense_motion_kwargs(dense_motion_params),
        )
        self.first, self.down_blocks = make_encoder(num_channels, self.channels)

    # ------------------------------------------------------------------ source-only part
    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        """Everything that depends only on the source image (and its disparity)."""
        raise NotImplementedError

    def encode_appearance(self, source_image: Tensor) -> list[Tensor]:
        """E(S) at every encoder level, finest first (level n: B×C_n×H/2^n×W/2^n)."""
        return run_encoder(source_image, self.first, self.down_blocks)

    # ------------------------------------------------------------------ per driving frame
    def motion(
        self, source_image: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> dict[str, Tensor]:
        """Dense motion; the source image and keypoints may have batch 1 against B driving keypoints."""
        batch = kp_driving["value"].shape[0]
        source_image = expand_to_batch(source_image, batch)
        kp_source = {key: expand_to_batch(value, batch) for key, value in kp_source.items()}
        return self.dense_motion_network(source_image, kp_driving, kp_source)

    def warp_features(self, features: Tensor, motion: Mapping[str, Tensor]) -> Tensor:
        """M ⊙ warp(F, T) for (cached) features of batch 1 or B: the deformation is resized to the feature
        size, the occlusion map bilinearly."""
        features = expand_to_batch(features, motion["deformation"].shape[0])
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

    def synthesize(self, source_image: Tensor, cache: SourceCache, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The driving-pose image (``prediction``) from the cached source encodings and the dense motion,
        plus any :meth:`decode` output the decoder computes on the way (``deformed`` for SPADE)."""
        raise NotImplementedError

    def predict(
        self,
        source_image: Tensor,
        cache: SourceCache,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
    ) -> Tensor:
        """The driving-pose image B×3×H×W only — :meth:`decode`'s ``prediction``, computed by the same
        operations, without the outputs only training uses (inference and export call this)."""
        motion = self.motion(source_image, kp_driving, kp_source)
        return self.synthesize(source_image, cache, motion)["prediction"]

    def decode(
        self,
        source_image: Tensor,
        cache: SourceCache,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
    ) -> dict[str, Tensor]:
        """:meth:`predict` and the training outputs: the dense motion's and the warped source ``deformed``."""
        motion = self.motion(source_image, kp_driving, kp_source)
        out = dict(motion)
        out.update(self.synthesize(source_image, cache, motion))
        if "deformed" not in out:
            out["deformed"] = self.deform_image(source_image, motion["deformation"])
        return out

    def forward(
        self,
        source_image: Tensor,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
        source_depth: Tensor | None = None,
        driving_depth: Tensor | None = None,
    ) -> dict[str, Tensor]:
        # driving_depth is accepted for signature compatibility with the official DaGAN and unused.
        cache = self.encode_source(source_image, source_depth)
        return self.decode(source_image, cache, kp_driving, kp_source)
