"""The One-Euro filter, and the two smoothers built on it: driving keypoints (torch) and face boxes (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dagan.faces import BoxSmoother, FaceBox
from dagan.infer.smoothing import KeypointSmoother
from dagan.one_euro import OneEuroFilter, smoothing_factor


def test_smoothing_factor_formula() -> None:
    assert smoothing_factor(1.0, 30.0) == pytest.approx(1 / (1 + 30 / (2 * math.pi)))
    np.testing.assert_allclose(smoothing_factor(np.array([1.0, 2.0]), 30.0), [1 / (1 + 30 / (2 * math.pi * f))
                                                                              for f in (1.0, 2.0)])


def test_holds_a_constant_and_passes_the_first_sample() -> None:
    f = OneEuroFilter(fps=30, min_cutoff=1.0, beta=0.5)
    x = torch.tensor([0.3, -0.2])
    assert torch.equal(f.filter(x), x)
    for _ in range(5):
        torch.testing.assert_close(f.filter(x), x)


def test_reduces_jitter_and_follows_a_step() -> None:
    g = torch.Generator().manual_seed(0)
    noise = 0.02 * torch.randn(300, 2, generator=g)
    f = OneEuroFilter(fps=30, min_cutoff=0.5, beta=0.0)
    smoothed = torch.stack([f.filter(n) for n in noise])
    assert smoothed[50:].std() < 0.4 * noise[50:].std()
    # a step: converges to the new value (no permanent lag)
    f = OneEuroFilter(fps=30, min_cutoff=1.0, beta=1.0)
    out = [f.filter(torch.tensor([0.0]))] + [f.filter(torch.tensor([0.5])) for _ in range(120)]
    assert abs(float(out[-1]) - 0.5) < 1e-3
    assert 0.0 < float(out[1]) < 0.5  # but it does smooth the jump


def test_a_faster_signal_gets_a_higher_cutoff() -> None:
    """beta > 0 follows motion more closely than beta = 0: less lag on a ramp."""
    ramp = [float(t) / 30 for t in range(60)]
    lags = []
    for beta in (0.0, 2.0):
        f: OneEuroFilter[float] = OneEuroFilter(fps=30, min_cutoff=0.5, beta=beta)
        lags.append(ramp[-1] - [f.filter(x) for x in ramp][-1])
    assert 0 < lags[1] < 0.5 * lags[0]


def test_floats_numpy_and_torch_give_the_same_numbers() -> None:
    """The arithmetic is array-agnostic: the same float64 samples, whatever holds them, filter alike (to the
    last bit or two: torch's vectorised kernels may round a product-sum differently)."""
    rng = np.random.default_rng(0)
    samples = np.cumsum(rng.normal(0, 0.05, (80, 3)), axis=0)
    as_numpy = OneEuroFilter(fps=25, min_cutoff=0.7, beta=1.2)
    as_torch = OneEuroFilter(fps=25, min_cutoff=0.7, beta=1.2)
    as_floats = [OneEuroFilter(fps=25, min_cutoff=0.7, beta=1.2) for _ in range(3)]
    for row in samples:
        a = as_numpy.filter(row)
        b = as_torch.filter(torch.from_numpy(row))
        c = [f.filter(float(x)) for f, x in zip(as_floats, row, strict=True)]
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-16)


def test_settings_and_shapes_are_checked() -> None:
    for bad in ({"fps": 0}, {"fps": 25, "min_cutoff": 0}, {"fps": 25, "d_cutoff": -1}, {"fps": 25, "beta": -1}):
        with pytest.raises(ValueError, match="OneEuroFilter needs"):
            OneEuroFilter(**bad)
    f = OneEuroFilter(fps=25)
    f.filter(np.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(3,\) after \(2,\)"):
        f.filter(np.zeros(3))
    f.reset()
    assert f.value is None
    np.testing.assert_array_equal(f.filter(np.ones(3)), np.ones(3))  # a new stream may change shape


# --------------------------------------------------------------------------- the smoothers built on it


def test_keypoint_smoother_filters_every_coordinate_in_float32() -> None:
    g = torch.Generator().manual_seed(1)
    kp = {"value": torch.randn(6, 4, 2, generator=g).half(), "jacobian": torch.randn(6, 4, 2, 2, generator=g)}
    out = KeypointSmoother(fps=25, min_cutoff=1.5)(kp)
    for key, frames in kp.items():
        f = OneEuroFilter(fps=25, min_cutoff=1.5, beta=0.5)
        expected = torch.stack([f.filter(frame.float()) for frame in frames]).to(frames.dtype)
        assert out[key].dtype == frames.dtype and torch.equal(out[key], expected), key


def test_keypoint_smoother_does_not_alias_the_callers_tensor() -> None:
    kp = {"value": torch.zeros(1, 3, 2)}
    smoother = KeypointSmoother(fps=25)
    smoother(kp)
    kp["value"].fill_(5.0)  # the caller reuses its buffer
    assert torch.allclose(smoother({"value": torch.zeros(1, 3, 2)})["value"], torch.zeros(1, 3, 2))


def test_box_smoother_filters_centre_and_size_in_box_units() -> None:
    """Centre and size are One-Euro filtered with their own cutoffs, in units of the first box's size."""
    rng = np.random.default_rng(2)
    boxes = [np.array([100.0, 80, 180, 170]) + np.array([t, 0, t, 0]) + rng.normal(0, 2, 4) for t in range(40)]
    smoother = BoxSmoother(fps=25, min_cutoff=1.0, size_min_cutoff=0.3, beta=1.5)
    centre = OneEuroFilter(fps=25, min_cutoff=1.0, beta=1.5)
    size = OneEuroFilter(fps=25, min_cutoff=0.3, beta=1.5)
    scale = max(boxes[0][2] - boxes[0][0], boxes[0][3] - boxes[0][1])
    for box in boxes:
        x0, y0, x1, y1 = box
        c = centre.filter(np.array([(x0 + x1) / 2, (y0 + y1) / 2]) / scale) * scale
        s = size.filter(np.array([x1 - x0, y1 - y0]) / scale) * scale
        got = smoother.update(box)
        assert isinstance(got, FaceBox)
        np.testing.assert_allclose(got.as_array(), [*(c - s / 2), *(c + s / 2)], rtol=0, atol=1e-9)
