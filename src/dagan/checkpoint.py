"""Self-describing, atomic, ``weights_only``-loadable checkpoints (ARCHITECTURE.md §6).

A checkpoint is a plain dict of tensors and containers::

    {"format": "dagan-checkpoint", "format_version": 1, "kind": "reenactment" | "depth",
     "arch": str, "config": {...}, "modules": {name: state_dict}, "optimizers": {...},
     "schedulers": {...}, "epoch": int, "step": int, "rng": {...}, "meta": {...}}

It is written to a temporary file in the target folder, flushed to disk and renamed, so an interrupted
write never leaves a corrupt file under the final name. DDP's ``module.`` (and ``torch.compile``'s
``_orig_mod.``) prefixes are never saved and are tolerated on load.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dagan import __version__
from dagan.atomic_files import make_public
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
    return strip_prefixes(unwrap(module).state_dict())


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as weights_only-safe containers."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_to_plain(o) for o in obj]
    return obj


def _to_tuple(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_to_tuple(o) for o in obj)
    return obj


# --------------------------------------------------------------------------- save / load


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    make_public(fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors for missing, corrupt and unsafe files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, expected a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
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
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", kind: str | None = None) -> dict:
    """Load one of our checkpoints; refuse other files with a message saying what they are."""
    obj = safe_torch_load(path, map_location)
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
