"""Coordinate grids, warping, keypoint heat-maps and first-order (Taylor) motions.

Conventions (shared with FOMM / DaGAN): images are B×C×H×W; coordinates live in [-1, 1]² with the last
dimension ordered (x, y); grids are built *corner-aligned* (pixel i ↦ 2·i/(n−1) − 1). ``grid_sample``
takes an explicit ``align_corners`` – the official models use ``False`` on these corner-aligned grids
(a half-pixel mismatch inherited from FOMM that their weights were trained with).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def make_coordinate_grid(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Corner-aligned grid of shape (H, W, 2) with ``grid[i, j] = (2j/(W−1) − 1, 2i/(H−1) − 1)``."""
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    yy = y.view(-1, 1).expand(height, width)
    xx = x.view(1, -1).expand(height, width)
    return torch.stack([xx, yy], dim=-1)


def warp(image: Tensor, grid: Tensor, align_corners: bool = False, mode: str = "bilinear") -> Tensor:
    """Backward warp: ``out[b, :, i, j] = image[b, :, grid[b, i, j]]`` (bilinear, zero padding).

    ``grid`` is B×h×w×2 in [-1, 1] (x, y). When its size differs from the image's, the *grid* decides
    the output size, as ``grid_sample`` does.
    """
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode="zeros", align_corners=align_corners)


def resize_deformation(deformation: Tensor, height: int, width: int) -> Tensor:
    """Resize a B×h×w×2 deformation to B×H×W×2 (bilinear, align_corners=False); a no-op when sizes match."""
    if deformation.shape[1] == height and deformation.shape[2] == width:
        return deformation
    d = deformation.permute(0, 3, 1, 2)
    d = F.interpolate(d, size=(height, width), mode="bilinear", align_corners=False)
    return d.permute(0, 2, 3, 1)


def keypoint_gaussians(kp: Tensor, height: int, width: int, variance: float = 0.01) -> Tensor:
    """Isotropic Gaussians at keypoints: G_k(z) = exp(−½‖z − x_k‖² / variance).

    ``kp`` is B×K×2 in [-1, 1]; returns B×K×H×W on the corner-aligned grid.
    """
    grid = make_coordinate_grid(height, width, kp.dtype, kp.device)  # H×W×2
    diff = grid.view(1, 1, height, width, 2) - kp.view(*kp.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def taylor_sparse_motions(
    grid: Tensor, kp_source: Tensor, kp_driving: Tensor, jac_source: Tensor | None, jac_driving: Tensor | None
) -> Tensor:
    """First-order motions T_k(z) = x_k^S + J_k^S (J_k^D)^{-1} (z − x_k^D) (FOMM eq. 4).

    ``grid`` is H×W×2, keypoints B×K×2, Jacobians B×K×2×2 (or None for zeroth order).
    Returns B×K×H×W×2.
    """
    h, w = grid.shape[:2]
    b, k = kp_driving.shape[:2]
    z = grid.view(1, 1, h, w, 2) - kp_driving.view(b, k, 1, 1, 2)
    if jac_source is not None and jac_driving is not None:
        jac = torch.matmul(jac_source, torch.inverse(jac_driving))  # B×K×2×2
        z = torch.matmul(jac.view(b, k, 1, 1, 2, 2), z.unsqueeze(-1)).squeeze(-1)
    return z + kp_source.view(b, k, 1, 1, 2)
