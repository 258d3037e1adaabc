"""What a checkpoint file is, in the terms a user needs (``dagan inspect``, and the summary of ``import-official``).

:func:`describe_checkpoint` recognises our checkpoints, official DaGAN training checkpoints, official per-module
files, Monodepth2 depth folders (or one of their files) and other PyTorch files, from their keys — never from file
names — and reports the arch, keypoints, resolution, depth backbone, parameter counts per module and the training
epoch/step, with notes on what the file can be used for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from dagan.checkpoints.format import FORMAT_VERSION, strip_prefixes
from dagan.checkpoints.official_arch import (
    OFFICIAL_RESOLUTION,
    detect_generator_arch,
    generator_structure,
    kp_structure,
    model_structure,
    pretty_backbone,
)
from dagan.checkpoints.official_files import (
    MODULE_ENTRIES,
    MONODEPTH2_FILES,
    MissingCompanion,
    classify_state_dict,
    is_depth_folder,
    monodepth2_folders,
    read_depth_folder,
    read_official_reenactment,
    read_torch_file,
)
from dagan.errors import CheckpointError
from dagan.models.resnet import detect_backbone

__all__ = ["CheckpointDescription", "count_state_parameters", "describe_checkpoint"]

_GENERATOR_NAMES = {
    "dagan": "plain DaGAN generator (DepthAwareGenerator, 'bottleneck.*' keys)",
    "dagan-spade": "SPADE DaGAN generator (SPADEDepthAwareGenerator, 'decoder.*' keys)",
    "fomm": "FOMM generator (OcclusionAwareGenerator, no depth branch)",
}


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
            backbone = pretty_backbone(self.depth_backbone) if self.depth_backbone else ""
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
    params = _with_total({name: count_state_parameters(s) for name, s in modules.items() if isinstance(s, Mapping)})
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
        desc.depth_note = "with uncertainty head (FDN++)" if dp.get("uncertainty") else "no uncertainty head (FDN)"
        desc.depth_note += "; pose net included" if "pose_net" in modules else "; no pose net"
    elif kind == "reenactment" and backbone is None:
        desc.depth_note = "no depth net (depth-free model)" if arch == "fomm" else "depth net missing"
    if backbone and dp.get("backbone") and dp.get("backbone") != backbone:
        desc.notes.append(
            f"stored config says {pretty_backbone(dp.get('backbone'))} but the depth weights are "
            f"{pretty_backbone(backbone)}"
        )
    if isinstance(version, int) and version > FORMAT_VERSION:
        desc.notes.append(f"format {version} is newer than this dagan reads ({FORMAT_VERSION}); upgrade dagan")
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
    st = model_structure(official.generator, official.kp_detector, official.discriminator, where)
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
        notes.append("ResNet-50 (the VoxCeleb2 depth model) — the released DaGAN checkpoints expect ResNet-18")
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
        if is_depth_folder(path) or monodepth2_folders(path):
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
            except MissingCompanion:
                return _describe_single_module(path, kind, strip_prefixes(obj))
        return _describe_official(path)
    if kind in ("depth_encoder", "depth_decoder", "pose_encoder", "pose_decoder") and path.name in MONODEPTH2_FILES:
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
        desc.num_kp = generator_structure(state, arch, str(path))[0]
        desc.what = f"an official per-module {_GENERATOR_NAMES[arch]}"
    elif kind == "kp_detector":
        num_kp, kp = kp_structure(state, str(path))
        desc.num_kp = num_kp
        inputs = "RGB + depth" if kp["params"]["use_depth"] else "RGB"
        desc.what = f"an official per-module keypoint detector ({inputs} input)"
    else:
        desc.what = "an official per-module discriminator"
    desc.notes.append("no companion generator / kp_detector file beside it: both are needed to animate")
    desc.usable = False
    return desc
