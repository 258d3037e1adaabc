"""The architecture of official DaGAN / FOMM weights, read from their keys and shapes.

The official checkpoints store no config, and their file names say nothing reliable, so everything a model is
built from is read from the state dicts:

* the generator kind: ``decoder.*`` keys = the SPADE DaGAN generator, ``bottleneck.*`` = the plain DaGAN
  generator; without the depth branch (``src_first.*`` / ``AttnModule.*``) it is the FOMM generator;
* the number of keypoints (rows of ``kp.weight``) and whether a Jacobian head exists (``jacobian.weight``,
  4 maps per keypoint); the keypoint detector's input channels (4 = RGB + depth, DaGAN; 3 = RGB, FOMM);
* widths and block counts of every hourglass and of the generator's down-sampling path, and ``max_features``
  (the width at which channel doubling stops);
* the anti-alias down-sampling scale 1/n from the blur kernel size, which is 2·round(4σ)+1 = 4(n−1)+1;
* the discriminator's scales, width, spectral norm (``weight_orig`` keys) and keypoint input.

:func:`infer_official_config` turns this into a :class:`~dagan.config.Config`: the released ``vox-adv-256``
training settings plus what the weights say, so the models run exactly the official numerics (raw disparity,
4-channel keypoint input, padding-0 heads, corner-aligned grids sampled with ``align_corners=False``, stored
spectral-norm vectors). The released checkpoints are 256×256; the resolution is not stored in them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from dagan.config import OFFICIAL_DAGAN_ARCHS, Config, ConfigError, config_from_dict, deep_merge
from dagan.errors import CheckpointError

#: The released checkpoints are 256×256; the resolution is not stored in them.
OFFICIAL_RESOLUTION = 256

_SHORT_NAMES = {
    "dagan": "a plain DaGAN generator",
    "dagan-spade": "a SPADE generator",
    "fomm": "a FOMM generator",
}


def pretty_backbone(name: str | None) -> str:
    """resnet18 → ResNet-18."""
    if not name:
        return "none"
    match = re.fullmatch(r"resnet(\d+)", name)
    return f"ResNet-{match.group(1)}" if match else name


# --------------------------------------------------------------------------- keys and shapes


def key_indices(state: Mapping[str, Any], prefix: str) -> list[int]:
    """Sorted distinct integers i of the keys ``<prefix><i>.…``."""
    found = set()
    for key in state:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def has_prefix(state: Mapping[str, Any], prefix: str) -> bool:
    """Whether any key of ``state`` starts with ``prefix``."""
    return any(key.startswith(prefix) for key in state)


def _shape(state: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise CheckpointError(f"{where}: the weights lack {key!r}")
    return tuple(value.shape)


def detect_generator_arch(state: Mapping[str, Any], where: str = "generator") -> str:
    """``dagan-spade`` (``decoder.*``), ``dagan`` (``bottleneck.*`` + depth branch) or ``fomm`` (no depth)."""
    if not has_prefix(state, "dense_motion_network."):
        raise CheckpointError(f"{where}: not a DaGAN/FOMM generator (no 'dense_motion_network.*' weights)")
    depth_branch = has_prefix(state, "src_first.") or has_prefix(state, "AttnModule.")
    if has_prefix(state, "decoder."):
        if not depth_branch:
            raise CheckpointError(f"{where}: a SPADE generator without the depth branch is not supported")
        return "dagan-spade"
    if has_prefix(state, "bottleneck."):
        return "dagan" if depth_branch else "fomm"
    raise CheckpointError(f"{where}: unknown generator (neither 'decoder.*' nor 'bottleneck.*' weights)")


def check_arch(detected: str, requested: str | None, where: str, source: str = "--arch") -> None:
    """Raise a one-line message naming the ``--arch`` the file needs when it is not ``requested``."""
    if requested is None or requested == detected:
        return
    what = _SHORT_NAMES.get(detected, detected)
    if requested == "dagan++" and detected in OFFICIAL_DAGAN_ARCHS:
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
    blocks = key_indices(state, f"{prefix}encoder.down_blocks.")
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
class ModelStructure:
    """What the weights say about a reenactment model."""

    arch: str
    num_kp: int
    model_params: dict[str, Any]


def kp_structure(kp: Mapping[str, Any], where: str) -> tuple[int, dict[str, Any]]:
    """``(num_kp, {"params": kp_detector_params overrides, "estimate_jacobian": bool})`` of a keypoint detector."""
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


def generator_structure(gen: Mapping[str, Any], arch: str, where: str) -> tuple[int, dict[str, Any]]:
    """(num_kp seen by the dense motion network, generator_params overrides)."""
    first = _shape(gen, "first.conv.weight", where)
    expansion, channels_in = first[0], first[1]
    if channels_in != 3:
        raise CheckpointError(f"{where}: the generator takes {channels_in}-channel images; only RGB is supported")
    downs = key_indices(gen, "down_blocks.")
    if not downs:
        raise CheckpointError(f"{where}: the generator has no 'down_blocks.*' weights")
    channels = [_shape(gen, f"down_blocks.{i}.conv.weight", where)[0] for i in downs]
    dm = _hourglass_params(gen, "dense_motion_network.hourglass.", 1024, where)
    motions, rem = divmod(dm["in_features"], channels_in + 1)
    if rem or motions < 2:
        raise CheckpointError(
            f"{where}: the dense motion network input ({dm['in_features']} channels) does not fit (K + 1) × (3 + 1)"
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
        params["num_bottleneck_blocks"] = len(key_indices(gen, "bottleneck.r"))
    else:
        hidden = _shape(gen, "decoder.G_middle_0.norm_0.mlp_shared.0.weight", where)[0]
        if hidden != 128:
            raise CheckpointError(f"{where}: SPADE blocks with {hidden} hidden channels are not supported (128)")
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
    blocks = key_indices(disc, f"{prefix}down_blocks.")
    sn = f"{prefix}down_blocks.0.conv.weight_orig" in disc
    conv = "conv.weight_orig" if sn else "conv.weight"
    first = _shape(disc, f"{prefix}down_blocks.0.{conv}", where)
    channels = [_shape(disc, f"{prefix}down_blocks.{i}.{conv}", where)[0] for i in blocks]
    expansion = channels[0] // 2
    extra = first[1] - 3
    if extra not in (0, num_kp):
        raise CheckpointError(
            f"{where}: the discriminator sees {extra} keypoint maps but the keypoint detector has {num_kp} keypoints"
        )
    return {
        "scales": scales,
        "block_expansion": expansion,
        "max_features": _max_features(channels, expansion, len(blocks), 512),
        "num_blocks": len(blocks),
        "sn": sn,
        "use_kp": extra > 0,
    }


def model_structure(
    generator: Mapping[str, Any],
    kp_detector: Mapping[str, Any],
    discriminator: Mapping[str, Any] | None,
    where: str,
) -> ModelStructure:
    """Arch, keypoint count and ``model_params`` of official weights; files that do not belong together
    (keypoint counts, a FOMM detector with a DaGAN generator) raise :class:`CheckpointError`."""
    arch = detect_generator_arch(generator, where)
    num_kp, kp = kp_structure(kp_detector, where)
    gen_kp, gen = generator_structure(generator, arch, where)
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
    return ModelStructure(arch, num_kp, model_params)


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
    st = model_structure(generator, kp_detector, discriminator, where)
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
