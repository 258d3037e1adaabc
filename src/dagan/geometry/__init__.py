"""Pure geometry functions: coordinate grids, warping, keypoint Gaussians, Taylor motions, cameras,
random affine + TPS transforms."""

from dagan.geometry.grids import (
    keypoint_gaussians,
    make_coordinate_grid,
    resize_deformation,
    taylor_sparse_motions,
    warp,
)

__all__ = [
    "keypoint_gaussians",
    "make_coordinate_grid",
    "resize_deformation",
    "taylor_sparse_motions",
    "warp",
]
