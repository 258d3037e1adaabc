"""DaGAN++ generator: geometry-enhanced multi-layer generation (GMG, paper §III-C and §III-E, Fig. 4/5).

What DaGAN++ adds to the shared skeleton (:mod:`dagan.models.generators.base`): a source-depth encoder,
cross-modal attention at every encoder level (:class:`~dagan.models.attention.CrossModalAttention`) and a
U-Net-like decoder that fuses the attended features of each level as skips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from dagan.config import AttentionParams, DenseMotionParams
from dagan.errors import InputError
from dagan.models.attention import CrossModalAttention
from dagan.models.blocks import SameBlock2d, make_bottleneck, make_encoder, make_up_blocks, run_encoder
from dagan.models.generators.base import Generator, SourceCache, expand_to_batch


def attention_levels(scales: str | list[int], num_down_blocks: int) -> list[int]:
    """Resolve ``attention.scales`` ("all" or level indices, 0 = finest) to a sorted list of levels."""
    if isinstance(scales, str):
        if scales != "all":
            raise ValueError(f"attention scales must be 'all' or a list of levels, got {scales!r}")
        return list(range(num_down_blocks + 1))
    levels = sorted(set(int(s) for s in scales))
    bad = [s for s in levels if not 0 <= s <= num_down_blocks]
    if bad:
        raise ValueError(f"attention scale(s) {bad} outside the encoder levels 0..{num_down_blocks}")
    return levels


class DaganPPGenerator(Generator):
    """The DaGAN++ generator: appearance encoder E_I, depth encoder E_d, FOMM dense motion, cross-modal
    attention at every encoder level, and a U-Net-like decoder that uses the attention outputs as skips.

    Data flow (input H×W, n = ``num_down_blocks``; levels i = 0..n at H/2^i):

    - E_I: ``first`` (7×7 SameBlock, 3→e) + n ``down_blocks`` → F^e_0..F^e_n, channels
      [e, min(m, 2e), …, min(m, 2^n e)] (e = block_expansion, m = max_features).
    - E_d: the same structure (``depth_first``, ``depth_down_blocks``) on the raw source disparity (1 ch);
      built only up to the coarsest level that has attention (deeper depth blocks would get no gradient).
    - ``dense_motion_network`` (RGB only) → deformation T (at 1/4) and occlusion map M.
    - Per level: F^w_i = M↓ · warp(F^e_i, T↓) (T resized bilinearly, M bilinearly);
      F^en_i = ``attention[i]``(F^w_i, F^d_i) at the levels in ``attention.scales`` (default all), else F^w_i.
      ``scales: [2]`` is the paper's "w/o GMG" ablation (one block at 64², like DaGAN).
    - Decoder: ``bottleneck`` (num_bottleneck_blocks pre-activation ResBlocks) on F^en_n; then for each finer
      level i: ``up_blocks`` (×2, C_{i+1}→C_i) → concat F^en_i → ``fuse_blocks`` (3×3 SameBlock, 2C_i→C_i);
      ``final`` 7×7 conv → sigmoid.

    Resolution 256 uses n = 3 (the paper's three down-sampling blocks, four scales); 512 uses n = 4.

    Parameter count (num_kp 15, 256×256, n = 3, e = 64, m = 512, 6 bottleneck blocks): 72,786,376 in total,
    34,989,943 of them outside the dense motion network (37,796,433, the FOMM/DaGAN one; attention 436,404).
    With the keypoint detector (14,262,519) and discriminator (2,774,209) the model has 89,823,104 ≈ 89.8 M
    trainable parameters against the paper's 85.2 M. The paper gives no layer sizes; the ≈ 4.6 M gap is
    about one 512-channel ResBlock (4,721,664), so the paper's middle was probably a little shallower or
    narrower (with 5 bottleneck blocks the total is 85,101,440 ≈ 85.1 M). We keep what the paper describes in
    words (DaGAN's 6 bottleneck blocks, one more down block, channels doubling up to 512) rather than tune
    the architecture to the total. At 512 (n = 4) the generator has 84,917,321 parameters.
    """

    def __init__(
        self,
        num_kp: int,
        num_channels: int = 3,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 3,
        num_bottleneck_blocks: int = 6,
        estimate_occlusion_map: bool = True,
        dense_motion_params: DenseMotionParams | Mapping[str, Any] | None = None,
        attention: AttentionParams | Mapping[str, Any] | None = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__(
            num_channels=num_channels,
            num_kp=num_kp,
            block_expansion=block_expansion,
            max_features=max_features,
            num_down_blocks=num_down_blocks,
            estimate_occlusion_map=estimate_occlusion_map,
            dense_motion_params=dense_motion_params,
            align_corners=align_corners,
        )
        if attention is None:
            attention = AttentionParams()
        elif not isinstance(attention, AttentionParams):
            attention = AttentionParams(**attention)
        self.attention_scales = attention_levels(attention.scales, num_down_blocks)
        self.uses_depth = bool(self.attention_scales)
        if self.uses_depth:
            # built only up to the coarsest attended level: deeper depth blocks would get no gradient
            self.depth_first, self.depth_down_blocks = make_encoder(
                1, self.channels[: max(self.attention_scales) + 1]
            )
        self.attention = nn.ModuleDict(
            {
                str(i): CrossModalAttention(
                    self.channels[i],
                    self.channels[i],
                    qk_reduction=attention.qk_reduction,
                    max_tokens=attention.max_tokens,
                    mode=attention.mode,
                    scaled=attention.scaled,
                )
                for i in self.attention_scales
            }
        )
        self.bottleneck = make_bottleneck(self.bottleneck_channels, num_bottleneck_blocks)
        # up_blocks[j] / fuse_blocks[j] produce level n-1-j (coarse to fine).
        self.up_blocks = make_up_blocks(self.channels)
        finer = reversed(range(num_down_blocks))
        self.fuse_blocks = nn.ModuleList(SameBlock2d(2 * self.channels[i], self.channels[i]) for i in finer)
        self.final = nn.Conv2d(self.channels[0], num_channels, kernel_size=7, padding=3)

    def attention_block(self, level: int) -> CrossModalAttention:
        """The cross-modal attention of encoder level ``level`` (one of :attr:`attention_scales`)."""
        return cast(CrossModalAttention, self.attention[str(level)])

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        """Appearance features (every level) and the attention keys/values of the depth features."""
        size = 2**self.num_down_blocks
        if source_image.shape[-1] % size or source_image.shape[-2] % size:
            raise InputError(f"image size {tuple(source_image.shape[-2:])} must be divisible by {size}")
        keys: list[Tensor] = []
        values: list[Tensor] = []
        cache: SourceCache = {"features": self.encode_appearance(source_image), "keys": keys, "values": values}
        if not self.uses_depth:
            return cache
        if source_depth is None:
            raise InputError("the DaGAN++ generator needs the source disparity map (source_depth)")
        if source_depth.shape[1] != 1 or source_depth.shape[-2:] != source_image.shape[-2:]:
            raise InputError(
                f"source disparity must be B×1×{source_image.shape[-2]}×{source_image.shape[-1]}, "
                f"got {tuple(source_depth.shape)}"
            )
        depth_feats = run_encoder(source_depth.to(source_image.dtype), self.depth_first, self.depth_down_blocks)
        for i in self.attention_scales:
            k, v = self.attention_block(i).project_keys_values(depth_feats[i])
            keys.append(k)
            values.append(v)
        return cache

    def synthesize(self, source_image: Tensor, cache: SourceCache, motion: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Warp every cached level, attend at the attention levels, decode coarse to fine with the skips."""
        batch = motion["deformation"].shape[0]
        kv = dict(zip(self.attention_scales, zip(cache["keys"], cache["values"])))
        enhanced = []
        for i, feats in enumerate(cache["features"]):
            out = self.warp_features(feats, motion)
            if i in kv:
                k, v = kv[i]
                out = self.attention_block(i).attend(out, expand_to_batch(k, batch), expand_to_batch(v, batch))
            enhanced.append(out)

        x = self.bottleneck(enhanced[-1])
        for j, (up, fuse) in enumerate(zip(self.up_blocks, self.fuse_blocks)):
            x = fuse(torch.cat([up(x), enhanced[self.num_down_blocks - 1 - j]], dim=1))
        return {"prediction": torch.sigmoid(self.final(x))}
