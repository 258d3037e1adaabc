"""Uncertainty-guided photometric loss of FDN++ and the complete self-supervised depth objective.

The paper (eq. (7)) writes L_depth = λ1·M_a·U·L_pe + λ2·L_D + λ3·log U with U = sigmoid(·) ∈ (0, 1).
Taken literally this objective is degenerate: both U·L_pe (L_pe ≥ 0) and log U decrease as U → 0, so the
network minimises it by driving every pixel's uncertainty to 0, which switches the photometric term off.
The intent stated in the text is that reliable rigid pixels get *small* uncertainty and therefore *large*
weight. We therefore use a heteroscedastic (Kendall & Gal style) form, which has a finite optimum per pixel:

    ℓ(p) = M_a(p) · [ λ1·L_pe(p) / (U(p) + ε) + λ3·log(U(p) + ε) ]

Per pixel, ∂ℓ/∂U = −λ1·e/(U+ε)² + λ3/(U+ε) = 0 gives the finite optimum U* = λ1·e/λ3 − ε (a minimum: the
second derivative there is λ3³/(λ1·e)² > 0), clipped to the sigmoid's range. Pixels the photometric model
explains badly (non-rigid motion, occlusion) get a large U and hence a small weight, the log term stops U
from growing without bound, and ε (default 0.01, about the noise level of 8-bit video in L_pe units) caps the
weight of already well-explained pixels at 1/ε. Masked-out pixels (auto-mask) contribute nothing, so their U
receives no gradient instead of collapsing to 0 under the log term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dagan.config import DepthTrainParams
from dagan.losses.photometric import min_reprojection_error
from dagan.losses.smoothness import edge_aware_smoothness

__all__ = [
    "UNCERTAINTY_EPS",
    "depth_loss",
    "fdn_photometric_loss",
    "masked_mean",
    "optimal_uncertainty",
    "uncertainty_weighted_loss",
]

UNCERTAINTY_EPS = 1e-2


def masked_mean(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Σ M·x / max(Σ M, 1) over all elements (the plain mean when ``mask`` is None); a scalar."""
    if mask is None:
        return x.mean()
    mask = mask.to(x.dtype).expand_as(x)
    return (mask * x).sum() / mask.sum().clamp(min=1.0)


def _check_uncertainty(error: Tensor, uncertainty: Tensor) -> None:
    if uncertainty.shape != error.shape:
        raise ValueError(
            f"uncertainty map {tuple(uncertainty.shape)} must match the error map {tuple(error.shape)}"
        )


def uncertainty_weighted_loss(
    error: Tensor,
    uncertainty: Tensor,
    mask: Tensor | None = None,
    reg_weight: float = 1.0,
    eps: float = UNCERTAINTY_EPS,
    reduction: str = "mean",
) -> Tensor:
    """Heteroscedastic photometric loss ℓ = M·[e/(U + ε) + λ·log(U + ε)] (our form of paper eq. (7)).

    ``error`` e and ``uncertainty`` U (∈ (0, 1), from a sigmoid) are B×1×H×W, ``mask`` M (e.g. the auto-mask)
    broadcastable to them, λ = ``reg_weight``. ``reduction='mean'`` returns the masked mean (a scalar),
    ``'none'`` the per-pixel map M·ℓ. See the module docstring for why the paper's literal M·U·e + λ·log U
    is not used; the per-pixel minimiser is :func:`optimal_uncertainty`.
    """
    _check_uncertainty(error, uncertainty)
    u = uncertainty + eps
    per_pixel = error / u + reg_weight * torch.log(u)
    if reduction == "none":
        return per_pixel if mask is None else per_pixel * mask.to(per_pixel.dtype)
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return masked_mean(per_pixel, mask)


def optimal_uncertainty(
    error: Tensor, reg_weight: float = 1.0, eps: float = UNCERTAINTY_EPS, photometric_weight: float = 1.0
) -> Tensor:
    """Closed-form per-pixel minimiser of w·e/(U + ε) + λ·log(U + ε) over U ∈ [0, 1].

    Setting the derivative −w·e/(U+ε)² + λ/(U+ε) to zero gives U* = w·e/λ − ε; the loss decreases before
    U* and increases after it, so outside [0, 1] the optimum is the nearer end: U* = clip(w·e/λ − ε, 0, 1).
    It grows linearly with the error.
    """
    if reg_weight <= 0:
        raise ValueError(f"the uncertainty regulariser weight must be positive, got {reg_weight}")
    return (photometric_weight * error / reg_weight - eps).clamp(0.0, 1.0)


def fdn_photometric_loss(
    error: Tensor,
    mask: Tensor | None = None,
    uncertainty: Tensor | None = None,
    photometric_weight: float = 1.0,
    reg_weight: float = 1.0,
    eps: float = UNCERTAINTY_EPS,
) -> tuple[Tensor, Tensor]:
    """Photometric term and uncertainty regulariser, both masked means over the auto-mask M.

    FDN (``uncertainty=None``): (λ1·mean_M(e), 0). FDN++: (λ1·mean_M(e/(U+ε)), λ3·mean_M(log(U+ε))),
    whose sum is λ1 × :func:`uncertainty_weighted_loss` with λ = λ3/λ1. ``reg_weight`` is λ3.
    """
    if uncertainty is None:
        return photometric_weight * masked_mean(error, mask), error.new_zeros(())
    _check_uncertainty(error, uncertainty)
    u = uncertainty + eps
    return (
        photometric_weight * masked_mean(error / u, mask),
        reg_weight * masked_mean(torch.log(u), mask),
    )


def depth_loss(
    target: Tensor,
    warped: Tensor | Sequence[Tensor],
    sources: Tensor | Sequence[Tensor] | None,
    disparity: Tensor,
    uncertainty: Tensor | None = None,
    params: DepthTrainParams | None = None,
    *,
    valid_mask: Tensor | None = None,
    eps: float = UNCERTAINTY_EPS,
) -> dict[str, Tensor]:
    """Self-supervised depth objective of FDN++ (``uncertainty`` given) or FDN (``uncertainty=None``).

    Inputs (images in [0, 1]):
      * ``target``      B×3×H×W, the target frame I^i;
      * ``warped``      its reconstruction(s) Î^i from the source frame(s) (:func:`inverse_warp`), B×3×H×W
        or a list, one per source frame (the error is the per-pixel minimum over sources);
      * ``sources``     the un-warped source frame(s) I^{i+1} in the same order, for the auto-mask identity
        error (may be None when ``params.automask`` is False);
      * ``disparity``   B×1×h×w sigmoid disparity of the target (smoothness; the target is resized to h×w
        if needed);
      * ``uncertainty`` B×1×H×W in (0, 1), or None for FDN;
      * ``params``      :class:`~dagan.config.DepthTrainParams` (``ssim_alpha``, ``automask``,
        ``photometric_weight`` λ1, ``smoothness_weight`` λ2, ``uncertainty_weight`` λ3);
      * ``valid_mask``  optional B×1×H×W (e.g. the in-view mask of :func:`inverse_warp`), multiplied into M.

    Returns weighted terms with ``total = photometric + smoothness + uncertainty_reg``:
      photometric = λ1·mean_M(e/(U+ε)) (FDN: λ1·mean_M(e)), smoothness = λ2·L_D,
      uncertainty_reg = λ3·mean_M(log(U+ε)) (FDN: 0); plus detached diagnostics ``photometric_error``
      (mean_M(e), comparable between FDN and FDN++) and ``automask_fraction`` (mean of M).
    For several decoder scales call this once per scale (with the disparity upsampled for warping, as in
    Monodepth2) and average.
    """
    p = params if params is not None else DepthTrainParams()
    error, mask = min_reprojection_error(target, warped, sources, p.ssim_alpha, p.automask)
    if valid_mask is not None:
        mask = mask * valid_mask.to(mask.dtype).detach()
    photometric, reg = fdn_photometric_loss(
        error, mask, uncertainty, p.photometric_weight, p.uncertainty_weight, eps
    )
    image = target
    if image.shape[-2:] != disparity.shape[-2:]:
        image = F.interpolate(
            image, size=disparity.shape[-2:], mode="bilinear", align_corners=False, antialias=True
        )
    smooth = p.smoothness_weight * edge_aware_smoothness(disparity, image)
    return {
        "photometric": photometric,
        "smoothness": smooth,
        "uncertainty_reg": reg,
        "total": photometric + smooth + reg,
        "photometric_error": masked_mean(error, mask).detach(),
        "automask_fraction": mask.mean().detach(),
    }
