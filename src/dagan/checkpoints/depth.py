"""The one loader of face depth models: every ``--depth-checkpoint`` and ``dagan depth --checkpoint`` goes here.

:func:`load_depth_models` accepts

* our depth checkpoints (``kind="depth"``, modules ``depth_net`` and optionally ``pose_net``);
* our reenactment checkpoints that store the frozen ``depth_net`` module (and optionally a ``pose_net`` beside
  it: the bundled demo model has one, so its FDN++ uncertainty map is available);
* an official Monodepth2 depth folder (``encoder.pth`` + ``depth.pth``, optionally ``pose_encoder.pth`` +
  ``pose.pth``), a file in it, or a folder with a single ``weights_N`` folder below it.

Our networks are rebuilt from the config stored in the checkpoint, so no separate config file is needed; a
Monodepth2 folder stores none, so its config is the released settings plus what its files say (backbone, number
of disparity scales, training size), without uncertainty head or learned intrinsics, as Monodepth2 trains.

This module is also the one place that keeps a config's ``model_params.depth_params`` in line with a trained
depth model (:func:`adopt_depth_params`): whatever writes a checkpoint holding a depth net must describe that
net in the checkpoint's config, or no reader can rebuild it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dagan.checkpoints.format import (
    is_dagan_checkpoint,
    load_module_state,
    safe_torch_load,
    strip_prefixes,
    validate_checkpoint,
)
from dagan.checkpoints.official_arch import OFFICIAL_RESOLUTION, pretty_backbone
from dagan.checkpoints.official_files import (
    DEPTH_DECODER_FILE,
    DEPTH_ENCODER_FILE,
    MODULE_ENTRIES,
    MONODEPTH2_FILES,
    OfficialDepth,
    classify_state_dict,
    load_official_state,
    read_depth_folder,
)
from dagan.config import Config, ConfigError, DepthParams, config_from_dict, deep_merge
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet, load_depth_net_state
from dagan.models.factory import build_depth_net, build_pose_net
from dagan.models.pose import PoseNet
from dagan.models.resnet import detect_backbone

__all__ = [
    "DEPTH_MODEL_KEYS",
    "DEPTH_NET_KEYS",
    "DepthModels",
    "adopt_depth_params",
    "check_depth_backbone",
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
    the one-line :class:`CheckpointError` of :func:`~dagan.checkpoints.format.load_module_state`.
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
    """A loaded depth net (eval mode), the pose net when the checkpoint has one, and the config describing them
    (stored in our checkpoints; read from the files of a Monodepth2 folder)."""

    depth_net: FaceDepthNet
    pose_net: PoseNet | None
    config: Config
    kind: str
    step: int


def load_depth_models(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> DepthModels:
    """Load the depth net (and pose net, if stored) of our depth or reenactment checkpoint or of a Monodepth2
    depth folder, in eval mode.

    Raises :class:`CheckpointError` with one line for missing/corrupt/foreign files, for official reenactment
    checkpoints and for checkpoints that hold no depth net (e.g. a FOMM reenactment model).
    """
    path = Path(path)
    if path.is_dir() or path.name in MONODEPTH2_FILES:
        models = _monodepth2_models(read_depth_folder(path))
    else:
        models = _our_models(safe_torch_load(path, map_location), path)
    models.depth_net.to(map_location).eval()
    if models.pose_net is not None:
        models.pose_net.to(map_location).eval()
    return models


def load_depth_net(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    expected_backbone: str | None = None,
    source: str = "the checkpoint was trained with",
) -> FaceDepthNet:
    """The face depth net F_d (eval mode) of anything :func:`load_depth_models` reads.

    With ``expected_backbone`` (e.g. the backbone a reenactment checkpoint was trained with), a depth model of
    another backbone is refused with "depth encoder is ResNet-50 but the checkpoint was trained with ResNet-18"
    (``source`` is the middle of that sentence).
    """
    net = load_depth_models(path, map_location).depth_net
    if expected_backbone is not None:
        check_depth_backbone(net.backbone, expected_backbone, source)
    return net


def check_depth_backbone(found: str, expected: str, source: str) -> None:
    """Refuse a depth model of another backbone than ``expected``: "depth encoder is <found> but <source>
    <expected> — use the <expected> depth model it was trained with"."""
    if found != expected:
        raise CheckpointError(
            f"depth encoder is {pretty_backbone(found)} but {source} {pretty_backbone(expected)} — use the "
            f"{pretty_backbone(expected)} depth model it was trained with"
        )


def _our_models(obj: Any, path: Path) -> DepthModels:
    kind = classify_state_dict(obj)
    if kind == "official-training" or kind in MODULE_ENTRIES:
        raise CheckpointError(
            f"{path} is an official DaGAN reenactment checkpoint, not a depth model; the depth model is the "
            "Monodepth2 folder with encoder.pth and depth.pth"
        )
    if not is_dagan_checkpoint(obj):
        raise CheckpointError(
            f"{path} is not a dagan checkpoint; an official depth model is a Monodepth2 folder holding "
            f"{DEPTH_ENCODER_FILE} and {DEPTH_DECODER_FILE} (e.g. depth/models/weights_19)"
        )
    ckpt = validate_checkpoint(obj, path)
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
    return DepthModels(depth_net, pose_net, cfg, kind, int(ckpt.get("step", 0)))


def _stored_config(ckpt: dict, path: Path) -> Config:
    try:
        return config_from_dict(ckpt.get("config", {}))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({exc})") from None


def _monodepth2_models(depth: OfficialDepth) -> DepthModels:
    """The depth net of a read Monodepth2 folder, and its pose net when the pose files have the same backbone
    (a pose net of another backbone cannot share the config's ``depth_params.backbone``)."""
    cfg = _monodepth2_config(depth)
    depth_net = build_depth_net(cfg)
    load_depth_net_state(depth_net, depth.encoder, depth.decoder)
    pose_net = None
    if depth.pose_encoder is not None and depth.pose_decoder is not None and depth.pose_backbone == depth.backbone:
        pose_net = build_pose_net(cfg)
        state = {
            **{f"encoder.{k}": v for k, v in depth.pose_encoder.items()},
            **{f"decoder.{k}": v for k, v in depth.pose_decoder.items()},
        }
        load_official_state(pose_net, state, "pose_net", depth.folder)
    return DepthModels(depth_net, pose_net, cfg, "depth", 0)


def _monodepth2_config(depth: OfficialDepth) -> Config:
    """The released settings with the folder's backbone and scales, at its training size when square."""
    size = depth.height if depth.height and depth.height == depth.width else OFFICIAL_RESOLUTION
    overrides: dict[str, dict[str, Any]] = {
        "dataset_params": {"frame_shape": [size, size, 3]},
        "model_params": {
            "arch": "dagan",
            "depth_params": {
                "backbone": depth.backbone,
                "uncertainty": False,
                "learn_intrinsics": False,
                "num_scales": depth.num_scales,
                "checkpoint": None,
            },
        },
    }
    try:
        return config_from_dict(deep_merge(Config().to_dict(), overrides))
    except ConfigError:
        overrides["dataset_params"]["frame_shape"] = [OFFICIAL_RESOLUTION, OFFICIAL_RESOLUTION, 3]
        return config_from_dict(deep_merge(Config().to_dict(), overrides))
