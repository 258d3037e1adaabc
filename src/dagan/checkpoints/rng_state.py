"""The states of Python's, NumPy's and torch's (CPU and CUDA) random generators, as plain containers.

A training checkpoint stores them so that a resumed run draws the same random numbers as an uninterrupted one.
Every value is a tensor, a number, a string or a list, so the state loads with ``torch.load(weights_only=True)``:
Python's state tuple becomes nested lists, NumPy's Mersenne-Twister keys an int64 tensor.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as weights_only-safe containers."""
    np_state = np.random.get_state(legacy=True)
    # The global RandomState is always a Mersenne Twister, whose legacy state is a tuple (never the dict form).
    assert isinstance(np_state, tuple)
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
    """Set every generator to a state from :func:`capture_rng_state` (CUDA only when stored and available)."""
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
