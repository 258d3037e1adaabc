"""The one loader of reenactment models for inference: our checkpoints and the official DaGAN files.

:func:`load_reenactment_model` reads the file once (``weights_only``), then dispatches:

* our checkpoint (``format: dagan-checkpoint``, kind ``reenactment``) → the networks are rebuilt from the
  config stored in it and their weights loaded strictly; the frozen depth net comes from ``depth_checkpoint``
  (which wins when given), from the checkpoint, or from the stored ``depth_params.checkpoint`` path;
* anything else (a file or a folder) → :func:`load_official_reenactment`: official DaGAN / SPADE-DaGAN / FOMM
  weights (a training ``.pth.tar`` or per-module files) plus their depth model; files that are not official
  checkpoints are refused with a message saying what they are.

Official weights are built from the config their keys and shapes describe
(:func:`~dagan.checkpoints.official_arch.infer_official_config`), or from a given config that they must fit, so
they run exactly the official numerics. The depth model of either kind comes from
:func:`~dagan.checkpoints.depth.load_depth_models` (ours, or a Monodepth2 folder). The discriminator is built
only for official weights that hold one (for conversion); models are returned in eval mode.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from dagan.checkpoints.depth import check_depth_backbone, describe_depth_net, load_depth_net, load_stored_depth_net
from dagan.checkpoints.format import is_dagan_checkpoint, load_module_state, safe_torch_load, validate_checkpoint
from dagan.checkpoints.official_arch import (
    OFFICIAL_RESOLUTION,
    check_arch,
    detect_generator_arch,
    infer_official_config,
    kp_structure,
    model_structure,
    pretty_backbone,
)
from dagan.checkpoints.official_files import OfficialReenactment, load_official_state, read_official_reenactment
from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import (
    ReenactmentModels,
    build_discriminator,
    build_generator,
    build_kp_detector,
    uses_depth,
)
from dagan.paths import PathLike

__all__ = [
    "OfficialPairingWarning",
    "build_official_models",
    "load_official_reenactment",
    "load_reenactment_model",
]


class OfficialPairingWarning(UserWarning):
    """A pairing that loads but is probably not what the user wants (e.g. another depth backbone)."""


def load_reenactment_model(
    path: PathLike,
    depth_checkpoint: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Config, ReenactmentModels]:
    """(config, models) of a reenactment checkpoint — ours or an official DaGAN file — in eval mode.

    Raises :class:`CheckpointError` (one line) for missing, empty, corrupt, unsafe (non-tensor pickle),
    foreign or mismatching files.
    """
    path = Path(path)
    if path.is_dir():  # a folder of official per-module files (generator.pt, kp_detector.pt)
        cfg, models = load_official_reenactment(path, depth_path=depth_checkpoint)
    else:
        obj = safe_torch_load(path, map_location="cpu")
        if is_dagan_checkpoint(obj):
            cfg, models = _load_ours(obj, path, depth_checkpoint)
        else:
            cfg, models = load_official_reenactment(path, depth_path=depth_checkpoint)
    models.eval()
    return cfg, models.to(device)


# --------------------------------------------------------------------------- ours


def _load_ours(obj: dict[str, Any], path: Path, depth_checkpoint: PathLike | None) -> tuple[Config, ReenactmentModels]:
    validate_checkpoint(obj, path)
    if obj.get("kind") != "reenactment":
        raise CheckpointError(f"{path} is a {obj.get('kind')} checkpoint; animating needs a reenactment checkpoint")
    try:
        cfg = config_from_dict(obj.get("config", {}))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({exc})") from None
    modules = obj.get("modules", {})
    for name in ("kp_detector", "generator"):
        if name not in modules:
            raise CheckpointError(f"{path} holds no '{name}' weights")
    kp_detector = build_kp_detector(cfg)
    load_module_state(kp_detector, modules["kp_detector"], "kp_detector", path)
    generator = build_generator(cfg)
    load_module_state(generator, modules["generator"], "generator", path)
    depth_net = None
    if uses_depth(cfg):
        depth_net = _our_depth_net(cfg, modules, path, depth_checkpoint)
    return cfg, ReenactmentModels(kp_detector, generator, None, depth_net)


def _our_depth_net(cfg: Config, modules: dict[str, Any], path: Path, depth_checkpoint: PathLike | None) -> FaceDepthNet:
    """The frozen depth net; ``cfg``'s depth params are set to describe it (a net from another file may have
    another width or number of scales than the one the checkpoint was trained with)."""
    backbone = cfg.model_params.depth_params.backbone
    if depth_checkpoint is not None:  # ours, or an official Monodepth2 folder
        net = load_depth_net(depth_checkpoint, expected_backbone=backbone)
        describe_depth_net(cfg, net)
        return net
    if "depth_net" in modules:
        return load_stored_depth_net(cfg, modules["depth_net"], path)
    stored = cfg.model_params.depth_params.checkpoint
    if stored:
        net = load_depth_net(stored, expected_backbone=backbone)
        describe_depth_net(cfg, net)
        return net
    raise CheckpointError(f"{path} stores no depth net and names no depth checkpoint: pass one with --depth-checkpoint")


# --------------------------------------------------------------------------- official


def load_official_reenactment(
    checkpoint_path: PathLike,
    depth_path: PathLike | None = None,
    arch: str | None = None,
    *,
    config: Config | None = None,
    resolution: int = OFFICIAL_RESOLUTION,
) -> tuple[Config, ReenactmentModels]:
    """Load official DaGAN weights (training dict or per-module files) and their depth model, in eval mode:
    :func:`~dagan.checkpoints.official_files.read_official_reenactment`, then :func:`build_official_models`."""
    official = read_official_reenactment(checkpoint_path)
    return build_official_models(official, depth_path, arch, config=config, resolution=resolution)


def build_official_models(
    official: OfficialReenactment,
    depth_path: PathLike | None = None,
    arch: str | None = None,
    *,
    config: Config | None = None,
    resolution: int = OFFICIAL_RESOLUTION,
) -> tuple[Config, ReenactmentModels]:
    """(config, models in eval mode) of read official weights and their depth model.

    ``arch`` (``--arch``) must match the generator in the files, otherwise the message names the right one.
    ``depth_path`` is the Monodepth2 folder (or one of our depth checkpoints); the official DaGAN cannot run
    without it. With ``config`` the models are built from that config, and files that do not fit it (arch,
    keypoints, depth backbone, shapes) are refused with a message saying what they are; otherwise the config is
    inferred from the files (:func:`~dagan.checkpoints.official_arch.infer_official_config`).
    """
    where = str(official.path)
    detected = detect_generator_arch(official.generator, where)
    check_arch(detected, arch, where)
    # Files that do not belong together are named before the depth model is even looked at.
    model_structure(official.generator, official.kp_detector, official.discriminator, where)
    depth_net: FaceDepthNet | None = None
    if detected != "fomm" or kp_structure(official.kp_detector, where)[1]["params"]["use_depth"]:
        if depth_path is None:
            raise CheckpointError(
                f"{where}: the official DaGAN needs its depth model — pass the Monodepth2 depth folder "
                "(encoder.pth + depth.pth, e.g. depth/models/weights_19) with --depth-checkpoint DIR"
            )
        depth_net = load_depth_net(depth_path)
    backbone = depth_net.backbone if depth_net is not None else None
    inferred = infer_official_config(
        official.generator,
        official.kp_detector,
        official.discriminator,
        depth_backbone=backbone or "resnet18",
        depth_scales=depth_net.num_scales if depth_net is not None else 4,
        resolution=resolution,
        where=where,
    )
    if config is not None:
        _check_config(config, inferred, where, backbone)
        # A copy (the caller's config is not mutated) describing the depth net actually loaded, which the
        # models carry themselves: no separate depth checkpoint path.
        cfg = config_from_dict(config.to_dict())
        cfg.model_params.depth_params.checkpoint = None
        if depth_net is not None:
            cfg.model_params.depth_params.num_scales = depth_net.num_scales
    else:
        cfg = inferred
        if backbone is not None and backbone != "resnet18" and detected != "fomm":
            warnings.warn(
                f"depth encoder is {pretty_backbone(backbone)}; the released DaGAN checkpoints were trained "
                "with the ResNet-18 depth model (weights_19) — use this one only with a generator trained "
                "on it",
                OfficialPairingWarning,
                stacklevel=3,
            )
    if depth_net is not None:  # one of our depth checkpoints may hold a narrow net: describe the one loaded
        describe_depth_net(cfg, depth_net)
    # Built piecewise: the depth net comes from the depth files, so none is built just to be replaced.
    models = ReenactmentModels(
        kp_detector=build_kp_detector(cfg),
        generator=build_generator(cfg),
        discriminator=build_discriminator(cfg) if official.discriminator is not None else None,
        depth_net=depth_net,
    )
    load_official_state(models.kp_detector, official.kp_detector, "kp_detector", where)
    load_official_state(models.generator, official.generator, "generator", where)
    if models.discriminator is not None and official.discriminator is not None:
        load_official_state(models.discriminator, official.discriminator, "discriminator", where)
    return cfg, models.eval()


def _check_config(cfg: Config, inferred: Config, where: str, depth_backbone: str | None) -> None:
    """Clear messages for a user config that does not describe these files (strict loading does the rest)."""
    check_arch(inferred.arch, cfg.arch, where, source="the config")
    have, want = inferred.model_params.common_params.num_kp, cfg.model_params.common_params.num_kp
    if have != want:
        raise CheckpointError(
            f"{where}: the checkpoint has {have} keypoints but the config says {want} "
            "(model_params.common_params.num_kp)"
        )
    if depth_backbone is not None:
        check_depth_backbone(
            depth_backbone,
            cfg.model_params.depth_params.backbone,
            "the config (model_params.depth_params.backbone) expects",
        )
