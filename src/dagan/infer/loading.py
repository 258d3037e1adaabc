"""Load a reenactment model for inference from our checkpoints or from the official DaGAN files.

:func:`load_reenactment_model` reads the file once (``weights_only``), then dispatches:

* our checkpoint (``format: dagan-checkpoint``, kind ``reenactment``) → the networks are rebuilt from the
  config stored in it and their weights loaded strictly; the frozen depth net comes from the checkpoint,
  from ``depth_checkpoint`` (which wins when given), or from the stored ``depth_params.checkpoint`` path;
* anything else → :func:`dagan.models.official.load_official_reenactment` (official DaGAN / SPADE-DaGAN
  files plus their Monodepth2-layout depth folder), which refuses files that are not official checkpoints.

The discriminator is never built. Models are returned in eval mode on ``device``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dagan.checkpoint import FORMAT_VERSION, is_dagan_checkpoint, load_module_state, safe_torch_load
from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError
from dagan.models.factory import ReenactmentModels, build_generator, build_kp_detector, uses_depth

__all__ = ["load_reenactment_model"]

PathLike = str | os.PathLike[str]


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
        cfg, models = _load_official(path, depth_checkpoint)
        models.eval()
        return cfg, models.to(device)
    obj = safe_torch_load(path, map_location="cpu")
    if is_dagan_checkpoint(obj):
        cfg, models = _load_ours(obj, path, depth_checkpoint)
    else:
        cfg, models = _load_official(path, depth_checkpoint)
    models.eval()
    return cfg, models.to(device)


def _load_ours(
    obj: dict[str, Any], path: Path, depth_checkpoint: PathLike | None
) -> tuple[Config, ReenactmentModels]:
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {obj['format_version']}, "
            f"newer than this dagan supports ({FORMAT_VERSION})"
        )
    if obj.get("kind") != "reenactment":
        raise CheckpointError(
            f"{path} is a {obj.get('kind')} checkpoint; animating needs a reenactment checkpoint"
        )
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
        depth_net = _depth_net(cfg, modules, path, depth_checkpoint)
    return cfg, ReenactmentModels(kp_detector, generator, None, depth_net)


def _depth_net(cfg: Config, modules: dict[str, Any], path: Path, depth_checkpoint: PathLike | None):  # noqa: ANN202
    """The frozen depth net; ``cfg``'s depth params are set to describe it (a net from another file may have
    another width or number of scales than the one the checkpoint was trained with)."""
    from dagan.models.loading import describe_depth_net, load_stored_depth_net
    from dagan.models.official import load_any_depth_net

    backbone = cfg.model_params.depth_params.backbone
    if depth_checkpoint is not None:  # ours, or an official Monodepth2 folder
        net = load_any_depth_net(depth_checkpoint, expected_backbone=backbone)
        describe_depth_net(cfg, net)
        return net
    if "depth_net" in modules:
        return load_stored_depth_net(cfg, modules["depth_net"], path)
    stored = cfg.model_params.depth_params.checkpoint
    if stored:
        net = load_any_depth_net(stored, expected_backbone=backbone)
        describe_depth_net(cfg, net)
        return net
    raise CheckpointError(
        f"{path} stores no depth net and names no depth checkpoint: pass one with --depth-checkpoint"
    )


def _load_official(path: Path, depth_checkpoint: PathLike | None) -> tuple[Config, ReenactmentModels]:
    from dagan.models.official import load_official_reenactment

    return load_official_reenactment(path, depth_path=depth_checkpoint)
