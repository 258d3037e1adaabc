"""One training step of the reenactment model: the generator side and the discriminator side (FOMM §3.4).

:class:`GeneratorFullModel` wraps the keypoint detector, the generator, the (shared) discriminator, the frozen
depth net and the perceptual loss; its ``forward`` takes a batch of (source, driving) frames and returns the
weighted losses and the generated images. :class:`DiscriminatorFullModel` does the same for the
discriminator. Each is one ``nn.Module`` with one forward and one backward per step, which is what
``DistributedDataParallel`` needs.

Generator losses (weights ``λ`` from :class:`dagan.config.LossWeights`, 10 each in the paper):

* perceptual: multi-scale VGG feature matching between prediction and driving frame on an image pyramid;
* gan: LSGAN ``Σ_s mean((1 − D_s(pred))²)`` on the discriminator's scales;
* feature_matching: ``Σ_s Σ_i λ_i mean|F_{s,i}(driving) − F_{s,i}(pred)|``;
* equivariance_value / equivariance_jacobian: the driving frame D is warped by a random affine+TPS transform
  T into D' = D∘T; the keypoints of D' (with the disparity *recomputed on D'*, since depth is a function of
  the image the detector sees) must map onto those of D through T;
* keypoint_distance: the hinge ``Σ_{i≠j} max(0, β − ‖x_i − x_j‖₁)`` on the source and driving keypoints.

Discriminator loss: LSGAN ``Σ_s mean((1 − D_s(driving))² + D_s(pred)²)`` with the prediction detached.

Random transforms are drawn per *sample* from a generator seeded by ``(seed, step, global sample position)``
(:func:`sample_transforms`), so a batch split across processes or micro-batches sees exactly the transforms
that a single process would draw for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from dagan.config import ConfigError, TrainParams
from dagan.geometry.transforms import RandomTransform
from dagan.losses.adversarial import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss
from dagan.losses.keypoints import equivariance_losses, keypoint_distance_loss
from dagan.losses.perceptual import ImagePyramid, PerceptualLoss
from dagan.models.factory import ReenactmentModels
from dagan.models.vgg import VGGFeatures

__all__ = [
    "DiscriminatorFullModel",
    "GeneratorFullModel",
    "check_pyramid_sizes",
    "sample_transforms",
    "transform_seed",
]

#: smallest side VGG's five blocks accept (four 2×2 max-pools before relu5)
VGG_MIN_SIDE = 16


def check_pyramid_sizes(resolution: int, scales: Sequence[float], min_side: int = VGG_MIN_SIDE) -> None:
    """Raise :class:`ConfigError` when a perceptual pyramid level would be smaller than the VGG accepts."""
    for s in scales:
        side = int(resolution * float(s))
        if side < min_side:
            raise ConfigError(
                f"train_params.scales: scale {float(s):g} at resolution {resolution} gives {side}×{side} "
                "images, "
                f"the VGG perceptual loss needs at least {min_side}×{min_side} (drop that scale)"
            )


def transform_seed(seed: int, step: int, position: int) -> int:
    """A 63-bit seed for the equivariance transform of one sample: a hash of (seed, step, position).

    Uses a SplitMix64-style mix so neighbouring steps/positions give unrelated streams.
    """
    x = int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + int(position) * 0x94D049BB133111EB
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x ^= x >> 27
    return x & ((1 << 63) - 1)


def sample_transforms(
    positions: Sequence[int],
    seed: int,
    step: int,
    sigma_affine: float,
    sigma_tps: float,
    points_tps: int,
    device: torch.device | str | None = None,
) -> RandomTransform:
    """One random affine+TPS transform per sample, each drawn from its own generator seeded by
    :func:`transform_seed` ``(seed, step, position)``; ``positions`` are the samples' places in the global
    batch. Equal positions give equal transforms whatever the process or micro-batch."""
    thetas, params = [], []
    control_points = None
    for pos in positions:
        gen = torch.Generator().manual_seed(transform_seed(seed, step, pos))
        t = RandomTransform.sample(1, sigma_affine, sigma_tps, points_tps, generator=gen)
        thetas.append(t.theta)
        if t.control_params is not None:
            params.append(t.control_params)
            control_points = t.control_points
    theta = torch.cat(thetas).to(device)
    if control_points is None:
        return RandomTransform(theta)
    return RandomTransform(theta, control_points.to(device), torch.cat(params).to(device))


def _float_kp(kp: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.float() for k, v in kp.items()}


class GeneratorFullModel(nn.Module):
    """Keypoints, generation and every generator-side loss for one batch (see the module docstring).

    ``forward(source, driving, transform)`` returns ``(losses, generated)``: ``losses`` maps names to weighted
    scalar tensors (their sum is the generator objective), ``generated`` holds the generator's outputs plus
    ``kp_source``/``kp_driving`` and ``source_depth``. ``transform`` is needed when an equivariance weight is
    non-zero (see :func:`sample_transforms`).
    """

    def __init__(self, models: ReenactmentModels, vgg: VGGFeatures, train_params: TrainParams) -> None:
        super().__init__()
        if models.discriminator is None:
            raise ValueError(
                "training needs the discriminator (build_reenactment_models(cfg, discriminator=True))"
            )
        self.kp_detector = models.kp_detector
        self.generator = models.generator
        self.discriminator = models.discriminator
        self.depth_net = models.depth_net
        w = train_params.loss_weights
        self.weights = w
        self.beta = train_params.keypoint_distance_beta
        self.perceptual = PerceptualLoss(vgg, train_params.scales, w.perceptual)
        self.disc_scales = tuple(self.discriminator.scales)
        self.disc_pyramid = ImagePyramid(self.disc_scales)
        self.kp_uses_depth = bool(self.kp_detector.use_depth)
        self.gen_uses_depth = bool(getattr(self.generator, "uses_depth", False))
        if (self.kp_uses_depth or self.gen_uses_depth) and self.depth_net is None:
            raise ValueError("this model consumes disparity but has no depth net")

    def train(self, mode: bool = True) -> GeneratorFullModel:
        super().train(mode)
        if self.depth_net is not None:
            self.depth_net.eval()  # frozen
        self.perceptual.vgg.eval()
        return self

    def disparity(self, image: Tensor) -> Tensor | None:
        """Disparity of the frozen depth net, without gradient (None for depth-free models)."""
        if self.depth_net is None:
            return None
        with torch.no_grad():
            return self.depth_net(image)

    def keypoints(self, image: Tensor, disparity: Tensor | None) -> dict[str, Tensor]:
        return self.kp_detector(image, disparity if self.kp_uses_depth else None)

    def forward(
        self, source: Tensor, driving: Tensor, transform: RandomTransform | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        w = self.weights
        need_depth = self.kp_uses_depth or self.gen_uses_depth
        source_depth = self.disparity(source) if need_depth else None
        driving_depth = self.disparity(driving) if self.kp_uses_depth else None
        kp_source = self.keypoints(source, source_depth)
        kp_driving = self.keypoints(driving, driving_depth)
        generated = self.generator(
            source,
            kp_driving=kp_driving,
            kp_source=kp_source,
            source_depth=source_depth if self.gen_uses_depth else None,
        )
        prediction = generated["prediction"]
        losses: dict[str, Tensor] = {}
        losses["perceptual"] = self.perceptual(prediction.float(), driving.float())

        if w.generator_gan != 0 or any(x != 0 for x in w.feature_matching):
            pyr_fake = self.disc_pyramid(prediction)
            disc_fake = self.discriminator(pyr_fake, kp=kp_driving["value"].detach())
            with torch.no_grad():  # real features are targets only
                disc_real = self.discriminator(self.disc_pyramid(driving), kp=kp_driving["value"].detach())
            if w.generator_gan != 0:
                losses["gan"] = lsgan_generator_loss(disc_fake, self.disc_scales, w.generator_gan)
            if any(x != 0 for x in w.feature_matching):
                losses["feature_matching"] = feature_matching_loss(
                    disc_real, disc_fake, self.disc_scales, w.feature_matching
                )

        if w.equivariance_value != 0 or w.equivariance_jacobian != 0:
            if transform is None:
                raise ValueError("the equivariance losses need a random transform")
            transformed = transform.transform_frame(driving)
            # Depth is a property of the frame the detector sees: recompute it on the warped frame.
            transformed_depth = self.disparity(transformed) if self.kp_uses_depth else None
            kp_transformed = self.keypoints(transformed, transformed_depth)
            with _autocast_off(driving):
                eq = equivariance_losses(_float_kp(kp_driving), _float_kp(kp_transformed), transform)
            if w.equivariance_value != 0:
                losses["equivariance_value"] = w.equivariance_value * eq["value"]
            if w.equivariance_jacobian != 0 and "jacobian" in eq:
                losses["equivariance_jacobian"] = w.equivariance_jacobian * eq["jacobian"]

        if w.keypoint_distance != 0:
            with _autocast_off(driving):
                losses["keypoint_distance"] = w.keypoint_distance * (
                    keypoint_distance_loss(kp_source["value"].float(), self.beta)
                    + keypoint_distance_loss(kp_driving["value"].float(), self.beta)
                )

        out = dict(generated)
        out["kp_source"] = kp_source  # type: ignore[assignment]
        out["kp_driving"] = kp_driving  # type: ignore[assignment]
        if source_depth is not None:
            out["source_depth"] = source_depth
        return losses, out


class DiscriminatorFullModel(nn.Module):
    """LSGAN discriminator loss on (driving, detached prediction) pairs, conditioned on driving keypoints."""

    def __init__(self, discriminator: nn.Module, train_params: TrainParams) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.scales = tuple(discriminator.scales)  # type: ignore[arg-type]
        self.pyramid = ImagePyramid(self.scales)
        self.weight = train_params.loss_weights.discriminator_gan

    def forward(self, driving: Tensor, prediction: Tensor, kp_driving: Tensor) -> dict[str, Tensor]:
        kp = kp_driving.detach()
        real = self.discriminator(self.pyramid(driving), kp=kp)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp=kp)
        return {"disc_gan": lsgan_discriminator_loss(real, fake, self.scales, self.weight)}


def _autocast_off(like: Tensor):  # noqa: ANN202 - a context manager
    """Full precision for the small geometric losses (matrix inverses) when running under CUDA autocast."""
    if like.is_cuda:
        return torch.autocast("cuda", enabled=False)
    return nullcontext()
