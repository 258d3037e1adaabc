"""Keypoint losses: pairwise keypoint distance (DaGAN++ L_D) and FOMM's equivariance constraints.

Keypoint dicts are ``{"value": B×K×2 in [-1, 1] (x, y), "jacobian": B×K×2×2}`` (jacobian optional).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from dagan.geometry.transforms import RandomTransform


def keypoint_distance_loss(kp: Tensor, beta: float = 0.2) -> Tensor:
    """L_D = mean_b Σ_{i≠j} max(0, β − ‖x_i − x_j‖₁) for keypoints ``kp`` of shape B×K×2.

    The paper (and the official DaGAN code) writes Σ_{i≠j} (1 − sign(‖x_i − x_j‖₁ − β)), a step function
    whose gradient is zero almost everywhere, so it never pushes keypoints apart. The hinge has the same
    zero set (every pair at least β apart in L1) and a gradient of magnitude 1 per coordinate on pairs that
    are too close, so it is used instead. Each unordered pair is counted twice (i, j and j, i), as in the
    paper's double sum. Exactly coincident keypoints get torch's zero subgradient of |0|; any offset,
    however small, gives a repelling gradient.
    """
    if kp.dim() != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be B×K×2, got {tuple(kp.shape)}")
    k = kp.shape[1]
    dist = torch.abs(kp.unsqueeze(2) - kp.unsqueeze(1)).sum(-1)  # B×K×K, L1
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=kp.device)
    hinge = torch.relu(beta - dist) * off_diagonal
    return hinge.sum(dim=(1, 2)).mean()


def equivariance_losses(
    kp_driving: Mapping[str, Tensor], kp_transformed: Mapping[str, Tensor], transform: RandomTransform
) -> dict[str, Tensor]:
    """FOMM equivariance losses between the keypoints of D and of D' = D∘T (``transform.transform_frame(D)``).

    A point at x' in D' shows the point T(x') of D, so an equivariant detector satisfies x_D = T(x_{D'}) and,
    differentiating, J_D = ∇T(x_{D'}) · J_{D'}. The losses (unweighted) are

        value    = mean |x_D − T(x_{D'})|
        jacobian = mean |I − J_D⁻¹ · (∇T(x_{D'}) · J_{D'})|     (only when both dicts have "jacobian")

    Gradients flow into both keypoint sets (including through T's Jacobian at x_{D'}).
    """
    x_d, x_t = kp_driving["value"], kp_transformed["value"]
    if x_d.shape != x_t.shape:
        raise ValueError(f"driving keypoints {tuple(x_d.shape)} and transformed {tuple(x_t.shape)} differ")
    losses = {"value": torch.abs(x_d - transform.warp_coordinates(x_t)).mean()}
    if "jacobian" in kp_driving and "jacobian" in kp_transformed:
        j_t = torch.matmul(transform.jacobian(x_t), kp_transformed["jacobian"])
        product = torch.matmul(torch.inverse(kp_driving["jacobian"]), j_t)
        eye = torch.eye(2, dtype=product.dtype, device=product.device)
        losses["jacobian"] = torch.abs(eye - product).mean()
    return losses
