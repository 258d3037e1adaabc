"""Pinhole-camera geometry for self-supervised depth learning (DaGAN++ §III-B, eq. (3)–(4)).

Conventions
-----------
* Images and maps are B×C×H×W; every function is batched and takes *per-sample* intrinsics K (B×3×3,
  in pixels) and poses T (B×4×4), because FDN++ learns K for every frame pair.
* Pixel coordinates (u, v) follow OpenCV: the centre of pixel (row i, column j) is at u = j, v = i, so the
  image covers [−0.5, W − 0.5] × [−0.5, H − 0.5].
* Sampling grids are for ``grid_sample(..., align_corners=False)``: x = 2(u + 0.5)/W − 1,
  y = 2(v + 0.5)/H − 1 (−1 and +1 are the outer edges of the border pixels). This differs from the
  corner-aligned grids of :mod:`dagan.geometry.grids`, which serve the reenactment models; depth training
  only ever uses the grids made here, together with ``align_corners=False``.
* ``T_target_to_source`` maps a 3-D point in the target camera's frame to the source camera's frame:
  P_s = R·P_t + t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "axis_angle_to_matrix",
    "backproject",
    "disparity_to_depth",
    "grid_to_pixels",
    "intrinsics_from_normalized",
    "inverse_warp",
    "invert_intrinsics",
    "pixel_coordinates",
    "pixels_to_grid",
    "pose_vector_to_matrix",
    "project",
    "transform_points",
]

# Points closer than this to the camera plane are treated as behind it (and their projection as invalid).
_MIN_Z = 1e-6
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def disparity_to_depth(disp: Tensor, min_depth: float = 0.1, max_depth: float = 100.0) -> Tensor:
    """Sigmoid disparity σ ∈ (0, 1) → depth (Monodepth2 convention).

    depth = 1 / (1/max_depth + (1/min_depth − 1/max_depth)·σ), so σ = 0 ↦ max_depth and σ = 1 ↦ min_depth.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    return 1.0 / (min_disp + (max_disp - min_disp) * disp)


def _skew(v: Tensor) -> Tensor:
    """B×3 → B×3×3 cross-product matrix [v]× with [v]×·w = v × w."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).view(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(axisangle: Tensor) -> Tensor:
    """Rodrigues' formula: rotation vector v = θ·n (B×3) → rotation matrix (B×3×3).

    R = I + (sin θ/θ)·[v]× + ((1 − cos θ)/θ²)·[v]×², with the Taylor series of both coefficients near
    θ = 0 so that R and its gradient stay finite at the identity (where the pose net starts).
    """
    if axisangle.shape[-1] != 3:
        raise ValueError(f"axis-angle vectors must have 3 components, got shape {tuple(axisangle.shape)}")
    theta2 = (axisangle * axisangle).sum(-1, keepdim=True).unsqueeze(-1)  # B×1×1
    small = theta2 < 1e-6
    # clamp keeps sqrt/division finite (and their gradients NaN-free) in the branch that `where` discards
    theta = torch.sqrt(theta2.clamp(min=1e-6))
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta.square())
    k = _skew(axisangle)
    eye = torch.eye(3, dtype=axisangle.dtype, device=axisangle.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def pose_vector_to_matrix(axisangle: Tensor, translation: Tensor, invert: bool = False) -> Tensor:
    """6-DoF pose (axis-angle B×3, translation B×3) → homogeneous transform B×4×4.

    ``invert=False`` gives T = [R | t]; ``invert=True`` gives its exact inverse T⁻¹ = [Rᵀ | −Rᵀ·t]
    (the motion of the reverse frame pair).
    """
    if translation.shape[-1] != 3:
        raise ValueError(f"translations must have 3 components, got shape {tuple(translation.shape)}")
    rot = axis_angle_to_matrix(axisangle)
    t = translation.unsqueeze(-1)  # B×3×1
    if invert:
        rot = rot.transpose(-1, -2)
        t = -rot @ t
    bottom = torch.zeros(*rot.shape[:-2], 1, 4, dtype=rot.dtype, device=rot.device)
    bottom[..., 0, 3] = 1
    return torch.cat([torch.cat([rot, t], dim=-1), bottom], dim=-2)


def intrinsics_from_normalized(focal: Tensor, principal: Tensor, height: int, width: int) -> Tensor:
    """Assemble pixel intrinsics K (B×3×3) from focal lengths and principal point in image-size units.

    ``focal`` = (f_x/W, f_y/H) (the network's softplus output) and ``principal`` = (p_x, p_y) ∈ (0, 1)
    (its sigmoid output, the fraction of the image extent): f_x = W·focal_x, f_y = H·focal_y and, because
    pixel centres sit at integer coordinates, c_x = W·p_x − 0.5, c_y = H·p_y − 0.5 (p = 0.5 is the exact
    image centre). Zero skew.
    """
    if focal.shape[-1] != 2 or principal.shape[-1] != 2:
        raise ValueError(
            f"focal and principal must be B×2, got {tuple(focal.shape)} and {tuple(principal.shape)}"
        )
    fx, fy = focal[..., 0] * width, focal[..., 1] * height
    cx, cy = principal[..., 0] * width - 0.5, principal[..., 1] * height - 0.5
    o, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, o, cx, o, fy, cy, o, o, one], dim=-1).view(*fx.shape, 3, 3)


def invert_intrinsics(K: Tensor) -> Tensor:
    """Closed-form inverse of upper-triangular intrinsics [[f_x, s, c_x], [0, f_y, c_y], [0, 0, 1]].

    K⁻¹ = [[1/f_x, −s/(f_x f_y), (s c_y − c_x f_y)/(f_x f_y)], [0, 1/f_y, −c_y/f_y], [0, 0, 1]].
    """
    fx, s, cx = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    fy, cy = K[..., 1, 1], K[..., 1, 2]
    o, one = torch.zeros_like(fx), torch.ones_like(fx)
    row0 = torch.stack([1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], dim=-1)
    row1 = torch.stack([o, 1 / fy, -cy / fy], dim=-1)
    row2 = torch.stack([o, o, one], dim=-1)
    return torch.stack([row0, row1, row2], dim=-2)


def pixel_coordinates(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Homogeneous pixel coordinates (u, v, 1) of every pixel centre, shape 3×H×W (u = column index)."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=0)


def pixels_to_grid(uv: Tensor, height: int, width: int) -> Tensor:
    """Pixel coordinates (…×2, (u, v)) → ``grid_sample`` coordinates for align_corners=False.

    x = 2(u + 0.5)/W − 1, y = 2(v + 0.5)/H − 1.
    """
    size = torch.tensor([width, height], dtype=uv.dtype, device=uv.device)
    return 2 * (uv + 0.5) / size - 1


def grid_to_pixels(grid: Tensor, height: int, width: int) -> Tensor:
    """Inverse of :func:`pixels_to_grid`: u = (x + 1)·W/2 − 0.5, v = (y + 1)·H/2 − 0.5."""
    size = torch.tensor([width, height], dtype=grid.dtype, device=grid.device)
    return (grid + 1) * size / 2 - 0.5


def backproject(depth: Tensor, inv_K: Tensor) -> Tensor:
    """Lift every pixel to a camera-frame 3-D point: P(p) = D(p)·K⁻¹·(u, v, 1)ᵀ.

    ``depth`` is B×1×H×W, ``inv_K`` B×3×3; returns B×3×H×W.
    """
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be B×1×H×W, got shape {tuple(depth.shape)}")
    b, _, h, w = depth.shape
    pix = pixel_coordinates(h, w, depth.dtype, depth.device).view(1, 3, h * w)
    rays = inv_K.to(depth.dtype) @ pix  # B×3×HW
    return rays.view(b, 3, h, w) * depth


def transform_points(points: Tensor, T: Tensor) -> Tensor:
    """Apply a rigid transform T = [R | t] (B×4×4) to camera points B×3×H×W: P' = R·P + t."""
    b, _, h, w = points.shape
    T = T.to(points.dtype)
    out = T[:, :3, :3] @ points.reshape(b, 3, h * w) + T[:, :3, 3:]
    return out.view(b, 3, h, w)


def _project_to_pixels(points: Tensor, K: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
    """(u, v) pixel coordinates B×H×W×2 and depth z B×1×H×W of K·(R·P + t)."""
    cam = transform_points(points, T)
    z = cam[:, 2:3]
    b, _, h, w = cam.shape
    hom = (K.to(cam.dtype) @ cam.reshape(b, 3, h * w)).view(b, 3, h, w)
    # clamping z keeps the division finite; such points are reported invalid by the caller
    uv = hom[:, :2] / z.clamp(min=_MIN_Z)
    return uv.permute(0, 2, 3, 1), z


def project(points: Tensor, K: Tensor, T: Tensor) -> Tensor:
    """Project camera points into another view: q ~ K·(R·P + t) (paper eq. (3)).

    ``points`` B×3×H×W (from :func:`backproject`), ``K`` B×3×3, ``T`` B×4×4. Returns the sampling grid
    B×H×W×2 in [−1, 1] (x, y) for ``grid_sample(..., align_corners=False)``. Points at or behind the camera
    plane get meaningless coordinates; :func:`inverse_warp` marks them invalid.
    """
    h, w = points.shape[-2:]
    uv, _ = _project_to_pixels(points, K, T)
    return pixels_to_grid(uv, h, w)


def inverse_warp(
    source_image: Tensor,
    target_depth: Tensor,
    T_target_to_source: Tensor,
    K: Tensor,
    padding_mode: str = "border",
) -> tuple[Tensor, Tensor]:
    """Reconstruct the target view from the source image (paper eq. (3)–(4)).

    Every target pixel p is back-projected with its depth, moved into the source camera by
    ``T_target_to_source`` and projected with K; the source image is sampled there bilinearly
    (align_corners=False). The source image may have a different resolution than the depth map as long as
    K refers to the depth map's pixels (the grid is normalised, so it samples the same field of view).

    Returns ``(warped, valid_mask)``: warped B×C×H×W (float32 at least) and a float B×1×H×W mask that is 1
    where the point lies in front of the source camera and projects inside the source image.
    ``padding_mode='border'`` (Monodepth2's choice) keeps out-of-view samples finite and their gradients
    bounded.
    """
    if target_depth.shape[0] != source_image.shape[0]:
        raise ValueError(
            f"batch sizes differ: source image {source_image.shape[0]}, target depth {target_depth.shape[0]}"
        )
    h, w = target_depth.shape[-2:]
    # pixel coordinates need more precision than float16 offers (its step is 0.125 px at u = 256), so the
    # geometry runs in at least float32 and outside autocast
    depth = target_depth.float() if target_depth.dtype in _LOW_PRECISION else target_depth
    with torch.autocast(device_type=depth.device.type, enabled=False):
        K = K.to(depth.dtype)
        points = backproject(depth, invert_intrinsics(K))
        uv, z = _project_to_pixels(points, K, T_target_to_source)
        grid = pixels_to_grid(uv, h, w)
    dtype = torch.promote_types(source_image.dtype, grid.dtype)  # never sample with a half-precision grid
    warped = F.grid_sample(
        source_image.to(dtype),
        grid.to(dtype),
        mode="bilinear",
        padding_mode=padding_mode,
        align_corners=False,
    )
    inside = (grid.abs() <= 1).all(dim=-1).unsqueeze(1)
    valid = (inside & (z > _MIN_Z)).to(dtype)
    return warped, valid
