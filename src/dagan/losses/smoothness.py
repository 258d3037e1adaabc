"""Edge-aware disparity smoothness (DaGAN++ eq. (6), in Monodepth2's mean-normalised form)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["edge_aware_smoothness"]


def edge_aware_smoothness(disp: Tensor, image: Tensor) -> Tensor:
    """L_D = mean |∂x d*|·exp(−mean_c |∂x I|) + mean |∂y d*|·exp(−mean_c |∂y I|), a scalar.

    d* = d / mean(d) is the disparity (B×1×H×W) divided by its per-image spatial mean, which makes the term
    invariant to the scale of the disparity (otherwise shrinking all disparities would trivially lower it).
    ∂ are forward differences; ``image`` is B×C×H×W at the disparity's resolution, and image edges relax the
    penalty so depth discontinuities may follow them. Monodepth2 further divides by 2^scale for coarser
    scales — left to the caller.
    """
    if disp.dim() != 4 or disp.shape[1] != 1:
        raise ValueError(f"disparity must be B×1×H×W, got shape {tuple(disp.shape)}")
    if image.shape[0] != disp.shape[0] or image.shape[-2:] != disp.shape[-2:]:
        raise ValueError(
            f"image {tuple(image.shape)} does not match disparity {tuple(disp.shape)} in batch or size"
        )
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs()
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()
