"""The two appearance × depth attention blocks: DaGAN++'s :class:`CrossModalAttention` and the official
CVPR-2022 DaGAN's :class:`DaganAttention`.

**DaGAN++** (GMG, paper §III-C eq. 9). At generation level i, with warped, occlusion-masked appearance
features F^w_i and source-depth features F^d_i (both B×C×H×W):

    Q = W_q F^w_i,   K = W_k F^d_i,   V = W_v F^d_i          (1×1 convs; Q, K: C/r channels, V: C)
    F^en_i = γ · softmax(Q Kᵀ · s) V + F^w_i                 (s = 1/√(C/r), or 1 for the unscaled form)

The query is the *appearance* and key/value are the *depth* features, as the paper writes it.

Scalability at fine scales: global attention at 256² positions would be a
65,536 × 65,536 score matrix per sample. We never materialise it: the product goes through
``torch.nn.functional.scaled_dot_product_attention`` (fused / tiled kernels), and in ``mode="pool"`` the
depth features are average-pooled spatially — by the smallest integer factor that brings the key count to
≤ ``max_tokens`` — before K and V are projected. Every query still attends over the *whole* face (global
context is kept, at a coarser resolution of the depth features), queries stay at full resolution, and the
cost is O(N · max_tokens) instead of O(N²). ``mode="exact"`` keeps all key positions (for large GPUs).
Pooling before the 1×1 projections equals pooling after them (a 1×1 conv is affine per pixel), and is cheaper.

**The key budget: 256 tokens (a 16×16 grid) per level.** The cost of level i is N_i queries × M_i keys ×
(C_i/r + C_i) multiply-adds (scores, then the weighted sum of values; on a CPU the scores cost N_i·M_i·C_i
too, since Q and K are zero-padded to C_i for the fused kernel). At 256² (C = 64, 128, 256, 512) a budget of
4,096 keys gives M = 4096, 4096, 4096, 1024: 17.2 + 8.6 + 4.3 + 0.5 = 30.6 G multiply-adds for the values
alone, 84 % of it at the two finest levels, whose queries are the most numerous — 44–60 % of a DaGAN++
frame on a 2-core CPU, and 2.1–2.9× DaGAN's time per frame. With 256 keys at every level it is
1.1 + 0.5 + 0.3 + 0.1 = 2.0 G (15× less), the attention of a 256² frame takes ~40 ms instead of ~650, and
DaGAN++ runs at 1.4× DaGAN's time per frame at 256² (1.35–1.46 over three repeats) and at about DaGAN's
speed at 512² (1.03×; there DaGAN's one block is exact global attention over 128² positions).

What the coarser keys give up is small: a face's depth varies slowly, so its features averaged over
16 × 16-pixel cells at 256² (4 × 4 with 4,096 keys) still describe its shape; every query still sees the
whole face at full resolution, and the appearance detail reaches the decoder through the residual F^w_i.
An equal-budget ablation measured it (``scripts/attention_ablation.sh``). It trained the 64² demo stage for
1,200 steps per run, with the same data, two seeds per arm, and the old budget, which at 64² means exact
attention at every level. Means over the seeds, old → new:

- held-out self-reconstruction: L1 0.0588 → 0.0599, LPIPS 0.165 → 0.136; both within the seed-to-seed spread
  (0.005 and 0.13);
- depth of the generated frames: relative-structure error 0.926 → 0.929, AbsRel 0.137 → 0.134; no change;
- synthetic cross-identity reconstruction: L1 0.0648 → 0.0682, LPIPS 0.083 → 0.089, PSNR 20.35 → 19.85 dB.
  This is a small cost, on the order of the seed-to-seed spread (0.006, 0.007, 0.41 dB), but it shows in
  both seeds.

We take that cost for a 2× faster flagship on a CPU. At 64² the ablation tests 4× pooling at the finest level
and 2× at the next; at 256² the new budget pools 16× and 8× where the old one pooled 4× and 2×. On a GPU,
where the attention's cost matters less, ``max_tokens: 4096`` (config ``attention.max_tokens``) gives the old
budget back, and ``mode="exact"`` global attention.

**DaGAN** (Hong et al., CVPR 2022) has one block at the deepest level (64×64 for 256² inputs), in the opposite
direction: the *source depth* features F_d query the warped, occlusion-masked appearance features F_w:

    q = ReLU(W_q F_d),  k = ReLU(W_k F_w),  v = ReLU(W_v F_w)          (1×1 convs, W_q, W_k: C → C/8)
    F_en(i) = γ · Σ_j softmax_j(q_iᵀ k_j) v_j + F_w(i)                 (no 1/√d scaling, γ learned, init 0)

Its N×N attention map is never materialised either (``scaled_dot_product_attention``) and, unlike the
official code, not returned. Parameter names match the official checkpoints (``query_conv`` …).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.config import AttentionParams

AttentionMode = Literal["pool", "exact"]

#: largest score matrix (entries per sample) the ``return_attention`` debug path will build
MAX_DEBUG_ATTENTION_ENTRIES = 1 << 24


def naive_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Reference attention: A = softmax(Q Kᵀ · scale) over keys, out = A V.

    ``q`` B×N×d, ``k`` B×M×d, ``v`` B×M×c. Returns (out B×N×c, A B×N×M). Materialises A: small inputs only.
    """
    attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)
    return torch.matmul(attn, v), attn


def pool_factor(height: int, width: int, max_tokens: int) -> int:
    """Smallest integer f ≥ 1 with ⌈H/f⌉·⌈W/f⌉ ≤ max_tokens (the K/V average-pooling factor)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    f = 1
    while math.ceil(height / f) * math.ceil(width / f) > max_tokens:
        f += 1
    return f


def attention_scale(head_dim: int, scaled: bool) -> float:
    """Logit scale s: 1/√d for the standard form, 1 for the unscaled (DaGAN) form."""
    return 1.0 / math.sqrt(head_dim) if scaled else 1.0


def pads_head_size(q: Tensor) -> bool:
    """Whether :func:`sdpa` zero-pads Q and K to the value width: only in eager CPU runs, where it selects the
    fused kernel. CUDA's memory-efficient kernel takes unequal widths as they are, and an exported graph
    (ONNX Runtime, OpenVINO) has no fused kernel to gain, only the extra score multiply-adds."""
    exporting = torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()
    return q.device.type == "cpu" and not exporting


def sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """softmax(Q Kᵀ · scale) V through ``scaled_dot_product_attention`` (no N×M map is kept).

    ``q`` B×N×d, ``k`` B×M×d, ``v`` B×M×c → B×N×c. When d < c (and :func:`pads_head_size`), Q and K are
    zero-padded to c channels: Q Kᵀ is unchanged, and equal head sizes (and contiguous channels) let PyTorch
    pick its fused (flash) kernel — on CPU the fallback materialises the whole score matrix (≈2.3 GB at
    65,536 × 4,096, ~10× slower).
    """
    d, c = q.shape[-1], v.shape[-1]
    if d < c and pads_head_size(q):
        q = F.pad(q, (0, c - d))
        k = F.pad(k, (0, c - d))
    # The fused kernels also need a unit stride on the channel axis (our inputs come from a transpose).
    q, k, v = (t.contiguous().unsqueeze(1) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.squeeze(1)


class CrossModalAttention(nn.Module):
    """F^en = γ · softmax(W_q F^w · (W_k F^d)ᵀ · s) · W_v F^d + F^w (see the module docstring).

    ``gamma`` is a learned scalar initialised to 1, so at initialisation the block is exactly the paper's
    formula (which has no gain) and every projection receives gradient from the first step (a SAGAN-style
    γ = 0 start would leave W_q, W_k, W_v without gradient until γ moves); training can still turn the
    depth branch down where it does not help.

    Source-only work is split out for inference: :meth:`project_keys_values` runs once per source image,
    :meth:`attend` once per driving frame.
    """

    def __init__(
        self,
        channels: int,
        depth_channels: int | None = None,
        qk_reduction: int = 8,
        max_tokens: int = AttentionParams.max_tokens,
        mode: AttentionMode = "pool",
        scaled: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("pool", "exact"):
            raise ValueError(f"attention mode must be 'pool' or 'exact', got {mode!r}")
        if qk_reduction < 1 or max_tokens < 1:
            raise ValueError("attention qk_reduction and max_tokens must be >= 1")
        depth_channels = channels if depth_channels is None else depth_channels
        self.channels = channels
        self.qk_channels = max(1, channels // qk_reduction)
        self.max_tokens = max_tokens
        self.mode = mode
        self.scaled = scaled
        self.scale = attention_scale(self.qk_channels, scaled)
        self.query = nn.Conv2d(channels, self.qk_channels, kernel_size=1)
        self.key = nn.Conv2d(depth_channels, self.qk_channels, kernel_size=1)
        self.value = nn.Conv2d(depth_channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.ones(1))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, max_tokens={self.max_tokens}, scaled={self.scaled}"

    def key_factor(self, height: int, width: int) -> int:
        """Spatial pooling factor applied to depth features of size H×W (1 = no reduction)."""
        return pool_factor(height, width, self.max_tokens) if self.mode == "pool" else 1

    def project_keys_values(self, depth_features: Tensor) -> tuple[Tensor, Tensor]:
        """Depth features B×C_d×H×W → keys B×M×(C/r), values B×M×C (M ≤ max_tokens in pool mode)."""
        f = self.key_factor(*depth_features.shape[-2:])
        if f > 1:
            # ceil_mode keeps the border pixels; partial windows average over the pixels they contain.
            depth_features = F.avg_pool2d(depth_features, kernel_size=f, stride=f, ceil_mode=True)
        k = self.key(depth_features).flatten(2).transpose(1, 2)
        v = self.value(depth_features).flatten(2).transpose(1, 2)
        return k, v

    @overload
    def attend(
        self, warped_features: Tensor, k: Tensor, v: Tensor, return_attention: Literal[False] = False
    ) -> Tensor: ...

    @overload
    def attend(
        self, warped_features: Tensor, k: Tensor, v: Tensor, return_attention: Literal[True]
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def attend(
        self, warped_features: Tensor, k: Tensor, v: Tensor, return_attention: bool
    ) -> Tensor | tuple[Tensor, Tensor]: ...

    def attend(
        self, warped_features: Tensor, k: Tensor, v: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Queries from ``warped_features`` (B×C×H×W) attend to cached keys/values → B×C×H×W.

        With ``return_attention=True`` (debugging, small inputs only) the map is computed naively and
        returned as well: (out, A) with A B×(H·W)×M, rows summing to 1.
        """
        b, c, h, w = warped_features.shape
        q = self.query(warped_features).flatten(2).transpose(1, 2)
        if return_attention:
            n, m = q.shape[1], k.shape[1]
            if n * m > MAX_DEBUG_ATTENTION_ENTRIES:
                raise ValueError(f"return_attention would build a {n}x{m} map; use it on small inputs only")
            out, attn = naive_attention(q, k.to(q.dtype), v.to(q.dtype), self.scale)
        else:
            out, attn = sdpa(q, k.to(q.dtype), v.to(q.dtype), self.scale), None
        out = self.gamma.to(out.dtype) * out.transpose(1, 2).reshape(b, c, h, w) + warped_features
        return out if attn is None else (out, attn)

    def forward(
        self, warped_features: Tensor, depth_features: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        k, v = self.project_keys_values(depth_features)
        return self.attend(warped_features, k, v, return_attention=return_attention)


def to_tokens(x: Tensor) -> Tensor:
    """B×C×H×W → B×1×(H·W)×C (one attention head, tokens in row-major pixel order)."""
    return x.flatten(2).transpose(1, 2).unsqueeze(1)


class DaganAttention(nn.Module):
    """The official DaGAN single-head attention block: query from depth features, key/value from appearance."""

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
        """γ · softmax(q kᵀ) v + F_w, k and v from ``features`` (B×C×H×W), q from :meth:`project_query`
        (batch B, or 1 for a cached source query: it is viewed as batch B)."""
        b, c, h, w = features.shape
        key = to_tokens(F.relu(self.key_conv(features)))
        value = to_tokens(F.relu(self.value_conv(features)))
        if query.shape[0] != b:  # only then: an always-traced expand breaks the ONNX export of the decode graph
            query = query.expand(b, *query.shape[1:])
        # through :func:`sdpa`: on a CPU, q and k zero-padded to C channels select the fused kernel (q·k exact)
        out = sdpa(query.squeeze(1).to(value.dtype), key.squeeze(1), value.squeeze(1), scale=1.0)
        out = out.transpose(1, 2).reshape(b, c, h, w)
        return self.gamma.to(out.dtype) * out + features

    def forward(self, depth_features: Tensor, features: Tensor) -> Tensor:
        return self.attend(self.project_query(depth_features), features)
