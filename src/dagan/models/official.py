"""Read the official DaGAN (CVPR 2022) checkpoints, tell the user what any checkpoint file is, and convert.

Formats understood (see ``shared/reference/official-dagan.md`` for the facts):

* an official **training checkpoint** (``DaGAN_vox_adv_256.pth.tar``, ``SPADE_DaGAN_vox_adv_256.pth.tar``,
  ``%08d-checkpoint.pth.tar``): a dict with ``generator``, ``kp_detector``, ``discriminator`` state dicts,
  ``optimizer_*`` entries and ``epoch``; module keys may carry DDP ``module.`` prefixes;
* **per-module** state-dict files (``generator.pt``, ``kp_detector.pt``, optionally ``discriminator.pt``) in
  one folder — any one of them, or the folder, names the set;
* a **Monodepth2 depth folder** (``encoder.pth`` with non-tensor ``height``/``width``/``use_stereo`` entries
  and an unused ``encoder.fc`` classifier, ``depth.pth``, optionally ``pose_encoder.pth``, ``pose.pth``,
  ``adam.pth``);
* FOMM checkpoints of the same layout (a generator without the depth branch) load as arch ``fomm``.

Everything is read with ``torch.load(weights_only=True)``: a file holding any other Python object is refused.
The architecture is read from the keys and shapes, never guessed from file names: the generator kind
(``decoder.*`` = SPADE, ``bottleneck.*`` = plain), the number of keypoints (``kp.weight``), the widths and
block counts, the anti-alias scales (from the blur kernel size) and the depth backbone (``layer1.0.conv3``
exists only in bottleneck ResNets). The models are then built by :mod:`dagan.models.factory` from a
:class:`~dagan.config.Config` holding the released ``vox-adv-256`` settings plus what the files say, so they
run exactly the official numerics (raw disparity, 4-channel keypoint input, padding-0 heads, corner-aligned
grids sampled with ``align_corners=False``, stored spectral-norm vectors).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from dagan.checkpoint import (
    FORMAT_VERSION,
    is_dagan_checkpoint,
    load_module_state,
    safe_torch_load,
    save_checkpoint,
    strip_prefixes,
)
from dagan.config import Config, ConfigError, config_from_dict, deep_merge
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet, load_depth_net_state, monodepth2_encoder_state
from dagan.models.factory import (
    ReenactmentModels,
    build_discriminator,
    build_generator,
    build_kp_detector,
    build_pose_net,
)
from dagan.models.pose import PoseNet, monodepth2_pose_decoder_state
from dagan.models.resnet import detect_backbone

__all__ = [
    "OFFICIAL_RESOLUTION",
    "CheckpointDescription",
    "OfficialDepth",
    "OfficialPairingWarning",
    "OfficialReenactment",
    "check_arch",
    "classify_state_dict",
    "count_state_parameters",
    "describe_checkpoint",
    "detect_generator_arch",
    "import_official",
    "import_official_depth",
    "infer_official_config",
    "load_any_depth_net",
    "load_official_depth_net",
    "load_official_reenactment",
    "read_depth_folder",
    "read_official_reenactment",
    "read_torch_file",
    "resolve_depth_folder",
]

#: The released checkpoints are 256×256; the resolution is not stored in them.
OFFICIAL_RESOLUTION = 256
#: Entries of an official training checkpoint that hold model weights.
MODULE_ENTRIES = ("generator", "kp_detector", "discriminator")
#: The Monodepth2 files of a depth folder.
DEPTH_ENCODER_FILE = "encoder.pth"
DEPTH_DECODER_FILE = "depth.pth"
POSE_ENCODER_FILE = "pose_encoder.pth"
POSE_DECODER_FILE = "pose.pth"
MONODEPTH2_FILES = (DEPTH_ENCODER_FILE, DEPTH_DECODER_FILE, POSE_ENCODER_FILE, POSE_DECODER_FILE, "adam.pth")
#: File endings a per-module state dict may have.
_WEIGHT_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".bin")

_GENERATOR_NAMES = {
    "dagan": "plain DaGAN generator (DepthAwareGenerator, 'bottleneck.*' keys)",
    "dagan-spade": "SPADE DaGAN generator (SPADEDepthAwareGenerator, 'decoder.*' keys)",
    "fomm": "FOMM generator (OcclusionAwareGenerator, no depth branch)",
}
_SHORT_NAMES = {
    "dagan": "a plain DaGAN generator",
    "dagan-spade": "a SPADE generator",
    "fomm": "a FOMM generator",
}


class OfficialPairingWarning(UserWarning):
    """A pairing that loads but is probably not what the user wants (e.g. another depth backbone)."""


def _pretty_backbone(name: str | None) -> str:
    """resnet18 → ResNet-18."""
    if not name:
        return "none"
    match = re.fullmatch(r"resnet(\d+)", name)
    return f"ResNet-{match.group(1)}" if match else name


# --------------------------------------------------------------------------- state-dict analysis


def count_state_parameters(state: Mapping[str, Any]) -> int:
    """Number of learnable values in a state dict: every tensor except BatchNorm statistics, spectral-norm
    vectors (``weight_u``/``weight_v``) and the fixed anti-alias blur kernels (``down.weight``)."""
    total = 0
    for key, value in state.items():
        if not isinstance(value, Tensor):
            continue
        parts = str(key).split(".")
        if parts[-1] in ("running_mean", "running_var", "num_batches_tracked", "weight_u", "weight_v"):
            continue
        if len(parts) >= 2 and parts[-2] == "down" and parts[-1] == "weight":
            continue
        total += value.numel()
    return total


def _indices(state: Mapping[str, Any], prefix: str) -> list[int]:
    """Sorted distinct integers i of the keys ``<prefix><i>.…``."""
    found = set()
    for key in state:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _has_prefix(state: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in state)


def _shape(state: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise CheckpointError(f"{where}: the weights lack {key!r}")
    return tuple(value.shape)


def classify_state_dict(state: Any) -> str | None:
    """What a loaded object is, from its keys.

    One of ``"dagan"`` (our checkpoint), ``"official-training"``, ``"generator"``, ``"kp_detector"``,
    ``"discriminator"``, ``"depth_encoder"``, ``"pose_encoder"``, ``"depth_decoder"``, ``"pose_decoder"``,
    ``"optimizer"``, ``"resnet"`` (torchvision-format ImageNet weights) or None (unknown).
    """
    if not isinstance(state, Mapping):
        return None
    if is_dagan_checkpoint(state):
        return "dagan"
    if any(isinstance(state.get(k), Mapping) for k in ("generator", "kp_detector")):
        return "official-training"
    if "state" in state and "param_groups" in state:
        return "optimizer"
    keys = strip_prefixes({str(k): v for k, v in state.items()})
    if _has_prefix(keys, "dense_motion_network."):
        return "generator"
    if "kp.weight" in keys and _has_prefix(keys, "predictor."):
        return "kp_detector"
    if _has_prefix(keys, "discs."):
        return "discriminator"
    conv1 = keys.get("encoder.conv1.weight")
    if isinstance(conv1, Tensor) and _has_prefix(keys, "encoder.layer1."):
        return "pose_encoder" if conv1.shape[1] == 6 else "depth_encoder"
    if "decoder.0.conv.conv.weight" in keys:
        return "depth_decoder"
    if "net.0.weight" in keys and "net.3.weight" in keys:
        return "pose_decoder"
    if "conv1.weight" in keys and _has_prefix(keys, "layer1."):
        return "resnet"
    return None


def detect_generator_arch(state: Mapping[str, Any], where: str = "generator") -> str:
    """``dagan-spade`` (``decoder.*``), ``dagan`` (``bottleneck.*`` + depth branch) or ``fomm`` (no depth)."""
    if not _has_prefix(state, "dense_motion_network."):
        raise CheckpointError(f"{where}: not a DaGAN/FOMM generator (no 'dense_motion_network.*' weights)")
    depth_branch = _has_prefix(state, "src_first.") or _has_prefix(state, "AttnModule.")
    if _has_prefix(state, "decoder."):
        if not depth_branch:
            raise CheckpointError(f"{where}: a SPADE generator without the depth branch is not supported")
        return "dagan-spade"
    if _has_prefix(state, "bottleneck."):
        return "dagan" if depth_branch else "fomm"
    raise CheckpointError(f"{where}: unknown generator (neither 'decoder.*' nor 'bottleneck.*' weights)")


def check_arch(detected: str, requested: str | None, where: str, source: str = "--arch") -> None:
    """Raise a one-line message naming the ``--arch`` the file needs when it is not ``requested``."""
    if requested is None or requested == detected:
        return
    what = _SHORT_NAMES.get(detected, detected)
    if requested == "dagan++" and detected in ("dagan", "dagan-spade"):
        what = f"an official DaGAN (CVPR 2022) generator, not DaGAN++ — {what}"
    given = f"{source} {requested}" if source == "--arch" else f"{source} says arch {requested}"
    raise CheckpointError(f"{where}: this is {what}; use --arch {detected} ({given})")


def _max_features(channels: list[int], expansion: int, levels: int, default: int) -> int:
    """A ``max_features`` that rebuilds these channel counts, min(max_features, expansion·2^i).

    When no layer is clipped any value ≥ the widest layer gives the same network; the released default is
    kept then, so imported configs read like the official ones.
    """
    widest = max(channels)
    if widest < expansion * 2**levels:
        return widest
    return max(default, widest)


def _antialias_scale(state: Mapping[str, Any], key: str, channels: int, where: str) -> float:
    """The down-sampling scale 1/n of an anti-alias buffer: its kernel is 2·round(4σ)+1 = 4(n−1)+1 wide."""
    weight = state.get(key)
    if weight is None:
        return 1.0
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise CheckpointError(f"{where}: {key} is not an anti-alias kernel")
    size = int(weight.shape[-1])
    if size % 4 != 1 or size < 5:
        raise CheckpointError(f"{where}: {key} is a {size}×{size} kernel, not a 1/n anti-alias kernel")
    if weight.shape[0] != channels:
        raise CheckpointError(f"{where}: {key} blurs {weight.shape[0]} channels, expected {channels}")
    return 1.0 / ((size - 1) // 4 + 1)


def _hourglass_params(state: Mapping[str, Any], prefix: str, default_max: int, where: str) -> dict[str, int]:
    """block_expansion, num_blocks, max_features and input channels of an hourglass at ``prefix``."""
    blocks = _indices(state, f"{prefix}encoder.down_blocks.")
    if not blocks:
        raise CheckpointError(f"{where}: no '{prefix}encoder.down_blocks.*' weights")
    first = _shape(state, f"{prefix}encoder.down_blocks.0.conv.weight", where)
    last_up = _shape(state, f"{prefix}decoder.up_blocks.{len(blocks) - 1}.conv.weight", where)
    expansion = last_up[0]
    channels = [_shape(state, f"{prefix}encoder.down_blocks.{i}.conv.weight", where)[0] for i in blocks]
    return {
        "block_expansion": expansion,
        "num_blocks": len(blocks),
        "max_features": _max_features(channels, expansion, len(blocks), default_max),
        "in_features": first[1],
    }


@dataclass
class _Structure:
    """What the weights say about a reenactment model."""

    arch: str
    num_kp: int
    model_params: dict[str, Any]


def _kp_structure(kp: Mapping[str, Any], where: str) -> tuple[int, dict[str, Any]]:
    """(num_kp, kp_detector_params overrides) and estimate_jacobian inside the dict under ``_jacobian``."""
    num_kp = _shape(kp, "kp.weight", where)[0]
    hg = _hourglass_params(kp, "predictor.", 1024, where)
    in_features = hg["in_features"]
    if in_features not in (3, 4):
        raise CheckpointError(
            f"{where}: the keypoint detector takes {in_features} input channels; expected 4 (RGB + depth, "
            "DaGAN) or 3 (RGB, FOMM)"
        )
    jacobian = _shape(kp, "jacobian.weight", where)[0] if "jacobian.weight" in kp else None
    if jacobian is not None and jacobian != 4 * num_kp:
        raise CheckpointError(
            f"{where}: the Jacobian head has {jacobian} maps for {num_kp} keypoints (single_jacobian_map "
            "models are not supported)"
        )
    params = {
        "block_expansion": hg["block_expansion"],
        "max_features": hg["max_features"],
        "num_blocks": hg["num_blocks"],
        "scale_factor": _antialias_scale(kp, "down.weight", in_features, where),
        "use_depth": in_features == 4,
        "pad": 0,
        "temperature": 0.1,
    }
    return num_kp, {"params": params, "estimate_jacobian": jacobian is not None}


def _generator_structure(gen: Mapping[str, Any], arch: str, where: str) -> tuple[int, dict[str, Any]]:
    """(num_kp seen by the dense motion network, generator_params overrides)."""
    first = _shape(gen, "first.conv.weight", where)
    expansion, channels_in = first[0], first[1]
    if channels_in != 3:
        raise CheckpointError(
            f"{where}: the generator takes {channels_in}-channel images; only RGB is supported"
        )
    downs = _indices(gen, "down_blocks.")
    if not downs:
        raise CheckpointError(f"{where}: the generator has no 'down_blocks.*' weights")
    channels = [_shape(gen, f"down_blocks.{i}.conv.weight", where)[0] for i in downs]
    dm = _hourglass_params(gen, "dense_motion_network.hourglass.", 1024, where)
    motions, rem = divmod(dm["in_features"], channels_in + 1)
    if rem or motions < 2:
        raise CheckpointError(
            f"{where}: the dense motion network input ({dm['in_features']} channels) does not fit "
            "(K + 1) × (3 + 1)"
        )
    params: dict[str, Any] = {
        "block_expansion": expansion,
        "max_features": _max_features(channels, expansion, len(downs), 512),
        "num_down_blocks": len(downs),
        "estimate_occlusion_map": "dense_motion_network.occlusion.weight" in gen,
        "dense_motion_params": {
            "block_expansion": dm["block_expansion"],
            "max_features": dm["max_features"],
            "num_blocks": dm["num_blocks"],
            "scale_factor": _antialias_scale(gen, "dense_motion_network.down.weight", channels_in, where),
        },
    }
    if arch in ("dagan", "fomm"):
        params["num_bottleneck_blocks"] = len(_indices(gen, "bottleneck.r"))
    else:
        hidden = _shape(gen, "decoder.G_middle_0.norm_0.mlp_shared.0.weight", where)[0]
        if hidden != 128:
            raise CheckpointError(
                f"{where}: SPADE blocks with {hidden} hidden channels are not supported (128)"
            )
    return motions - 1, params


def _discriminator_structure(disc: Mapping[str, Any], num_kp: int, where: str) -> dict[str, Any]:
    names = sorted({k.split(".")[1] for k in disc if k.startswith("discs.") and k.count(".") >= 2})
    if not names:
        raise CheckpointError(f"{where}: no 'discs.<scale>.*' weights")
    try:
        scales = sorted((float(n.replace("-", ".")) for n in names), reverse=True)
    except ValueError:
        raise CheckpointError(f"{where}: unreadable discriminator scales {names}") from None
    prefix = f"discs.{names[0]}."
    blocks = _indices(disc, f"{prefix}down_blocks.")
    sn = f"{prefix}down_blocks.0.conv.weight_orig" in disc
    conv = "conv.weight_orig" if sn else "conv.weight"
    first = _shape(disc, f"{prefix}down_blocks.0.{conv}", where)
    channels = [_shape(disc, f"{prefix}down_blocks.{i}.{conv}", where)[0] for i in blocks]
    expansion = channels[0] // 2
    extra = first[1] - 3
    if extra not in (0, num_kp):
        raise CheckpointError(
            f"{where}: the discriminator sees {extra} keypoint maps but the keypoint detector has "
            f"{num_kp} keypoints"
        )
    return {
        "scales": scales,
        "block_expansion": expansion,
        "max_features": _max_features(channels, expansion, len(blocks), 512),
        "num_blocks": len(blocks),
        "sn": sn,
        "use_kp": extra > 0,
    }


def _structure(
    generator: Mapping[str, Any],
    kp_detector: Mapping[str, Any],
    discriminator: Mapping[str, Any] | None,
    where: str,
) -> _Structure:
    arch = detect_generator_arch(generator, where)
    num_kp, kp = _kp_structure(kp_detector, where)
    gen_kp, gen = _generator_structure(generator, arch, where)
    if gen_kp != num_kp:
        raise CheckpointError(
            f"{where}: the generator was trained with {gen_kp} keypoints but the keypoint detector has "
            f"{num_kp} "
            "— the two files come from different models"
        )
    if arch != "fomm" and not kp["params"]["use_depth"]:
        raise CheckpointError(
            f"{where}: the keypoint detector is a FOMM one (RGB input) but the generator is "
            f"{_SHORT_NAMES[arch]}; DaGAN's detector takes RGB + depth (4 channels)"
        )
    model_params: dict[str, Any] = {
        "arch": arch,
        "align_corners": False,
        "common_params": {"num_kp": num_kp, "num_channels": 3, "estimate_jacobian": kp["estimate_jacobian"]},
        "kp_detector_params": kp["params"],
        "generator_params": gen,
    }
    if discriminator is not None:
        model_params["discriminator_params"] = _discriminator_structure(discriminator, num_kp, where)
    return _Structure(arch, num_kp, model_params)


def infer_official_config(
    generator: Mapping[str, Any],
    kp_detector: Mapping[str, Any],
    discriminator: Mapping[str, Any] | None = None,
    *,
    depth_backbone: str = "resnet18",
    depth_scales: int = 4,
    resolution: int = OFFICIAL_RESOLUTION,
    where: str = "checkpoint",
) -> Config:
    """The :class:`Config` of official-format weights: the released ``vox-adv-256`` training settings with
    everything the weights determine (arch, keypoints, widths, block counts, anti-alias scales, discriminator)
    read from their keys and shapes. ``generator`` etc. are prefix-free state dicts."""
    st = _structure(generator, kp_detector, discriminator, where)
    overrides = {
        "dataset_params": {"frame_shape": [resolution, resolution, 3]},
        "model_params": {
            **st.model_params,
            # Monodepth2 trains with a fixed camera and no uncertainty head (the CVPR FDN).
            "depth_params": {
                "backbone": depth_backbone,
                "uncertainty": False,
                "learn_intrinsics": False,
                "num_scales": depth_scales,
                "checkpoint": None,
            },
        },
    }
    try:
        return config_from_dict(deep_merge(Config().to_dict(), overrides))
    except ConfigError as exc:
        raise CheckpointError(f"{where}: the weights describe an unsupported model ({exc})") from None


# --------------------------------------------------------------------------- official reenactment files


@dataclass
class OfficialReenactment:
    """Prefix-free state dicts of an official reenactment model and where they came from."""

    generator: dict[str, Any]
    kp_detector: dict[str, Any]
    discriminator: dict[str, Any] | None
    epoch: int | None
    source: str
    files: list[Path]
    prefixed: bool = False
    other_entries: list[str] = field(default_factory=list)


def read_torch_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` of a file that looks like a PyTorch file (a zip archive or a pickle).

    The header check gives text, images and other foreign files a message that says so, instead of the
    unpickler's complaint about the first bytes it could not interpret.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            head = fh.read(4)
        if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint (neither a torch.save zip nor a pickle)"
            )
    return safe_torch_load(path)


class _MissingCompanion(CheckpointError):
    """A per-module file whose generator / kp_detector companion is not beside it."""


def _not_reenactment(path: Path, kind: str | None, obj: Any = None) -> CheckpointError:
    """The message for a file that is something else than an official reenactment checkpoint."""
    if kind == "dagan":
        what = f"a dagan {obj.get('kind', '')} checkpoint".replace("  ", " ")
        return CheckpointError(f"{path} is already {what}; it needs no import")
    if kind in ("depth_encoder", "depth_decoder", "pose_encoder", "pose_decoder"):
        return CheckpointError(
            f"{path} is a Monodepth2 {kind.replace('_', ' ')} file, not a reenactment checkpoint; pass its "
            f"folder {path.parent} as the depth model (--depth-checkpoint / --depth) and the DaGAN .pth.tar "
            "as --checkpoint"
        )
    if kind == "optimizer":
        return CheckpointError(
            f"{path} is an optimizer state (no model weights), not a reenactment checkpoint"
        )
    if kind == "resnet":
        return CheckpointError(f"{path} holds ImageNet-style ResNet weights, not a reenactment checkpoint")
    return CheckpointError(
        f"{path} is not a DaGAN checkpoint: expected a training dict with 'generator' and 'kp_detector' or "
        "per-module generator / kp_detector state dicts"
    )


def _is_depth_folder(path: Path) -> bool:
    return (path / DEPTH_ENCODER_FILE).is_file() or (path / DEPTH_DECODER_FILE).is_file()


def _candidate_files(folder: Path, exclude: set[Path]) -> list[Path]:
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p not in exclude
        and p.name not in MONODEPTH2_FILES
        and any(p.name.endswith(s) for s in _WEIGHT_SUFFIXES)
    ]
    return files


def _find_modules(folder: Path, found: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Add per-module files of ``folder`` to ``found`` (role → (path, state)), trying likely names first."""
    hints = {"generator": ("gen",), "kp_detector": ("kp",), "discriminator": ("disc",)}
    files = _candidate_files(folder, {p for p, _ in found.values()})
    named = [p for p in files if any(h in p.name.lower() for hs in hints.values() for h in hs)]
    ordered = named + [p for p in files if p not in named]
    for path in ordered:
        if {"generator", "kp_detector", "discriminator"} <= set(found):
            break
        try:
            obj = read_torch_file(path)
        except CheckpointError:  # an unrelated or unsafe file beside the weights is skipped, never loaded
            continue
        kind = classify_state_dict(obj)
        if kind in MODULE_ENTRIES and kind not in found:
            found[kind] = (path, strip_prefixes(obj))


def read_official_reenactment(path: str | Path) -> OfficialReenactment:
    """Read an official training checkpoint, a per-module state-dict file (its companions are found in the
    same folder) or a folder of per-module files. Otherwise raise :class:`CheckpointError` saying what the
    file is."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    if path.is_dir():
        if _is_depth_folder(path):
            raise CheckpointError(
                f"{path} is a Monodepth2 depth folder, not a reenactment checkpoint; pass it as the depth "
                "model (--depth-checkpoint / --depth) and the DaGAN .pth.tar as --checkpoint"
            )
        _find_modules(path, found)
        if not found:
            raise CheckpointError(f"{path} is a folder without DaGAN generator / kp_detector state dicts")
        folder = path
    else:
        obj = read_torch_file(path)
        kind = classify_state_dict(obj)
        if kind == "official-training":
            return _from_training_dict(path, obj)
        if kind not in MODULE_ENTRIES:
            raise _not_reenactment(path, kind, obj)
        found[kind] = (path, strip_prefixes(obj))
        _find_modules(path.parent, found)
        folder = path.parent
    for role in ("generator", "kp_detector"):
        if role not in found:
            raise _MissingCompanion(
                f"{path}: found no {role} state dict beside it in {folder} (per-module official weights need "
                "both generator and kp_detector files)"
            )
    files = [found[r][0] for r in MODULE_ENTRIES if r in found]
    return OfficialReenactment(
        generator=found["generator"][1],
        kp_detector=found["kp_detector"][1],
        discriminator=found["discriminator"][1] if "discriminator" in found else None,
        epoch=None,
        source="official DaGAN per-module state dicts",
        files=files,
    )


def _from_training_dict(path: Path, obj: Mapping[str, Any]) -> OfficialReenactment:
    states: dict[str, dict[str, Any]] = {}
    prefixed = False
    for role in MODULE_ENTRIES:
        value = obj.get(role)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise CheckpointError(f"{path}: entry {role!r} is not a state dict")
        prefixed = prefixed or any(str(k).startswith("module.") for k in value)
        states[role] = strip_prefixes({str(k): v for k, v in value.items()})
    for role in ("generator", "kp_detector"):
        if role not in states:
            raise CheckpointError(f"{path}: the training checkpoint has no {role!r} entry")
    epoch = obj.get("epoch")
    return OfficialReenactment(
        generator=states["generator"],
        kp_detector=states["kp_detector"],
        discriminator=states.get("discriminator"),
        epoch=int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        source="official DaGAN training checkpoint",
        files=[path],
        prefixed=prefixed,
        other_entries=sorted(str(k) for k in obj if k not in MODULE_ENTRIES and k != "epoch"),
    )


# --------------------------------------------------------------------------- Monodepth2 depth folders


@dataclass
class OfficialDepth:
    """A Monodepth2 depth folder, read: tensor-only state dicts plus the encoder's recorded training size."""

    folder: Path
    backbone: str
    encoder: dict[str, Tensor]
    decoder: dict[str, Tensor]
    num_scales: int
    height: int | None
    width: int | None
    use_stereo: bool | None
    pose_encoder: dict[str, Tensor] | None = None
    pose_decoder: dict[str, Tensor] | None = None
    pose_backbone: str | None = None
    files: list[Path] = field(default_factory=list)


def _monodepth2_folders(root: Path, depth: int = 2) -> list[Path]:
    """Folders at most ``depth`` levels below ``root`` (itself included) that hold an ``encoder.pth``."""
    found = [root] if (root / DEPTH_ENCODER_FILE).is_file() else []
    if depth > 0 and not found:
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            found += _monodepth2_folders(child, depth - 1)
    return found


def _natural(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def resolve_depth_folder(path: str | Path) -> Path:
    """The Monodepth2 folder meant by ``path``: the folder itself, the folder of a file in it, or the single
    ``weights_N`` folder below it. Several candidates or none give a one-line error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"depth model not found: {path}")
    if path.is_file():
        if path.name in MONODEPTH2_FILES:
            return path.parent
        raise CheckpointError(
            f"{path} is a file; an official depth model is a Monodepth2 folder holding {DEPTH_ENCODER_FILE} "
            f"and {DEPTH_DECODER_FILE} (e.g. depth/models/weights_19)"
        )
    folders = _monodepth2_folders(path)
    if not folders:
        raise CheckpointError(
            f"{path} holds no Monodepth2 depth model ({DEPTH_ENCODER_FILE} + {DEPTH_DECODER_FILE} in it "
            "or in a weights_N folder below it)"
        )
    if len(folders) > 1:
        folders.sort(key=_natural)
        raise CheckpointError(
            f"{path} holds {len(folders)} Monodepth2 depth models ({folders[0].name} … {folders[-1].name}); "
            f"pass one of them, e.g. {folders[-1]}"
        )
    return folders[0]


def _tensor_state(obj: Any, path: Path, expected: str) -> dict[str, Any]:
    kind = classify_state_dict(obj)
    if kind != expected:
        names = {
            "depth_encoder": "a depth encoder",
            "depth_decoder": "a depth decoder",
            "pose_encoder": "a pose encoder",
            "pose_decoder": "a pose decoder",
        }
        found = names.get(kind or "", f"a {kind.replace('_', ' ')}" if kind else "something else")
        raise CheckpointError(f"{path} should be {names[expected]} (Monodepth2 layout) but holds {found}")
    return {str(k): v for k, v in obj.items()}


def read_depth_folder(path: str | Path) -> OfficialDepth:
    """Read ``encoder.pth`` + ``depth.pth`` (+ ``pose_encoder.pth`` + ``pose.pth`` when both exist).

    Non-tensor entries (``height``, ``width``, ``use_stereo``) are kept aside and the unused ImageNet
    classifier ``encoder.fc.*`` is dropped; the backbone comes from the keys.
    """
    folder = resolve_depth_folder(path)
    enc_path, dec_path = folder / DEPTH_ENCODER_FILE, folder / DEPTH_DECODER_FILE
    if not dec_path.is_file():
        raise CheckpointError(
            f"{folder} has {DEPTH_ENCODER_FILE} but no {DEPTH_DECODER_FILE} (the depth decoder); a "
            "Monodepth2 depth folder needs both"
        )
    raw_enc = _tensor_state(strip_prefixes(read_torch_file(enc_path)), enc_path, "depth_encoder")
    raw_dec = _tensor_state(strip_prefixes(read_torch_file(dec_path)), dec_path, "depth_decoder")
    backbone = detect_backbone(raw_enc)
    disp = [i for i in _indices(raw_dec, "decoder.") if i >= 10]
    height, width, stereo = raw_enc.get("height"), raw_enc.get("width"), raw_enc.get("use_stereo")
    depth = OfficialDepth(
        folder=folder,
        backbone=backbone,
        encoder=monodepth2_encoder_state(raw_enc),
        decoder={k: v for k, v in raw_dec.items() if isinstance(v, Tensor)},
        num_scales=max(1, min(4, len(disp))),
        height=int(height) if isinstance(height, int) else None,
        width=int(width) if isinstance(width, int) else None,
        use_stereo=bool(stereo) if isinstance(stereo, (bool, int)) else None,
        files=[enc_path, dec_path],
    )
    pe_path, pd_path = folder / POSE_ENCODER_FILE, folder / POSE_DECODER_FILE
    if pe_path.is_file() and pd_path.is_file():
        pose_enc = _tensor_state(strip_prefixes(read_torch_file(pe_path)), pe_path, "pose_encoder")
        depth.pose_encoder = monodepth2_encoder_state(pose_enc)
        depth.pose_decoder = monodepth2_pose_decoder_state(
            _tensor_state(strip_prefixes(read_torch_file(pd_path)), pd_path, "pose_decoder")
        )
        depth.pose_backbone = detect_backbone(pose_enc)
        depth.files += [pe_path, pd_path]
    return depth


def _backbone_mismatch(found: str, expected: str, source: str) -> CheckpointError:
    return CheckpointError(
        f"depth encoder is {_pretty_backbone(found)} but {source} {_pretty_backbone(expected)} — use the "
        f"{_pretty_backbone(expected)} depth model it was trained with"
    )


def _depth_net_from(depth: OfficialDepth) -> FaceDepthNet:
    net = FaceDepthNet(depth.backbone, num_scales=depth.num_scales)
    load_depth_net_state(net, depth.encoder, depth.decoder)
    return net.eval()


def load_official_depth_net(
    path: str | Path, expected_backbone: str | None = None, source: str = "the checkpoint was trained with"
) -> FaceDepthNet:
    """The face depth net (eval mode) of a Monodepth2 depth folder.

    With ``expected_backbone`` (e.g. the backbone a reenactment checkpoint was trained with), a depth model
    of another backbone is refused with "depth encoder is ResNet-50 but the checkpoint was trained with
    ResNet-18".
    """
    depth = read_depth_folder(path)
    if expected_backbone is not None and depth.backbone != expected_backbone:
        raise _backbone_mismatch(depth.backbone, expected_backbone, source)
    return _depth_net_from(depth)


# --------------------------------------------------------------------------- building models


def _complete_counters(module: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """Fill BatchNorm ``num_batches_tracked`` counters missing from files written by old PyTorch versions."""
    out = dict(state)
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = value
    return out


def _load_into(module: nn.Module, state: Mapping[str, Any], name: str, source: Path | str) -> None:
    load_module_state(module, _complete_counters(module, state), name, source)


def _check_config(cfg: Config, inferred: Config, where: str, depth_backbone: str | None) -> None:
    """Clear messages for a user config that does not describe these files (strict loading does the rest)."""
    check_arch(inferred.arch, cfg.arch, where, source="the config")
    have, want = inferred.model_params.common_params.num_kp, cfg.model_params.common_params.num_kp
    if have != want:
        raise CheckpointError(
            f"{where}: the checkpoint has {have} keypoints but the config says {want} "
            "(model_params.common_params.num_kp)"
        )
    expected = cfg.model_params.depth_params.backbone
    if depth_backbone is not None and depth_backbone != expected:
        raise _backbone_mismatch(
            depth_backbone, expected, "the config (model_params.depth_params.backbone) expects"
        )


def load_any_depth_net(
    path: str | Path, expected_backbone: str | None = None, source: str = "the checkpoint was trained with"
) -> FaceDepthNet:
    """The face depth net (eval mode) of a Monodepth2 depth folder (or a file in it) or of one of our depth /
    reenactment checkpoints — one entry point for ``--depth-checkpoint``.

    With ``expected_backbone`` a depth model of another backbone is refused with a message such as
    "depth encoder is ResNet-50 but the checkpoint was trained with ResNet-18".
    """
    net, backbone, _ = _resolve_depth(path)
    if expected_backbone is not None and backbone != expected_backbone:
        raise _backbone_mismatch(backbone, expected_backbone, source)
    return net


def _resolve_depth(depth_path: str | Path) -> tuple[FaceDepthNet, str, OfficialDepth | None]:
    """Depth net from a Monodepth2 folder or from one of our depth/reenactment checkpoint files."""
    p = Path(depth_path)
    if p.is_file() and p.name not in MONODEPTH2_FILES:
        obj = read_torch_file(p)
        kind = classify_state_dict(obj)
        if kind == "dagan":
            from dagan.models.loading import load_depth_net

            net = load_depth_net(p)
            return net, net.backbone, None
        if kind == "official-training" or kind in MODULE_ENTRIES:
            raise CheckpointError(
                f"{p} is an official DaGAN reenactment checkpoint, not a depth model; the depth model is the "
                "Monodepth2 folder with encoder.pth and depth.pth"
            )
    depth = read_depth_folder(p)
    return _depth_net_from(depth), depth.backbone, depth


def load_official_reenactment(
    checkpoint_path: str | Path,
    depth_path: str | Path | None = None,
    arch: str | None = None,
    *,
    config: Config | None = None,
    resolution: int = OFFICIAL_RESOLUTION,
) -> tuple[Config, ReenactmentModels]:
    """Load official DaGAN weights (training dict or per-module files) and their depth folder, in eval mode.

    ``arch`` (``--arch``) must match the generator in the file, otherwise the message names the right one.
    ``depth_path`` is the Monodepth2 folder (or one of our depth checkpoints); the official DaGAN cannot run
    without it. With ``config`` the models are built from that config, and a file that does not fit it
    (arch, keypoints, depth backbone, shapes) is refused with a message saying what it is; otherwise the
    config is inferred from the files (:func:`infer_official_config`).
    """
    cfg, models, _ = _load_official(checkpoint_path, depth_path, arch, config, resolution)
    return cfg, models


def _load_official(
    checkpoint_path: str | Path,
    depth_path: str | Path | None,
    arch: str | None,
    config: Config | None,
    resolution: int,
) -> tuple[Config, ReenactmentModels, OfficialReenactment]:
    checkpoint_path = Path(checkpoint_path)
    where = str(checkpoint_path)
    official = read_official_reenactment(checkpoint_path)
    detected = detect_generator_arch(official.generator, where)
    check_arch(detected, arch, where)
    # Files that do not belong together are named before the depth model is even looked at.
    _structure(official.generator, official.kp_detector, official.discriminator, where)
    depth_net: FaceDepthNet | None = None
    backbone: str | None = None
    if detected != "fomm" or _kp_structure(official.kp_detector, where)[1]["params"]["use_depth"]:
        if depth_path is None:
            raise CheckpointError(
                f"{where}: the official DaGAN needs its depth model — pass the Monodepth2 depth folder "
                "(encoder.pth + depth.pth, e.g. depth/models/weights_19) with --depth-checkpoint DIR"
            )
        depth_net, backbone, _ = _resolve_depth(depth_path)
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
                f"depth encoder is {_pretty_backbone(backbone)}; the released DaGAN checkpoints were trained "
                "with the ResNet-18 depth model (weights_19) — use this one only with a generator trained "
                "on it",
                OfficialPairingWarning,
                stacklevel=3,
            )
    if depth_net is not None:  # one of our depth checkpoints may hold a narrow net: describe the one loaded
        from dagan.models.loading import describe_depth_net

        describe_depth_net(cfg, depth_net)
    # Built piecewise: the depth net comes from the depth files, so none is built just to be replaced.
    models = ReenactmentModels(
        kp_detector=build_kp_detector(cfg),
        generator=build_generator(cfg),
        discriminator=build_discriminator(cfg) if official.discriminator is not None else None,
        depth_net=depth_net,
    )
    _load_into(models.kp_detector, official.kp_detector, "kp_detector", where)
    _load_into(models.generator, official.generator, "generator", where)
    if models.discriminator is not None and official.discriminator is not None:
        _load_into(models.discriminator, official.discriminator, "discriminator", where)
    return cfg, models.eval(), official


# --------------------------------------------------------------------------- conversion


def import_official(
    checkpoint_path: str | Path,
    depth_path: str | Path | None,
    output: str | Path,
    arch: str | None = None,
    *,
    config: Config | None = None,
) -> Path:
    """Convert official weights (+ depth folder) into our self-describing reenactment checkpoint.

    The official optimizer states are not carried over (their parameter order is the official code's); the
    epoch is kept and ``meta.imported_from`` records the source files.
    """
    cfg, models, official = _load_official(checkpoint_path, depth_path, arch, config, OFFICIAL_RESOLUTION)
    modules: dict[str, nn.Module] = {"kp_detector": models.kp_detector, "generator": models.generator}
    if models.discriminator is not None:
        modules["discriminator"] = models.discriminator
    if models.depth_net is not None:
        modules["depth_net"] = models.depth_net
    meta = {
        "imported_from": {
            "format": official.source,
            "checkpoint": [str(p) for p in official.files],
            "depth": str(depth_path) if depth_path is not None else "",
            "epoch": official.epoch if official.epoch is not None else -1,
        }
    }
    return save_checkpoint(
        output,
        kind="reenactment",
        config=cfg.to_dict(),
        modules=modules,
        epoch=official.epoch or 0,
        step=0,
        rng=False,
        meta=meta,
    )


def _depth_config(depth: OfficialDepth) -> Config:
    size = depth.height if depth.height and depth.height == depth.width else OFFICIAL_RESOLUTION
    overrides = {
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


def import_official_depth(depth_path: str | Path, output: str | Path) -> Path:
    """Convert a Monodepth2 depth folder into our depth checkpoint (``depth_net``, plus ``pose_net`` when the
    folder has pose files of the same backbone)."""
    depth = read_depth_folder(depth_path)
    cfg = _depth_config(depth)
    modules: dict[str, nn.Module] = {"depth_net": _depth_net_from(depth)}
    if (
        depth.pose_encoder is not None
        and depth.pose_decoder is not None
        and depth.pose_backbone == depth.backbone
    ):
        pose: PoseNet = build_pose_net(cfg)
        _load_into(
            pose,
            {
                **{f"encoder.{k}": v for k, v in depth.pose_encoder.items()},
                **{f"decoder.{k}": v for k, v in depth.pose_decoder.items()},
            },
            "pose_net",
            depth.folder,
        )
        modules["pose_net"] = pose
    meta = {"imported_from": {"format": "Monodepth2 depth folder", "depth": str(depth.folder)}}
    return save_checkpoint(
        output, kind="depth", config=cfg.to_dict(), modules=modules, epoch=0, step=0, rng=False, meta=meta
    )


# --------------------------------------------------------------------------- describing any checkpoint


@dataclass
class CheckpointDescription:
    """What a checkpoint file (or depth folder) is, in the terms a user needs."""

    path: str
    format: str
    what: str
    kind: str | None = None
    arch: str | None = None
    num_kp: int | None = None
    resolution: int | None = None
    resolution_note: str = ""
    depth_backbone: str | None = None
    depth_note: str = ""
    parameters: dict[str, int] = field(default_factory=dict)
    epoch: int | None = None
    step: int | None = None
    notes: list[str] = field(default_factory=list)
    usable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """Human-readable report, one fact per line."""
        out = [str(self.path), f"  is          {self.what}"]
        if self.arch:
            out.append(f"  arch        {self.arch}")
        if self.num_kp is not None:
            out.append(f"  keypoints   {self.num_kp}")
        if self.resolution is not None:
            note = f" ({self.resolution_note})" if self.resolution_note else ""
            out.append(f"  resolution  {self.resolution}×{self.resolution}{note}")
        if self.depth_backbone or self.depth_note:
            backbone = _pretty_backbone(self.depth_backbone) if self.depth_backbone else ""
            sep = " — " if backbone and self.depth_note else ""
            out.append(f"  depth       {backbone}{sep}{self.depth_note}")
        if self.epoch is not None or self.step is not None:
            parts = []
            if self.epoch is not None:
                parts.append(f"epoch {self.epoch}")
            parts.append(f"step {self.step}" if self.step is not None else "steps not stored")
            out.append(f"  trained     {', '.join(parts)}")
        if self.parameters:
            out.append("  parameters")
            width = max(len(k) for k in self.parameters)
            for name, count in self.parameters.items():
                out.append(f"    {name:<{width}}  {count:>12,}")
        for note in self.notes:
            out.append(f"  note        {note}")
        return out


def _with_total(params: dict[str, int]) -> dict[str, int]:
    if len(params) > 1:
        params = {**params, "total": sum(params.values())}
    return params


def _describe_ours(path: Path, obj: Mapping[str, Any]) -> CheckpointDescription:
    kind = str(obj.get("kind", "?"))
    modules = obj.get("modules", {}) or {}
    params = _with_total(
        {name: count_state_parameters(s) for name, s in modules.items() if isinstance(s, Mapping)}
    )
    config = obj.get("config", {}) or {}
    mp = config.get("model_params", {}) or {}
    arch = obj.get("arch") or mp.get("arch")
    frame = (config.get("dataset_params", {}) or {}).get("frame_shape") or [None]
    backbone = None
    if isinstance(modules.get("depth_net"), Mapping):
        try:
            backbone = detect_backbone(strip_prefixes(modules["depth_net"]))
        except CheckpointError:
            backbone = None
    dp = mp.get("depth_params", {}) or {}
    version = obj.get("format_version")
    desc = CheckpointDescription(
        path=str(path),
        format="dagan",
        what=f"a dagan {kind} checkpoint (format {version})",
        kind=kind,
        arch=arch if kind == "reenactment" else None,
        num_kp=(mp.get("common_params", {}) or {}).get("num_kp") if kind == "reenactment" else None,
        resolution=frame[0],
        resolution_note="from the stored config",
        depth_backbone=backbone,
        parameters=params,
        epoch=obj.get("epoch"),
        step=obj.get("step"),
    )
    if kind == "depth":
        desc.depth_note = (
            "with uncertainty head (FDN++)" if dp.get("uncertainty") else "no uncertainty head (FDN)"
        )
        desc.depth_note += "; pose net included" if "pose_net" in modules else "; no pose net"
    elif kind == "reenactment" and backbone is None:
        desc.depth_note = "no depth net (depth-free model)" if arch == "fomm" else "depth net missing"
    if backbone and dp.get("backbone") and dp.get("backbone") != backbone:
        desc.notes.append(
            f"stored config says {_pretty_backbone(dp.get('backbone'))} but the depth weights are "
            f"{_pretty_backbone(backbone)}"
        )
    if isinstance(version, int) and version > FORMAT_VERSION:
        desc.notes.append(
            f"format {version} is newer than this dagan reads ({FORMAT_VERSION}); upgrade dagan"
        )
        desc.usable = False
    imported = (obj.get("meta", {}) or {}).get("imported_from")
    if isinstance(imported, Mapping):
        files = imported.get("checkpoint") or imported.get("depth")
        files = ", ".join(files) if isinstance(files, list) else files
        desc.notes.append(f"imported from the {imported.get('format', 'official')} {files}")
    dagan_version = (obj.get("meta", {}) or {}).get("dagan_version")
    if dagan_version:
        desc.notes.append(f"written by dagan {dagan_version}")
    return desc


def _describe_official(path: Path) -> CheckpointDescription:
    official = read_official_reenactment(path)
    where = str(path)
    st = _structure(official.generator, official.kp_detector, official.discriminator, where)
    params = {
        "generator": count_state_parameters(official.generator),
        "kp_detector": count_state_parameters(official.kp_detector),
    }
    if official.discriminator is not None:
        params["discriminator"] = count_state_parameters(official.discriminator)
    is_training = official.source.endswith("training checkpoint")
    what = f"an {official.source}: {_GENERATOR_NAMES[st.arch]}"
    if not is_training:
        what += " — " + ", ".join(p.name for p in official.files)
    desc = CheckpointDescription(
        path=str(path),
        format="official-training" if is_training else "official-modules",
        what=what,
        kind="reenactment",
        arch=st.arch,
        num_kp=st.num_kp,
        resolution=OFFICIAL_RESOLUTION,
        resolution_note="the official release; not stored in the file",
        depth_note=(
            "not included — needs the Monodepth2 depth folder (--depth-checkpoint DIR; the released "
            "checkpoints were trained with the ResNet-18 weights_19)"
        )
        if st.arch != "fomm"
        else "none needed",
        parameters=_with_total(params),
        epoch=official.epoch,
    )
    if official.prefixed:
        desc.notes.append("keys carry DDP 'module.' prefixes (stripped on load)")
    if official.other_entries:
        desc.notes.append("also holds " + ", ".join(official.other_entries) + " (not imported)")
    if official.discriminator is None:
        desc.notes.append("no discriminator: enough for inference, not for resuming GAN training")
    desc.notes.append(
        f"use: dagan animate --checkpoint {path} --depth-checkpoint DIR …, or convert with "
        f"dagan import-official --checkpoint {path} --depth DIR -o OUT.pt"
    )
    return desc


def _describe_depth_folder(path: Path) -> CheckpointDescription:
    depth = read_depth_folder(path)
    params = {
        "depth_encoder": count_state_parameters(depth.encoder),
        "depth_decoder": count_state_parameters(depth.decoder),
    }
    if depth.pose_encoder is not None and depth.pose_decoder is not None:
        params["pose_encoder"] = count_state_parameters(depth.pose_encoder)
        params["pose_decoder"] = count_state_parameters(depth.pose_decoder)
    square = depth.height is not None and depth.height == depth.width
    trained = f"trained at {depth.width}×{depth.height}" if depth.height and depth.width else ""
    notes = []
    if depth.backbone == "resnet18":
        notes.append("ResNet-18 is the depth the released DaGAN checkpoints were trained with (weights_19)")
    elif depth.backbone == "resnet50":
        notes.append(
            "ResNet-50 (the VoxCeleb2 depth model) — the released DaGAN checkpoints expect ResNet-18"
        )
    if depth.pose_encoder is None:
        notes.append("no pose net files (pose_encoder.pth + pose.pth): enough for inference")
    notes.append(
        f"use: --depth-checkpoint {depth.folder}, or convert with dagan import-official --depth "
        f"{depth.folder} -o OUT.pt"
    )
    return CheckpointDescription(
        path=str(depth.folder),
        format="monodepth2-folder",
        what=f"a Monodepth2 depth folder ({', '.join(p.name for p in depth.files)})",
        kind="depth",
        resolution=depth.height if square else None,
        resolution_note="the depth model's training size (encoder.pth height/width)" if square else "",
        depth_backbone=depth.backbone,
        depth_note=(
            f"{depth.num_scales} disparity scales"
            + (f", {trained}" if trained and not square else "")
            + (", stereo" if depth.use_stereo else "")
        ),
        parameters=_with_total(params),
        notes=notes,
    )


_FILE_WHAT = {
    "depth_encoder": "a Monodepth2 depth encoder (encoder.pth)",
    "depth_decoder": "a Monodepth2 depth decoder (depth.pth)",
    "pose_encoder": "a Monodepth2 pose encoder (pose_encoder.pth)",
    "pose_decoder": "a Monodepth2 pose decoder (pose.pth)",
    "optimizer": "an optimizer state (no model weights)",
    "resnet": "ImageNet-style ResNet weights (torchvision layout)",
}


def describe_checkpoint(path: str | Path) -> CheckpointDescription:
    """Say what ``path`` is: one of our checkpoints, an official training checkpoint, an official per-module
    file, a Monodepth2 depth folder (or one of its files), or an unknown PyTorch file (``usable`` False).

    Missing, corrupt and unsafe files (non-tensor Python objects) raise :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        if _is_depth_folder(path) or _monodepth2_folders(path):
            return _describe_depth_folder(path)  # several weights_N below: resolve_depth_folder says so
        return _describe_official(path)
    obj = read_torch_file(path)
    kind = classify_state_dict(obj)
    if kind == "dagan":
        return _describe_ours(path, obj)
    if kind == "official-training" or kind in MODULE_ENTRIES:
        if kind in MODULE_ENTRIES:
            try:
                return _describe_official(path)
            except _MissingCompanion:
                return _describe_single_module(path, kind, strip_prefixes(obj))
        return _describe_official(path)
    if (
        kind in ("depth_encoder", "depth_decoder", "pose_encoder", "pose_decoder")
        and path.name in MONODEPTH2_FILES
    ):
        desc = _describe_depth_folder(path.parent)
        desc.notes.insert(0, f"{path.name} is {_FILE_WHAT[kind]}, part of this folder")
        return desc
    if kind is not None:
        state = strip_prefixes(obj) if kind not in ("optimizer",) else {}
        params = {kind: count_state_parameters(state)} if state else {}
        backbone = None
        if kind in ("depth_encoder", "pose_encoder", "resnet"):
            backbone = detect_backbone(state)
        return CheckpointDescription(
            path=str(path),
            format="state-dict",
            what=_FILE_WHAT[kind],
            kind=kind,
            depth_backbone=backbone,
            parameters=params,
            usable=False,
        )
    what = f"a PyTorch file holding a {type(obj).__name__}"
    if isinstance(obj, Mapping):
        keys = ", ".join(sorted(str(k) for k in list(obj)[:8]))
        what += f" with keys {keys}" + (" …" if len(obj) > 8 else "")
    return CheckpointDescription(
        path=str(path),
        format="unknown",
        what=what + " — not a dagan, official DaGAN or Monodepth2 checkpoint",
        usable=False,
    )


def _describe_single_module(path: Path, kind: str, state: dict[str, Any]) -> CheckpointDescription:
    """A lone per-module file whose companions are missing."""
    desc = CheckpointDescription(
        path=str(path),
        format="official-module",
        what="",
        kind=kind,
        parameters={kind: count_state_parameters(state)},
    )
    if kind == "generator":
        arch = detect_generator_arch(state, str(path))
        desc.arch = arch
        desc.num_kp = _generator_structure(state, arch, str(path))[0]
        desc.what = f"an official per-module {_GENERATOR_NAMES[arch]}"
    elif kind == "kp_detector":
        num_kp, kp = _kp_structure(state, str(path))
        desc.num_kp = num_kp
        inputs = "RGB + depth" if kp["params"]["use_depth"] else "RGB"
        desc.what = f"an official per-module keypoint detector ({inputs} input)"
    else:
        desc.what = "an official per-module discriminator"
    desc.notes.append("no companion generator / kp_detector file beside it: both are needed to animate")
    desc.usable = False
    return desc
