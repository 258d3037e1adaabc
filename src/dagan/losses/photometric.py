"""Photometric reconstruction error and the auto-mask for self-supervised depth (DaGAN++ eq. (5)).

All maps are B×C×H×W images in [0, 1]; errors are B×1×H×W (lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["automask", "min_reprojection_error", "photometric_error", "ssim_map"]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def ssim_map(x: Tensor, y: Tensor, c1: float = SSIM_C1, c2: float = SSIM_C2) -> Tensor:
    """Per-pixel, per-channel SSIM (Wang et al. 2004) over 3×3 windows; returns B×C×H×W values in [−1, 1].

    SSIM = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)), with μ, σ², σ_xy the
    unweighted (population) mean, variance and covariance in the 3×3 window around each pixel; the image
    is reflection-padded by one pixel (mirror without repeating the edge) so the output keeps its size.
    C1 = (0.01·L)², C2 = (0.03·L)² with data range L = 1. This returns SSIM itself, not a loss:
    :func:`photometric_error` uses the dissimilarity (1 − SSIM)/2 ∈ [0, 1]. Half-precision inputs are
    computed (and returned) in float32.
    """
    if x.shape != y.shape:
        raise ValueError(f"SSIM inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):  # variances by E[x²] − E[x]² cancel badly in half
        x, y = x.float(), y.float()
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    var_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    var_y = F.avg_pool2d(y * y, 3, 1) - mu_y * mu_y
    cov_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def photometric_error(pred: Tensor, target: Tensor, alpha: float = 0.8) -> Tensor:
    """L_pe = α·(1 − SSIM)/2 + (1 − α)·|pred − target|, averaged over channels → B×1×H×W (paper eq. (5)).

    The SSIM dissimilarity is halved (and clamped to [0, 1]) as in Monodepth2, so both terms live in [0, 1];
    the paper's α = 0.8.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ssim alpha must lie in [0, 1], got {alpha}")
    l1 = (pred - target).abs().mean(1, keepdim=True)
    if alpha == 0.0:
        return l1
    dssim = ((1 - ssim_map(pred, target)) / 2).clamp(0, 1).mean(1, keepdim=True)
    return alpha * dssim + (1 - alpha) * l1


def automask(error_warped: Tensor, error_identity: Tensor) -> Tensor:
    """Monodepth2 auto-mask M_a: 1 where the warped error is *strictly* lower than the un-warped error.

    Pixels that the un-warped source already explains at least as well as the warped one — the static
    background of a fixed camera, objects moving with the camera, texture-less regions — are ignored (0).
    Ties count as static: instead of Monodepth2's random tie-breaking noise this rule is deterministic, so a
    pixel whose identity error is exactly 0 is always masked out. Returns a float mask without gradient.
    """
    return (error_warped < error_identity).to(error_warped.dtype).detach()


def _as_list(x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


def min_reprojection_error(
    target: Tensor,
    warped: Tensor | Sequence[Tensor],
    sources: Tensor | Sequence[Tensor] | None = None,
    alpha: float = 0.8,
    use_automask: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-pixel photometric error of the best reconstruction, and the auto-mask.

    e(p) = min_s L_pe(Î_s(p), I(p)) over the reconstructions ``warped`` (one per source frame; the paper
    uses one, Monodepth2 the minimum over several). When ``use_automask`` the un-warped ``sources`` (same
    order) give the identity errors and M_a = [e < min_s L_pe(I_s, I)]; otherwise M_a = 1.
    Returns ``(error B×1×H×W, mask B×1×H×W)``.
    """
    warped_list = _as_list(warped)
    if not warped_list:
        raise ValueError("need at least one warped source image")
    err = torch.stack([photometric_error(w, target, alpha) for w in warped_list]).amin(0)
    if not use_automask:
        return err, torch.ones_like(err).detach()
    if sources is None:
        raise ValueError("the auto-mask needs the un-warped source frames")
    source_list = _as_list(sources)
    if len(source_list) != len(warped_list):
        raise ValueError(f"got {len(warped_list)} warped images but {len(source_list)} source frames")
    with torch.no_grad():
        identity = torch.stack([photometric_error(s, target, alpha) for s in source_list]).amin(0)
    return err, automask(err, identity)
