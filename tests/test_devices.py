"""One device resolver for every command and the Python API."""

from __future__ import annotations

import pytest
import torch

from dagan.devices import resolve_device
from dagan.errors import InputError


def test_auto_and_named_devices() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unusable_devices_are_one_line_errors() -> None:
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda:1")
    with pytest.raises(InputError, match="unsupported device 'meta'"):
        resolve_device("meta")
