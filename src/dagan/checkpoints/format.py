"""Our checkpoint format: self-describing, written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and containers::

    {"format": "dagan-checkpoint", "format_version": 1, "kind": "reenactment" | "depth",
     "arch": str, "config": {...}, "modules": {name: state_dict}, "optimizers": {...},
     "schedulers": {...}, "epoch": int, "step": int, "rng": {...}, "meta": {...}}

``config`` is the full model/training config, so a reader rebuilds every network from the file alone; ``rng``
holds the random generator states (:mod:`dagan.checkpoints.rng_state`) and ``meta`` the dagan and torch versions
plus where imported weights came from. Readers refuse a ``format_version`` newer than :data:`FORMAT_VERSION`.

The file is written to a temporary name in the target folder, flushed to disk and renamed, so an interrupted
write never leaves a corrupt file under the final name. DDP's ``module.`` (and ``torch.compile``'s
``_orig_mod.``) prefixes are never saved and are tolerated on load.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dagan import __version__
from dagan.atomic_files import atomic_torch_save
from dagan.checkpoints.rng_state import capture_rng_state
from dagan.errors import CheckpointError

FORMAT = "dagan-checkpoint"
FORMAT_VERSION = 1
_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove leading DDP ``module.`` / compile ``_orig_mod.`` prefixes from every key."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


def unwrap(module: nn.Module) -> nn.Module:
    """The underlying module of a DDP / compiled wrapper."""
    while hasattr(module, "module") and isinstance(module.module, nn.Module):
        module = module.module
    return getattr(module, "_orig_mod", module)


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``module`` without wrapper prefixes."""
    return strip_prefixes(unwrap(module).state_dict())


# --------------------------------------------------------------------------- writing


def build_checkpoint(
    *,
    kind: str,
    config: Mapping[str, Any],
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    epoch: int = 0,
    step: int = 0,
    rng: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of ``modules`` (and optimizer / scheduler states) described by ``config``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arch": config.get("model_params", {}).get("arch", "unknown"),
        "config": dict(config),
        "modules": {name: module_state(m) for name, m in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
        "schedulers": {name: s.state_dict() for name, s in (schedulers or {}).items()},
        "epoch": int(epoch),
        "step": int(step),
        "rng": capture_rng_state() if rng else {},
        "meta": {"dagan_version": __version__, "torch_version": str(torch.__version__), **dict(meta or {})},
    }


def save_checkpoint(path: str | Path, **kwargs: Any) -> Path:
    """Build (see :func:`build_checkpoint`) and write a checkpoint atomically."""
    return atomic_torch_save(build_checkpoint(**kwargs), path)


# --------------------------------------------------------------------------- reading


#: leading bytes of files a user may pass by mistake where a checkpoint is expected
FOREIGN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP image, WAV or AVI)"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)


def foreign_file_kind(path: Path) -> str | None:
    """What ``path`` is when its first bytes show it is an image, video, document or archive that PyTorch
    cannot load (an MP4/MOV's ``ftyp`` box sits at offset 4); ``None`` when it may be a PyTorch file."""
    with path.open("rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":  # ISO media: the brand says photo (HEIC, AVIF), audio (M4A) or video
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return "a HEIC/AVIF image"
        return "an M4A audio file" if brand == b"M4A " else "an MP4/MOV video"
    return next((kind for magic, kind in FOREIGN_SIGNATURES if head.startswith(magic)), None)


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors for missing, corrupt and unsafe files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, expected a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    kind = foreign_file_kind(path)
    if kind is not None:
        raise CheckpointError(f"checkpoint {path} is not a PyTorch file: it is {kind}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "Weights only load failed" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refusing to load {path}: it contains non-tensor Python objects (only tensors and plain "
                "containers are loaded, for safety)"
            ) from None
        raise CheckpointError(f"checkpoint {path} is not a readable PyTorch file ({first})") from None
    except Exception as exc:  # torch raises many types for junk bytes (IndexError, RuntimeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file ({first})") from None


def is_dagan_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is one of our checkpoints (of any version)."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def validate_checkpoint(obj: Any, path: str | Path, kind: str | None = None) -> dict:
    """``obj`` (loaded from ``path``) if it is one of our checkpoints that this dagan reads, of ``kind`` when
    given; otherwise a one-line :class:`CheckpointError` saying what it is."""
    if not is_dagan_checkpoint(obj):
        hint = ""
        if isinstance(obj, dict) and {"generator", "kp_detector"} & set(obj):
            hint = " — it looks like an official DaGAN/FOMM checkpoint: convert it with 'dagan import-official'"
        raise CheckpointError(f"{path} is not a dagan checkpoint{hint}")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {obj['format_version']}, newer than this dagan supports ({FORMAT_VERSION})"
        )
    if kind is not None and obj.get("kind") != kind:
        raise CheckpointError(f"{path} is a {obj.get('kind')} checkpoint, expected a {kind} checkpoint")
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", kind: str | None = None) -> dict:
    """Load one of our checkpoints; refuse other files with a message saying what they are."""
    return validate_checkpoint(safe_torch_load(path, map_location), path, kind)


def load_module_state(module: nn.Module, state: Mapping[str, Any], name: str, source: str | Path) -> None:
    """Strict ``load_state_dict`` with a one-line error naming the module and the first mismatches."""
    state = strip_prefixes(state)
    target = unwrap(module)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if shape:
            k = shape[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, model expects {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(f"{source}: the {name} weights do not fit this model: " + "; ".join(parts))
    target.load_state_dict(state, strict=True)
