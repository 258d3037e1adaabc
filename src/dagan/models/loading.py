"""Load a trained face depth net (and, when present, its pose net) from a checkpoint file.

Accepted: our depth checkpoints (``kind="depth"``, modules ``depth_net`` and ``pose_net``) and reenactment
checkpoints that store the frozen ``depth_net`` module, and optionally a ``pose_net`` beside it (the
bundled demo model has one, so its FDN++ uncertainty map is available). The networks are rebuilt from the
config stored in the checkpoint, so no separate config file is needed.

This module is also the one place that keeps a config's ``model_params.depth_params`` in line with a trained
depth model (:func:`adopt_depth_params`): whatever writes a checkpoint holding a depth net must describe that
net in the checkpoint's config, or no reader can rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dagan.checkpoint import load_checkpoint, load_module_state, strip_prefixes
from dagan.config import Config, ConfigError, DepthParams, config_from_dict
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import build_depth_net, build_pose_net
from dagan.models.pose import PoseNet
from dagan.models.resnet import detect_backbone

__all__ = [
    "DEPTH_MODEL_KEYS",
    "DEPTH_NET_KEYS",
    "DepthModels",
    "adopt_depth_params",
    "describe_depth_net",
    "load_depth_models",
    "load_depth_net",
    "load_stored_depth_net",
]

#: ``depth_params`` entries that :class:`FaceDepthNet` is built from: other values cannot load its weights.
DEPTH_NET_KEYS = ("backbone", "width", "num_scales")
#: Every ``depth_params`` entry that describes a trained depth model: the depth net's shape, the pose-net heads
#: it was trained with, and the depth range its disparities map to (``checkpoint`` is where it came from).
DEPTH_MODEL_KEYS = (*DEPTH_NET_KEYS, "uncertainty", "learn_intrinsics", "min_depth", "max_depth")


def adopt_depth_params(
    cfg: Config,
    trained: DepthParams,
    source: str | Path,
    *,
    config_name: str | Path | None = None,
    keys: Sequence[str] = DEPTH_MODEL_KEYS,
) -> list[str]:
    """Make ``cfg.model_params.depth_params`` describe the trained depth model whose stored depth params are
    ``trained`` (in place), so that a checkpoint written with ``cfg`` rebuilds the depth net it holds.

    The trained model decides every entry of ``keys`` (default :data:`DEPTH_MODEL_KEYS`; a pose net trained
    anew against a frozen depth net takes only the depth net's keys); the entries that changed are returned
    as ``"key value"`` strings (for a log line). A config value that is not the default for a key of
    :data:`DEPTH_NET_KEYS` is a deliberate request for another depth net (the shipped configs spell out only
    defaults there): when the trained model differs, :class:`CheckpointError` says so in one line instead of
    silently using a net the config did not ask for. ``config_name`` (the config file) is named in it.
    """
    dp = cfg.model_params.depth_params
    default = DepthParams()
    changed = []
    for key in keys:
        want, have = getattr(dp, key), getattr(trained, key)
        if want == have:
            continue
        if key in DEPTH_NET_KEYS and want != getattr(default, key):
            where = f"{config_name} sets" if config_name is not None else "the config sets"
            raise CheckpointError(
                f"{where} model_params.depth_params.{key}: {want}, but the depth net of {source} has {key} "
                f"{have}: remove the key (the depth checkpoint decides) or pass a depth checkpoint with "
                f"{key} {want}"
            )
        setattr(dp, key, have)
        changed.append(f"{key} {have}")
    return changed


def describe_depth_net(cfg: Config, net: FaceDepthNet) -> None:
    """Set the :data:`DEPTH_NET_KEYS` of ``cfg`` (in place) from a built depth net, e.g. one loaded from an
    official Monodepth2 folder that stores no config."""
    dp = cfg.model_params.depth_params
    dp.backbone, dp.width, dp.num_scales = net.backbone, float(net.encoder.encoder.width), net.num_scales  # type: ignore[assignment]


def _shape_from_weights(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """(backbone, width, num_scales) of a :class:`FaceDepthNet` state dict, read from its key names and
    shapes, or None when they do not look like one."""
    enc = {k[len("encoder.encoder.") :]: v for k, v in state.items() if k.startswith("encoder.encoder.")}
    probe = enc.get("layer4.0.conv1.weight")
    if probe is None:
        return None
    try:
        backbone = detect_backbone(enc)
    except CheckpointError:
        return None
    # Stage 4 has scaled_channels(512, w) channels: the one stage where rounding loses least of w.
    width = 1.0 if probe.shape[0] == 512 else probe.shape[0] / 512
    scales = sum(f"decoder.decoder.{10 + s}.conv.weight" in state for s in range(4))
    return {"backbone": backbone, "width": width, "num_scales": scales} if scales else None


def load_stored_depth_net(cfg: Config, state: Mapping[str, Any], source: str | Path) -> FaceDepthNet:
    """The depth net of a checkpoint's ``depth_net`` weights, built from the checkpoint's config ``cfg``.

    Checkpoints written by ``dagan train`` before it recorded the frozen depth net's width in their config
    say ``width: 1.0`` for a narrower net; for weights that do not fit their config the shape is read from
    the weights themselves and ``cfg`` is corrected to it (in place). Anything else that does not fit raises
    the one-line :class:`CheckpointError` of :func:`dagan.checkpoint.load_module_state`.
    """
    net = build_depth_net(cfg)
    try:
        load_module_state(net, state, "depth_net", source)
        return net
    except CheckpointError as exc:
        shape = _shape_from_weights(strip_prefixes(state))
        dp = cfg.model_params.depth_params
        if shape is None or shape == {k: getattr(dp, k) for k in DEPTH_NET_KEYS}:
            raise
        error = exc
    fixed = config_from_dict(cfg.to_dict())
    for key, value in shape.items():
        setattr(fixed.model_params.depth_params, key, value)
    net = build_depth_net(fixed)
    try:
        load_module_state(net, state, "depth_net", source)
    except CheckpointError:
        raise error from None
    for key, value in shape.items():
        setattr(cfg.model_params.depth_params, key, value)
    return net


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
    depth_net = load_stored_depth_net(cfg, modules["depth_net"], path)
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
