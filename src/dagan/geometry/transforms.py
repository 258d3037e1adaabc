"""Random affine + thin-plate-spline (TPS) transforms for the keypoint equivariance losses (FOMM §3.3).

A transform T maps [-1, 1]² to itself:

    T(z) = A z + t + Σ_p w_p · U(‖z − c_p‖²),        U(r²) = r² log r²   (Bookstein's TPS radial basis)

with A = I + N(0, σ_affine) (2×2), t ~ N(0, σ_affine) (2), control points c_p on a corner-aligned
``points_tps × points_tps`` grid and control parameters w_p ~ N(0, σ_tps) ∈ R² — one draw per batch element.
A frame is transformed by *backward* warping, ``frame'(z) = frame(T(z))``, so a point seen at x' in the
transformed frame is the point T(x') of the original frame. That is what the equivariance losses use.

Differences from FOMM's transform, on purpose: FOMM uses the L1 distance in the radial basis, the kernel
r² log r (half of ours) and one scalar control parameter shared by both axes (every TPS displacement points
along the diagonal (1, 1)). Here the basis is the standard Euclidean TPS and each axis has its own
parameter, so the deformation is a genuine 2-D TPS warp. At the paper's σ_tps = 0.005 and 5×5 points the TPS
displacements keep FOMM's scale (standard deviation ≈ 0.07 over the frame here, ≈ 0.08 with FOMM's form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dagan.geometry.grids import make_coordinate_grid


def tps_kernel(r2: Tensor) -> Tensor:
    """TPS radial basis as a function of the *squared* distance: U(r²) = r² · log r², with U(0) = 0.

    The log is taken of ``r2`` clamped away from 0, so U and its gradient stay finite (and 0) at r = 0.
    """
    return r2 * torch.log(r2.clamp_min(torch.finfo(r2.dtype).tiny))


def tps_kernel_grad_factor(r2: Tensor) -> Tensor:
    """dU/d(r²) = log r² + 1, set to 0 at r² = 0 (where the full gradient 2·(z − c)·(log r² + 1) → 0)."""
    safe = r2.clamp_min(torch.finfo(r2.dtype).tiny)
    return torch.where(r2 > 0, torch.log(safe) + 1, torch.zeros_like(r2))


class RandomTransform:
    """A batch of random affine + TPS transforms (see the module docstring for T).

    ``theta`` is B×2×3 ([A | t]); ``control_points`` P×2 and ``control_params`` B×P×2, or both None for a
    purely affine transform. Build random ones with :meth:`sample`.
    """

    def __init__(
        self,
        theta: Tensor,
        control_points: Tensor | None = None,
        control_params: Tensor | None = None,
        align_corners: bool = True,
    ) -> None:
        if theta.dim() != 3 or theta.shape[1:] != (2, 3):
            raise ValueError(f"theta must be B×2×3, got {tuple(theta.shape)}")
        if (control_points is None) != (control_params is None):
            raise ValueError("control_points and control_params must both be given or both be None")
        if control_points is not None and control_params is not None:
            p = control_points.shape[0]
            if control_points.shape != (p, 2) or control_params.shape != (theta.shape[0], p, 2):
                raise ValueError(
                    f"TPS control points must be P×2 and params B×P×2, got {tuple(control_points.shape)} "
                    f"and {tuple(control_params.shape)}"
                )
        self.theta = theta
        self.control_points = control_points
        self.control_params = control_params
        self.align_corners = align_corners

    @classmethod
    def sample(
        cls,
        batch_size: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        align_corners: bool = True,
    ) -> RandomTransform:
        """Draw ``batch_size`` transforms: θ = [I | 0] + N(0, σ_affine), w_p ~ N(0, σ_tps).

        The draws come from ``generator`` (on the CPU, then moved to ``device``) so that runs are repeatable
        whatever the device. ``sigma_tps == 0`` or ``points_tps == 0`` gives affine-only transforms.
        """
        if batch_size < 1 or points_tps < 0 or sigma_affine < 0 or sigma_tps < 0:
            raise ValueError("batch_size must be >= 1 and points_tps, sigma_affine, sigma_tps >= 0")
        noise = torch.randn(batch_size, 2, 3, generator=generator, dtype=dtype) * sigma_affine
        theta = (noise + torch.eye(2, 3, dtype=dtype)).to(device)
        if sigma_tps == 0 or points_tps == 0:
            return cls(theta, align_corners=align_corners)
        if points_tps == 1:
            raise ValueError("points_tps must be >= 2 (a grid of control points) or 0 for no TPS")
        control_points = make_coordinate_grid(points_tps, points_tps, dtype).view(-1, 2).to(device)
        params = torch.randn(batch_size, points_tps**2, 2, generator=generator, dtype=dtype) * sigma_tps
        return cls(theta, control_points, params.to(device), align_corners=align_corners)

    @property
    def batch_size(self) -> int:
        return self.theta.shape[0]

    def _tps_terms(self, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Differences z − c_p (B×N×P×2) and squared distances (B×N×P) for B×N×2 coordinates."""
        assert self.control_points is not None
        diff = coords.unsqueeze(2) - self.control_points.to(coords).view(1, 1, -1, 2)
        return diff, (diff**2).sum(-1)

    def warp_coordinates(self, coords: Tensor) -> Tensor:
        """T(z) for B×N×2 coordinates (x, y) in [-1, 1]; differentiable in ``coords``."""
        self._check_coords(coords)
        theta = self.theta.to(coords)
        out = torch.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, :, 2].unsqueeze(1)
        if self.control_params is not None:
            _, r2 = self._tps_terms(coords)
            out = out + torch.einsum("bnp,bpi->bni", tps_kernel(r2), self.control_params.to(coords))
        return out

    def jacobian(self, coords: Tensor) -> Tensor:
        """∂T/∂z at B×K×2 coordinates → B×K×2×2 with ``J[..., i, j] = ∂T_i/∂z_j`` (analytic).

        J = A + Σ_p w_p ⊗ ∇U_p(z),  ∇U_p(z) = 2·(log r_p² + 1)·(z − c_p). Differentiable in ``coords``
        (the equivariance loss back-propagates through it into the keypoint detector).
        """
        self._check_coords(coords)
        jac = self.theta[:, :, :2].to(coords).unsqueeze(1).expand(-1, coords.shape[1], -1, -1)
        if self.control_params is not None:
            diff, r2 = self._tps_terms(coords)
            grad_u = 2 * tps_kernel_grad_factor(r2).unsqueeze(-1) * diff  # B×N×P×2 (∂U_p/∂z_j)
            jac = jac + torch.einsum("bpi,bnpj->bnij", self.control_params.to(coords), grad_u)
        return jac

    def transform_frame(self, frame: Tensor) -> Tensor:
        """frame'(z) = frame(T(z)) on the corner-aligned grid (bilinear, reflection padding).

        ``align_corners`` (default True, FOMM's equivariance setting) makes grid point ±1 the centre of the
        border pixels, consistent with the corner-aligned keypoint coordinates.
        """
        b, _, h, w = frame.shape
        if b != self.batch_size:
            raise ValueError(f"frame batch {b} does not match the transform batch {self.batch_size}")
        grid = make_coordinate_grid(h, w, frame.dtype, frame.device).view(1, h * w, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(
            frame, grid, mode="bilinear", padding_mode="reflection", align_corners=self.align_corners
        )

    def _check_coords(self, coords: Tensor) -> None:
        if coords.dim() != 3 or coords.shape[-1] != 2 or coords.shape[0] != self.batch_size:
            raise ValueError(
                f"coordinates must be B×N×2 with B = {self.batch_size}, got {tuple(coords.shape)}"
            )
