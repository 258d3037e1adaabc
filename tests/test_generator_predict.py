"""The prediction-only decode (``Generator.predict``) of all four generators, built from the tiny configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from dagan.config import ARCHS, load_config
from dagan.models.factory import GENERATORS, build_generator
from dagan.models.generators.base import Generator

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny"
CONFIGS = {"dagan++": "dagan++-64.yaml", "dagan": "dagan-64.yaml", "dagan-spade": "dagan-spade-64.yaml",
           "fomm": "fomm-64.yaml"}
SIZE = 64


class GridSampleLog(TorchFunctionMode):
    """Records (input shape, output shape) of every ``grid_sample`` call made while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func is F.grid_sample:
            self.calls.append((tuple(args[0].shape), tuple(out.shape)))
        return out


def generator(arch: str) -> Generator:
    torch.manual_seed(0)
    model = build_generator(load_config(TINY / CONFIGS[arch])).eval()
    with torch.no_grad():  # the DaGAN attention starts as the identity (γ = 0): make it count
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.7)
    return model


def inputs(model: Generator, batch: int) -> tuple[torch.Tensor, Any, dict, dict]:
    """A batch-1 source (image, cache, keypoints) and ``batch`` driving keypoint sets."""
    g = torch.Generator().manual_seed(1)
    num_kp = model.dense_motion_network.num_kp

    def kp(n: int) -> dict[str, torch.Tensor]:
        value = torch.rand(n, num_kp, 2, generator=g) * 1.6 - 0.8
        return {"value": value, "jacobian": torch.eye(2) + 0.2 * torch.randn(n, num_kp, 2, 2, generator=g)}

    source = torch.rand(1, 3, SIZE, SIZE, generator=g)
    depth = torch.rand(1, 1, SIZE, SIZE, generator=g)
    with torch.no_grad():
        cache = model.encode_source(source, depth if model.uses_depth else None)
    return source, cache, kp(batch), kp(1)


def test_every_arch_has_a_generator_variant() -> None:
    assert set(GENERATORS) == set(ARCHS) == set(CONFIGS)


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_predict_is_decodes_prediction_without_the_deformed_warp(arch: str) -> None:
    model = generator(arch)
    assert type(model) is GENERATORS[arch].cls
    source, cache, kp_driving, kp_source = inputs(model, batch=2)
    with torch.no_grad(), GridSampleLog() as decode_log:
        decoded = model.decode(source, cache, kp_driving, kp_source)
    with torch.no_grad(), GridSampleLog() as predict_log:
        predicted = model.predict(source, cache, kp_driving, kp_source)

    assert predicted.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(predicted, decoded["prediction"])  # bit for bit: the same operations
    assert (predicted[0] - predicted[1]).abs().max() > 1e-4  # the two driving poses give two images

    # The source image warped at full resolution (``deformed``): decode warps it exactly once …
    image_warp = ((2, 3, SIZE, SIZE), (2, 3, SIZE, SIZE))
    assert decode_log.calls.count(image_warp) == 1
    assert decoded["deformed"].shape == image_warp[1]
    # … and predict only where the decoder consumes it (SPADE's label map); every other warp is shared.
    expected = list(decode_log.calls)
    if arch != "dagan-spade":
        expected.remove(image_warp)
    assert predict_log.calls == expected
    assert len(expected) >= 2  # the dense motion's sparse warps and at least one feature warp
