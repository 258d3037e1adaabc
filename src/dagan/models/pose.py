"""Pose network F_p of FDN++: [R|t], K, U = F_p(I^i ‖ I^{i+1}) (paper §III-B, Eq. for F_p).

One ResNet encoder on the two frames stacked along channels (6 input channels) feeds three heads:

* pose: the Monodepth2 pose decoder (keys ``net.0..3``), 6-DoF motion as axis-angle + translation;
* intrinsics: K per frame pair (focal lengths and principal point learned), as in "Depth from Videos in the
  Wild" (Gordon et al., 2019), so no camera parameters are ever needed from the user;
* uncertainty: a stack of up-sampling blocks on the bottleneck ending in a sigmoid, U ∈ (0, 1) at the
  input resolution (paper Fig. 5(f)); absent in the FDN ablation.

The encoder's state dict is the Monodepth2 ``pose_encoder.pth`` layout and the pose decoder's the ``pose.pth``
layout (see :func:`monodepth2_pose_decoder_state` for the 12-output variant Monodepth2 trains).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dagan.errors import CheckpointError, InputError
from dagan.geometry.camera import intrinsics_from_normalized
from dagan.models.blocks import UpBlock2d
from dagan.models.depth import ResnetEncoder

#: Focal length of the fixed / initial camera, as a multiple of the image width (≈ 45° horizontal FOV).
DEFAULT_FOCAL_OVER_WIDTH = 1.2
#: Lower bound on a learned focal length per unit image size: keeps K invertible (FOV < 178°).
MIN_FOCAL_OVER_SIZE = 0.01
POSE_SCALE = 0.01
UNCERTAINTY_CHANNELS = (256, 128, 64, 32, 16)


class PoseDecoder(nn.Module):
    """Bottleneck C×h×w → 6-DoF motion: 0.01 · spatial mean of a small conv stack.

    ``net.0`` 1×1 C→256 (squeeze), ``net.1`` / ``net.2`` 3×3 256→256, ``net.3`` 1×1 256→6, ReLU between.
    The 0.01 factor keeps the initial motions near the identity.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [
                nn.Conv2d(in_channels, 256, 1),
                nn.Conv2d(256, 256, 3, padding=1),
                nn.Conv2d(256, 256, 3, padding=1),
                nn.Conv2d(256, 6, 1),
            ]
        )

    def forward(self, bottleneck: Tensor) -> tuple[Tensor, Tensor]:
        """(axis-angle B×3, translation B×3)."""
        x = bottleneck
        for i, conv in enumerate(self.net):
            x = conv(x)
            if i < len(self.net) - 1:
                x = F.relu(x)
        out = POSE_SCALE * x.mean(dim=(2, 3))
        return out[:, :3], out[:, 3:]


def _inverse_softplus(y: float) -> float:
    """x with softplus(x) = log(1 + eˣ) = y (y > 0)."""
    return y + math.log(-math.expm1(-y))


class IntrinsicsHead(nn.Module):
    """Camera intrinsics from the globally pooled bottleneck (Gordon et al., 2019).

    fx = (softplus(a) + ε)·W, fy = (softplus(b) + ε)·H, (cx, cy) = sigmoid(c, d)·(W, H) − 0.5 (pixel centres
    at integer coordinates, see :func:`dagan.geometry.camera.intrinsics_from_normalized`), where (a, b) and
    (c, d) come from the 1×1 convs ``focal`` and ``principal`` and ε = 0.01 keeps K invertible when softplus
    underflows. Their weights start at zero and their biases at the prior camera (f = 1.2·W, principal point
    at the centre), so training starts from a sensible K.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        height, width = image_size
        self.focal = nn.Conv2d(in_channels, 2, 1)
        self.principal = nn.Conv2d(in_channels, 2, 1)
        nn.init.zeros_(self.focal.weight)
        nn.init.zeros_(self.principal.weight)
        focal_w = DEFAULT_FOCAL_OVER_WIDTH
        focal_h = DEFAULT_FOCAL_OVER_WIDTH * width / height  # square pixels: fy = fx in pixels
        assert self.focal.bias is not None and self.principal.bias is not None  # built with biases
        with torch.no_grad():
            prior = torch.tensor([focal_w, focal_h]) - MIN_FOCAL_OVER_SIZE
            self.focal.bias.copy_(prior.apply_(_inverse_softplus))
            self.principal.bias.zero_()

    def forward(self, bottleneck: Tensor, height: int, width: int) -> Tensor:
        """K in pixels for an H×W image: B×3×3."""
        # K feeds back-projection and its inverse: keep the parameters' precision under mixed precision.
        with torch.autocast(device_type=bottleneck.device.type, enabled=False):
            pooled = bottleneck.mean(dim=(2, 3), keepdim=True).to(self.focal.weight.dtype)
            focal = F.softplus(self.focal(pooled).flatten(1)) + MIN_FOCAL_OVER_SIZE
            principal = torch.sigmoid(self.principal(pooled).flatten(1))
            return intrinsics_from_normalized(focal, principal, height, width)


class UncertaintyHead(nn.Module):
    """U = sigmoid(F^U(bottleneck)) at the input resolution (paper Eq. for U^i, Fig. 5(f)).

    Five :class:`UpBlock2d` (nearest ×2 → 3×3 conv → BN → ReLU; C→256→128→64→32→16) undo the encoder's
    stride 32, then a 3×3 conv → 1 channel. The logits are resized bilinearly to exactly H×W when the input
    size is not a multiple of 32, then squashed by the sigmoid.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        channels = (in_channels, *UNCERTAINTY_CHANNELS)
        self.up_blocks = nn.ModuleList(UpBlock2d(cin, cout) for cin, cout in zip(channels[:-1], channels[1:]))
        self.out = nn.Conv2d(channels[-1], 1, 3, padding=1)

    def forward(self, bottleneck: Tensor, height: int, width: int) -> Tensor:
        x = bottleneck
        for block in self.up_blocks:
            x = block(x)
        logits = self.out(x)
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)


class PoseNet(nn.Module):
    """F_p: two frames (B×3×H×W each, in [0, 1]) → relative pose, intrinsics and uncertainty.

    ``forward(frame_t, frame_t1)`` returns ``{"axisangle": B×3, "translation": B×3, "intrinsics": B×3×3,
    "uncertainty": B×1×H×W or None}``; the motion maps frame t to frame t+1 (the frames are stacked in
    that order, I^i ‖ I^{i+1}).

    Intrinsics are in pixels of the input size (pixel centres at integer coordinates, as in
    :mod:`dagan.geometry.camera`). With ``learn_intrinsics=False`` the fixed ``intrinsics``
    (3×3, pixels of ``image_size``) — by default f = 1.2·W with the principal point at the centre — are
    rescaled to the input size and repeated over the batch.

    The paper's uncertainty head starts from a 1024×2×2 pose-net output. No configuration of the stated
    architecture (Monodepth2 pose net at 256²) gives that shape: the ResNet-18 bottleneck at 256×256 is
    512×8×8 (ResNet-50: 2048×8×8). We up-sample from whatever the bottleneck is, five ×2 blocks to reach the
    input resolution.
    """

    fixed_focal: Tensor
    fixed_principal: Tensor

    def __init__(
        self,
        backbone: str = "resnet18",
        uncertainty: bool = True,
        learn_intrinsics: bool = True,
        image_size: tuple[int, int] = (256, 256),
        intrinsics: Tensor | None = None,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        channel_width = width  # the encoder's channel multiplier; `width` below is the image width
        height, width = image_size
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.image_size = (int(height), int(width))
        self.encoder = ResnetEncoder(backbone, num_input_images=2, width=channel_width)
        bottleneck = self.encoder.channels[-1]
        self.decoder = PoseDecoder(bottleneck)
        self.intrinsics_head = IntrinsicsHead(bottleneck, self.image_size) if learn_intrinsics else None
        self.uncertainty_head = UncertaintyHead(bottleneck) if uncertainty else None
        if intrinsics is None:
            f = DEFAULT_FOCAL_OVER_WIDTH * width
            intrinsics = torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
        intrinsics = torch.as_tensor(intrinsics, dtype=torch.float32)
        if intrinsics.shape != (3, 3):
            raise ValueError(f"intrinsics must be a 3×3 matrix, got shape {tuple(intrinsics.shape)}")
        # Stored per unit image size (the inverse of intrinsics_from_normalized) so that it can be rescaled
        # to whatever size the frames have; a construction argument, hence not part of the state dict.
        size = torch.tensor([width, height], dtype=torch.float32)
        focal = torch.stack([intrinsics[0, 0], intrinsics[1, 1]]) / size
        principal = (torch.stack([intrinsics[0, 2], intrinsics[1, 2]]) + 0.5) / size
        self.register_buffer("fixed_focal", focal, persistent=False)
        self.register_buffer("fixed_principal", principal, persistent=False)

    @property
    def backbone(self) -> str:
        return self.encoder.backbone

    @property
    def learn_intrinsics(self) -> bool:
        return self.intrinsics_head is not None

    @property
    def predicts_uncertainty(self) -> bool:
        return self.uncertainty_head is not None

    def fixed_intrinsics(self, batch: int, height: int, width: int) -> Tensor:
        """The fixed K rescaled to an H×W image, B×3×3."""
        k = intrinsics_from_normalized(self.fixed_focal[None], self.fixed_principal[None], height, width)
        return k.repeat(batch, 1, 1)

    def forward(self, frame_t: Tensor, frame_t1: Tensor) -> dict[str, Tensor | None]:
        if frame_t.shape != frame_t1.shape or frame_t.dim() != 4 or frame_t.shape[1] != 3:
            raise InputError(
                f"pose net expects two B×3×H×W frames of equal shape, got {tuple(frame_t.shape)} "
                f"and {tuple(frame_t1.shape)}"
            )
        batch, _, height, width = frame_t.shape
        bottleneck = self.encoder(torch.cat([frame_t, frame_t1], dim=1))[-1]
        axisangle, translation = self.decoder(bottleneck)
        if self.intrinsics_head is not None:
            intrinsics = self.intrinsics_head(bottleneck, height, width)
        else:
            intrinsics = self.fixed_intrinsics(batch, height, width)
        uncertainty = None
        if self.uncertainty_head is not None:
            uncertainty = self.uncertainty_head(bottleneck, height, width)
        return {
            "axisangle": axisangle,
            "translation": translation,
            "intrinsics": intrinsics,
            "uncertainty": uncertainty,
        }


def monodepth2_pose_decoder_state(state_dict: Mapping[str, object]) -> dict[str, Tensor]:
    """Adapt a Monodepth2 ``pose.pth`` to :class:`PoseDecoder`.

    Monodepth2 trains its pose decoder with ``num_frames_to_predict_for=2`` (``net.3`` has 12 outputs) and
    uses only the first frame's 6 values; keeping the first 6 rows of ``net.3`` reproduces that exactly.
    """
    state = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
    for key in ("net.3.weight", "net.3.bias"):
        if key not in state:
            raise CheckpointError(f"pose decoder weights lack {key!r}; not a Monodepth2 pose.pth")
        rows = state[key].shape[0]
        if rows % 6:
            raise CheckpointError(f"pose decoder {key} has {rows} outputs, expected a multiple of 6")
        state[key] = state[key][:6]
    return state
