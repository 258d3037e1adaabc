"""Load a trained face depth net (and, when present, its pose net) from a checkpoint file.

Accepted: our depth checkpoints (``kind="depth"``, modules ``depth_net`` and ``pose_net``) and reenactment
checkpoints that store the frozen ``depth_net`` module. The networks are rebuilt from the config stored in
the checkpoint, so no separate config file is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dagan.checkpoint import load_checkpoint, load_module_state
from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import build_depth_net, build_pose_net
from dagan.models.pose import PoseNet

__all__ = ["DepthModels", "load_depth_models", "load_depth_net"]


@dataclass
class DepthModels:
    """A loaded depth net (eval mode), the pose net when the checkpoint has one, and the stored config."""

    depth_net: FaceDepthNet
    pose_net: PoseNet | None
    config: Config
    kind: str
    step: int


def _stored_config(ckpt: dict, path: Path) -> Config:
    try:
        return config_from_dict(ckpt.get("config", {}))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({exc})") from None


def load_depth_models(path: str | Path, map_location: str | torch.device = "cpu") -> DepthModels:
    """Load the depth net (and pose net, if stored) of a depth or reenactment checkpoint, in eval mode.

    Raises :class:`CheckpointError` with one line for missing/corrupt/foreign files and for checkpoints that
    hold no depth net (e.g. a FOMM reenactment model).
    """
    path = Path(path)
    ckpt = load_checkpoint(path, map_location=map_location)
    kind = str(ckpt.get("kind"))
    modules = ckpt.get("modules", {})
    if kind not in ("depth", "reenactment"):
        raise CheckpointError(f"{path} is a {kind} checkpoint; expected a depth or reenactment checkpoint")
    if "depth_net" not in modules:
        what = "depth" if kind == "depth" else f"{ckpt.get('arch', 'reenactment')} reenactment"
        raise CheckpointError(f"{path} is a {what} checkpoint without a depth net ('depth_net' module)")
    cfg = _stored_config(ckpt, path)
    depth_net = build_depth_net(cfg)
    load_module_state(depth_net, modules["depth_net"], "depth_net", path)
    pose_net = None
    if "pose_net" in modules:
        pose_net = build_pose_net(cfg)
        load_module_state(pose_net, modules["pose_net"], "pose_net", path)
        pose_net.to(map_location).eval()
    depth_net.to(map_location).eval()
    return DepthModels(depth_net, pose_net, cfg, kind, int(ckpt.get("step", 0)))


def load_depth_net(path: str | Path, map_location: str | torch.device = "cpu") -> FaceDepthNet:
    """The face depth net F_d (eval mode) of a depth checkpoint or of a reenactment checkpoint."""
    return load_depth_models(path, map_location).depth_net
