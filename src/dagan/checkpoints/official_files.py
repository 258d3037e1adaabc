"""Reading the official DaGAN (CVPR 2022) and Monodepth2 files, and telling what any loaded object is.

Formats understood:

* an official **training checkpoint** (``DaGAN_vox_adv_256.pth.tar``, ``SPADE_DaGAN_vox_adv_256.pth.tar``,
  ``%08d-checkpoint.pth.tar``): a dict with ``generator``, ``kp_detector``, ``discriminator`` state dicts,
  ``optimizer_*`` entries and ``epoch``; module keys may carry DDP ``module.`` prefixes;
* **per-module** state-dict files (``generator.pt``, ``kp_detector.pt``, optionally ``discriminator.pt``) in
  one folder — any one of them, or the folder, names the set;
* a **Monodepth2 depth folder** (``encoder.pth`` with non-tensor ``height``/``width``/``use_stereo`` entries
  and an unused ``encoder.fc`` ImageNet classifier, ``depth.pth``, optionally ``pose_encoder.pth``,
  ``pose.pth`` — whose decoder predicts for two frames, 12 outputs, of which the first six are used — and
  ``adam.pth``); a Monodepth2 training run keeps one such ``weights_N`` folder per epoch;
* FOMM checkpoints have the same layout as the DaGAN ones (a generator without the depth branch).

Everything is read with ``torch.load(weights_only=True)``: a file holding any other Python object is refused.
What a file is comes from its keys (:func:`classify_state_dict`), never from its name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from dagan.checkpoints.format import is_dagan_checkpoint, load_module_state, safe_torch_load, strip_prefixes
from dagan.checkpoints.official_arch import has_prefix, key_indices
from dagan.errors import CheckpointError
from dagan.models.depth import monodepth2_encoder_state
from dagan.models.pose import monodepth2_pose_decoder_state
from dagan.models.resnet import detect_backbone

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
    if has_prefix(keys, "dense_motion_network."):
        return "generator"
    if "kp.weight" in keys and has_prefix(keys, "predictor."):
        return "kp_detector"
    if has_prefix(keys, "discs."):
        return "discriminator"
    conv1 = keys.get("encoder.conv1.weight")
    if isinstance(conv1, Tensor) and has_prefix(keys, "encoder.layer1."):
        return "pose_encoder" if conv1.shape[1] == 6 else "depth_encoder"
    if "decoder.0.conv.conv.weight" in keys:
        return "depth_decoder"
    if "net.0.weight" in keys and "net.3.weight" in keys:
        return "pose_decoder"
    if "conv1.weight" in keys and has_prefix(keys, "layer1."):
        return "resnet"
    return None


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
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a torch.save zip nor a pickle)")
    return safe_torch_load(path)


def _complete_counters(module: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """Fill BatchNorm ``num_batches_tracked`` counters missing from files written by old PyTorch versions."""
    out = dict(state)
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = value
    return out


def load_official_state(module: nn.Module, state: Mapping[str, Any], name: str, source: Path | str) -> None:
    """Strict :func:`~dagan.checkpoints.format.load_module_state` of official weights, whose BatchNorm
    ``num_batches_tracked`` counters are missing when an old PyTorch version wrote them."""
    load_module_state(module, _complete_counters(module, state), name, source)


# --------------------------------------------------------------------------- official reenactment files


@dataclass
class OfficialReenactment:
    """Prefix-free state dicts of an official reenactment model and where they came from (``path``: the file
    or folder named by the user, ``files``: the files read)."""

    path: Path
    generator: dict[str, Any]
    kp_detector: dict[str, Any]
    discriminator: dict[str, Any] | None
    epoch: int | None
    source: str
    files: list[Path]
    prefixed: bool = False
    other_entries: list[str] = field(default_factory=list)


class MissingCompanion(CheckpointError):
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
        return CheckpointError(f"{path} is an optimizer state (no model weights), not a reenactment checkpoint")
    if kind == "resnet":
        return CheckpointError(f"{path} holds ImageNet-style ResNet weights, not a reenactment checkpoint")
    return CheckpointError(
        f"{path} is not a DaGAN checkpoint: expected a training dict with 'generator' and 'kp_detector' or "
        "per-module generator / kp_detector state dicts"
    )


def is_depth_folder(path: Path) -> bool:
    """Whether ``path`` holds a Monodepth2 ``encoder.pth`` or ``depth.pth``."""
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


def read_official_reenactment(path: str | os.PathLike[str]) -> OfficialReenactment:
    """Read an official training checkpoint, a per-module state-dict file (its companions are found in the
    same folder) or a folder of per-module files. Otherwise raise :class:`CheckpointError` saying what the
    file is."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    if path.is_dir():
        if is_depth_folder(path):
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
            raise MissingCompanion(
                f"{path}: found no {role} state dict beside it in {folder} (per-module official weights need "
                "both generator and kp_detector files)"
            )
    files = [found[r][0] for r in MODULE_ENTRIES if r in found]
    return OfficialReenactment(
        path=path,
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
        path=path,
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


def monodepth2_folders(root: Path, depth: int = 2) -> list[Path]:
    """Folders at most ``depth`` levels below ``root`` (itself included) that hold an ``encoder.pth``."""
    found = [root] if (root / DEPTH_ENCODER_FILE).is_file() else []
    if depth > 0 and not found:
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            found += monodepth2_folders(child, depth - 1)
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
    folders = monodepth2_folders(path)
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
    disp = [i for i in key_indices(raw_dec, "decoder.") if i >= 10]
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
