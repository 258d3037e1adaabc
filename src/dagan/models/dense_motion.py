"""FOMM dense motion network: K first-order motions + background → dense deformation and occlusion.

Given source and driving keypoints, builds K+1 sparse motions (identity background first, then
T_k(z) = x_k^S + J_k^S (J_k^D)^{-1} (z − x_k^D)), warps the (anti-aliased, down-scaled) source with each,
and lets an hourglass predict soft assignment masks over them and an occlusion map:

    T_{S←D}(z) = Σ_k m_k(z) T_k(z),        M(z) = sigmoid(occlusion(z)).

Parameter names match the official FOMM/DaGAN ``dense_motion_network`` entries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.geometry.grids import keypoint_gaussians, make_coordinate_grid, taylor_sparse_motions, warp
from dagan.models.blocks import AntiAliasInterpolation2d, Hourglass

KeypointDict = dict[str, Tensor]


class DenseMotionNetwork(nn.Module):
    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int = 3,
        estimate_occlusion_map: bool = True,
        scale_factor: float = 0.25,
        kp_variance: float = 0.01,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        self.align_corners = align_corners
        self.scale_factor = scale_factor
        self.hourglass = Hourglass(
            block_expansion,
            in_features=(num_kp + 1) * (num_channels + 1),
            num_blocks=num_blocks,
            max_features=max_features,
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3) if estimate_occlusion_map else None
        )
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def heatmap_differences(self, height: int, width: int, kp_driving: KeypointDict, kp_source: KeypointDict) -> Tensor:
        """G(x^D_k) − G(x^S_k) with a zero background map first: B×(K+1)×1×h×w."""
        diff = keypoint_gaussians(kp_driving["value"], height, width, self.kp_variance) - keypoint_gaussians(
            kp_source["value"], height, width, self.kp_variance
        )
        zeros = torch.zeros_like(diff[:, :1])
        return torch.cat([zeros, diff], dim=1).unsqueeze(2)

    def sparse_motions(self, height: int, width: int, kp_driving: KeypointDict, kp_source: KeypointDict) -> Tensor:
        """Identity background motion followed by the K Taylor motions: B×(K+1)×h×w×2."""
        value = kp_driving["value"]
        grid = make_coordinate_grid(height, width, value.dtype, value.device)
        motions = taylor_sparse_motions(
            grid, kp_source["value"], value, kp_source.get("jacobian"), kp_driving.get("jacobian")
        )
        identity = grid.view(1, 1, height, width, 2).expand(value.shape[0], 1, height, width, 2)
        return torch.cat([identity, motions], dim=1)

    def deformed_sources(self, source: Tensor, motions: Tensor) -> Tensor:
        """The source warped by every sparse motion: B×(K+1)×C×h×w."""
        b, k1, h, w, _ = motions.shape
        src = source.unsqueeze(1).expand(b, k1, *source.shape[1:]).reshape(b * k1, *source.shape[1:])
        out = warp(src, motions.reshape(b * k1, h, w, 2), align_corners=self.align_corners)
        return out.view(b, k1, -1, h, w)

    def forward(self, source_image: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict) -> dict[str, Tensor]:
        if self.down is not None:
            source_image = self.down(source_image)
        b, _, h, w = source_image.shape
        heatmaps = self.heatmap_differences(h, w, kp_driving, kp_source)
        motions = self.sparse_motions(h, w, kp_driving, kp_source)
        deformed = self.deformed_sources(source_image, motions)
        features = self.hourglass(torch.cat([heatmaps, deformed], dim=2).view(b, -1, h, w))

        mask = F.softmax(self.mask(features), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(features))
        return out
