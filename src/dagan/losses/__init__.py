"""Training losses. Depth (FDN / FDN++): photometric error + auto-mask, edge-aware smoothness and the
uncertainty-weighted objective; reenactment losses live in their own modules of this package."""

from dagan.losses.photometric import automask, min_reprojection_error, photometric_error, ssim_map
from dagan.losses.smoothness import edge_aware_smoothness
from dagan.losses.uncertainty import (
    UNCERTAINTY_EPS,
    depth_loss,
    fdn_photometric_loss,
    masked_mean,
    optimal_uncertainty,
    uncertainty_weighted_loss,
)

__all__ = [
    "UNCERTAINTY_EPS",
    "automask",
    "depth_loss",
    "edge_aware_smoothness",
    "fdn_photometric_loss",
    "masked_mean",
    "min_reprojection_error",
    "optimal_uncertainty",
    "photometric_error",
    "ssim_map",
    "uncertainty_weighted_loss",
]
