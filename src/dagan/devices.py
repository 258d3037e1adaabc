"""Which torch device a command runs on: one resolver for every command and the Python API."""

from __future__ import annotations

import torch

from dagan.errors import InputError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None → CUDA when available, else CPU; otherwise the named device (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``), with a one-line :class:`InputError` when it is unknown or not available."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device '{device}' (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available (this PyTorch has no GPU); "
                         "use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device '{device}' requested but MPS is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device '{device}' (use cpu, cuda, cuda:N or auto)")
    return dev
