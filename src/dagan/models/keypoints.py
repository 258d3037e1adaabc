"""Geometry-guided keypoint detector F_kp (DaGAN / DaGAN++; FOMM when depth is off).

The image (optionally ⊕ its raw disparity, 4 channels) is anti-aliased and down-sampled (1/4 by default),
an hourglass produces features, and a 7×7 ``kp`` head gives K logit maps. A softmax with temperature τ over
each flattened map turns them into heat-maps H_k, and

    x_k = Σ_z H_k(z) · z                    (keypoint: expectation of the [-1,1]² grid, (x, y))
    J_k = Σ_z H_k(z) · A_k(z)               (Jacobian: heat-map-weighted sum of 4 maps, row-major 2×2)

where z runs over the corner-aligned grid of the heat-map (z = 2·i/(n−1) − 1). With the official padding 0
the heads shrink the map (64×64 features → 58×58 heat-maps), so the grid spans the *cropped* map — the
official numerics, reproduced here.

Parameter and buffer names match the official DaGAN ``kp_detector`` entries: ``predictor.*`` (hourglass),
``kp.*``, ``jacobian.*`` and the blur buffer ``down.weight``. The blur is depthwise over *all* input channels,
so with depth it is 4×1×13×13 (the official release builds the detector with 4 input channels); it is a
buffer and does not count as a parameter (official count: 14,262,519 for K = 15).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.geometry.grids import make_coordinate_grid
from dagan.models.blocks import AntiAliasInterpolation2d, Hourglass

__all__ = ["KPDetector", "heatmap_softmax", "heatmap_to_jacobians", "heatmap_to_keypoints"]

#: bias of the Jacobian head at initialisation: the identity matrix, row-major
_IDENTITY_JACOBIAN = (1.0, 0.0, 0.0, 1.0)


def heatmap_softmax(logits: Tensor, temperature: float) -> Tensor:
    """H_k(z) = exp(l_k(z)/τ) / Σ_z' exp(l_k(z')/τ), normalised over each B×K map's H·W positions."""
    b, k, h, w = logits.shape
    return F.softmax(logits.reshape(b, k, h * w) / temperature, dim=2).reshape(b, k, h, w)


def heatmap_to_keypoints(heatmap: Tensor) -> Tensor:
    """x_k = Σ_z H_k(z)·z over the corner-aligned grid of the map (z_ij = (2j/(W−1) − 1, 2i/(H−1) − 1)).

    ``heatmap`` is B×K×H×W (normalised per map); returns B×K×2 as (x, y).
    """
    h, w = heatmap.shape[-2:]
    grid = make_coordinate_grid(h, w, heatmap.dtype, heatmap.device)  # H×W×2
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(-3, -2))


def heatmap_to_jacobians(heatmap: Tensor, jacobian_maps: Tensor) -> Tensor:
    """J_k = Σ_z H_k(z)·A_k(z), with A_k the maps 4k … 4k+3 read row-major as a 2×2 matrix.

    ``heatmap`` is B×K×H×W, ``jacobian_maps`` B×4K×H×W; returns B×K×2×2.
    """
    b, k, h, w = heatmap.shape
    maps = jacobian_maps.reshape(b, k, 4, h, w)
    jac = (heatmap.unsqueeze(2) * maps).sum(dim=(-2, -1))
    return jac.reshape(b, k, 2, 2)


class KPDetector(nn.Module):
    """Unsupervised keypoints and local Jacobians from an image and (optionally) its disparity map.

    ``num_channels`` counts the *image* channels; with ``use_depth`` one disparity channel is appended, so
    the hourglass sees ``num_channels + 1`` channels.
    """

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int = 3,
        max_features: int = 1024,
        num_blocks: int = 5,
        temperature: float = 0.1,
        estimate_jacobian: bool = True,
        scale_factor: float = 1.0,
        pad: int = 0,
        use_depth: bool = True,
    ) -> None:
        super().__init__()
        if num_kp < 1:
            raise ValueError(f"num_kp must be positive, got {num_kp}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.num_kp = num_kp
        self.num_channels = num_channels
        self.use_depth = use_depth
        self.temperature = temperature
        self.scale_factor = scale_factor
        in_features = num_channels + (1 if use_depth else 0)
        self.in_features = in_features

        self.predictor = Hourglass(block_expansion, in_features, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.jacobian: nn.Conv2d | None = None
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * num_kp, kernel_size=7, padding=pad)
            self.reset_jacobian()
        # No `down` entry at scale 1, as in the official checkpoints.
        self.down = AntiAliasInterpolation2d(in_features, scale_factor) if scale_factor != 1 else None

    def reset_jacobian(self) -> None:
        """Initialise the Jacobian head to predict the identity everywhere (weight 0, bias [1,0,0,1])."""
        if self.jacobian is None:
            return
        assert self.jacobian.bias is not None  # built with a bias
        with torch.no_grad():
            self.jacobian.weight.zero_()
            self.jacobian.bias.copy_(torch.tensor(_IDENTITY_JACOBIAN * self.num_kp))

    def prepare_input(self, image: Tensor, disparity: Tensor | None) -> Tensor:
        """The detector input: ``image`` ⊕ ``disparity`` with ``use_depth``, else ``image`` alone."""
        if image.dim() != 4 or image.shape[1] != self.num_channels:
            raise ValueError(
                f"keypoint detector expects images of shape B×{self.num_channels}×H×W, "
                f"got {tuple(image.shape)}"
            )
        if not self.use_depth:
            return image
        if disparity is None:
            raise ValueError("keypoint detector was built with use_depth=True but no disparity map was given")
        if disparity.dim() != 4 or disparity.shape[1] != 1 or disparity.shape[-2:] != image.shape[-2:] or (
            disparity.shape[0] != image.shape[0]
        ):
            raise ValueError(
                f"disparity must be B×1×H×W matching the image {tuple(image.shape)}, "
                f"got {tuple(disparity.shape)}"
            )
        return torch.cat([image, disparity.to(image.dtype)], dim=1)

    def forward(
        self, image: Tensor, disparity: Tensor | None = None, return_heatmap: bool = False
    ) -> dict[str, Tensor]:
        """Keypoints ``value`` B×K×2 in [-1,1]² (x, y), ``jacobian`` B×K×2×2 (when estimated),
        and the softmax ``heatmap`` B×K×h×w only when ``return_heatmap``."""
        x = self.prepare_input(image, disparity)
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(x)
        heatmap = heatmap_softmax(self.kp(features), self.temperature)
        out = {"value": heatmap_to_keypoints(heatmap)}
        if self.jacobian is not None:
            out["jacobian"] = heatmap_to_jacobians(heatmap, self.jacobian(features))
        if return_heatmap:
            out["heatmap"] = heatmap
        return out
