"""Build every network of a :class:`dagan.config.Config` — one place that maps config keys to modules."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dagan.config import Config
from dagan.models.depth import FaceDepthNet
from dagan.models.discriminator import MultiScaleDiscriminator
from dagan.models.generators.base import Generator
from dagan.models.generators.dagan import DepthAwareGenerator
from dagan.models.generators.dagan_pp import DaganPPGenerator
from dagan.models.generators.dagan_spade import SPADEDepthAwareGenerator
from dagan.models.generators.fomm import OcclusionAwareGenerator
from dagan.models.keypoints import KPDetector
from dagan.models.pose import PoseNet


@dataclass(frozen=True)
class GeneratorVariant:
    """One generator architecture: its class and the ``generator_params`` keys its constructor takes besides
    the ones every generator takes (see :func:`build_generator`)."""

    cls: type[Generator]
    extra_keys: tuple[str, ...] = ()


#: arch name → generator variant (``dagan-spade`` has no bottleneck: its SPADE decoder has three middle blocks)
GENERATORS: dict[str, GeneratorVariant] = {
    "dagan++": GeneratorVariant(DaganPPGenerator, ("num_bottleneck_blocks", "attention")),
    "dagan": GeneratorVariant(DepthAwareGenerator, ("num_bottleneck_blocks",)),
    "dagan-spade": GeneratorVariant(SPADEDepthAwareGenerator),
    "fomm": GeneratorVariant(OcclusionAwareGenerator, ("num_bottleneck_blocks",)),
}


def uses_depth(cfg: Config) -> bool:
    """Whether the reenactment model needs the face depth net (keypoints or generator consume disparity)."""
    return GENERATORS[cfg.arch].cls.uses_depth or cfg.model_params.kp_detector_params.use_depth


def build_kp_detector(cfg: Config) -> KPDetector:
    mp = cfg.model_params
    kp = mp.kp_detector_params
    return KPDetector(
        block_expansion=kp.block_expansion,
        num_kp=mp.common_params.num_kp,
        num_channels=mp.common_params.num_channels,
        max_features=kp.max_features,
        num_blocks=kp.num_blocks,
        temperature=kp.temperature,
        estimate_jacobian=mp.common_params.estimate_jacobian,
        scale_factor=kp.scale_factor,
        pad=kp.pad,
        use_depth=kp.use_depth,
    )


def build_generator(cfg: Config) -> Generator:
    """The generator of ``cfg.arch`` (:data:`GENERATORS`), from the shared keys and the variant's own."""
    mp = cfg.model_params
    gp = mp.generator_params
    variant = GENERATORS[mp.arch]
    kwargs: dict[str, Any] = {
        "num_channels": mp.common_params.num_channels,
        "num_kp": mp.common_params.num_kp,
        "block_expansion": gp.block_expansion,
        "max_features": gp.max_features,
        "num_down_blocks": gp.num_down_blocks,
        "estimate_occlusion_map": gp.estimate_occlusion_map,
        "dense_motion_params": dataclasses.asdict(gp.dense_motion_params),
        "align_corners": mp.align_corners,
    }
    kwargs.update({key: getattr(gp, key) for key in variant.extra_keys})
    return variant.cls(**kwargs)


def build_discriminator(cfg: Config) -> MultiScaleDiscriminator:
    mp = cfg.model_params
    dp = mp.discriminator_params
    return MultiScaleDiscriminator(
        scales=tuple(dp.scales),
        block_expansion=dp.block_expansion,
        num_channels=mp.common_params.num_channels,
        max_features=dp.max_features,
        num_blocks=dp.num_blocks,
        sn=dp.sn,
        use_kp=dp.use_kp,
        num_kp=mp.common_params.num_kp,
    )


def build_depth_net(cfg: Config) -> FaceDepthNet:
    dp = cfg.model_params.depth_params
    extra: dict[str, Any] = {"width": dp.width} if dp.width != 1.0 else {}
    return FaceDepthNet(backbone=dp.backbone, num_scales=dp.num_scales, **extra)


def build_pose_net(cfg: Config) -> PoseNet:
    dp = cfg.model_params.depth_params
    res = cfg.resolution
    extra: dict[str, Any] = {"width": dp.width} if dp.width != 1.0 else {}
    return PoseNet(
        **extra,
        backbone=dp.backbone,
        uncertainty=dp.uncertainty,
        learn_intrinsics=dp.learn_intrinsics,
        image_size=(res, res),
    )


class ReenactmentModels(nn.Module):
    """The networks of a reenactment model. The depth net is frozen (trained separately, FDN++)."""

    def __init__(
        self,
        kp_detector: KPDetector,
        generator: Generator,
        discriminator: MultiScaleDiscriminator | None,
        depth_net: FaceDepthNet | None,
    ) -> None:
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self.discriminator = discriminator
        self.depth_net = depth_net
        if depth_net is not None:
            depth_net.requires_grad_(False)
            depth_net.eval()

    def train(self, mode: bool = True) -> ReenactmentModels:
        super().train(mode)
        if self.depth_net is not None:
            self.depth_net.eval()  # frozen: BatchNorm keeps its statistics
        return self

    def disparity(self, image: Tensor) -> Tensor | None:
        """Disparity of the frozen depth net (no gradient), or None for depth-free models."""
        if self.depth_net is None:
            return None
        with torch.no_grad():
            return self.depth_net(image)


def build_reenactment_models(cfg: Config, discriminator: bool = True) -> ReenactmentModels:
    return ReenactmentModels(
        kp_detector=build_kp_detector(cfg),
        generator=build_generator(cfg),
        discriminator=build_discriminator(cfg) if discriminator else None,
        depth_net=build_depth_net(cfg) if uses_depth(cfg) else None,
    )


def count_parameters(module: nn.Module | None, trainable_only: bool = False) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
