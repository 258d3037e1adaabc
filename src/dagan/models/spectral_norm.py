"""Spectral normalisation compatible with the official DaGAN checkpoints.

The official SPADE decoder and the ``sn`` discriminator option use the classic forward-pre-hook form of
spectral normalisation: the module stores the raw weight as parameter ``weight_orig`` and the power-iteration
vectors as buffers ``weight_u`` (out features) and ``weight_v`` (in·kh·kw), and recomputes

    W = W_orig / σ,   σ = uᵀ (W_mat v),   W_mat = W_orig reshaped to (out, −1)

before every forward. In training mode one power-iteration step first updates u and v in place
(v ← normalise(W_matᵀ u), u ← normalise(W_mat v)); in eval mode the **stored** u and v are used as they
are — no iteration, no exact SVD. The official numerics depend on that (the stored vectors are not fully
converged), so this module relies on ``torch.nn.utils.spectral_norm``, which implements exactly this and
produces exactly these state-dict keys (checked in tests/test_discriminator.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["apply_spectral_norm", "has_spectral_norm", "spectral_sigma"]


def apply_spectral_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Spectrally normalise ``module.<name>`` in place and return the module.

    Afterwards the module has parameter ``<name>_orig`` and buffers ``<name>_u``, ``<name>_v`` (one power
    iteration per training forward, ε = 1e-12, dim 0 — the classic hook's defaults, which the official
    checkpoints were trained with).
    """
    return nn.utils.spectral_norm(module, name=name)


def has_spectral_norm(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module`` carries the spectral-norm hook for ``name``."""
    return f"{name}_orig" in module._parameters and f"{name}_u" in module._buffers


def spectral_sigma(weight_orig: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """σ = uᵀ (W v) with W = ``weight_orig`` reshaped to (out, −1) — the eval-time normaliser."""
    return torch.dot(u, torch.mv(weight_orig.reshape(weight_orig.shape[0], -1), v))
