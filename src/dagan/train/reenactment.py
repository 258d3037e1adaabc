"""One training step of the reenactment model: the generator side and the discriminator side (FOMM §3.4).

:class:`ReenactmentTrainer` takes the steps (FOMM's alternating scheme): the generator side (keypoint detector +
generator) takes one Adam step on the generator losses, then the discriminator takes one Adam step on the LSGAN
loss against the (detached) predictions of that same forward pass. Adam with lr 2e-4, β = (0.5, 0.999) for
the three networks; MultiStepLR (×0.1 at each epoch milestone), optional gradient-norm clipping and (CUDA only)
mixed precision with gradient scaling. The depth net is frozen.

Batching: with W processes each gets its share of the global batch, and with ``grad_accumulation = A`` each
process splits its share into A micro-batches whose gradients are summed before the step. Only BatchNorm
statistics depend on how the batch is split (per micro-batch and per process, except on CUDA with several
processes, where SyncBatchNorm pools them over processes).

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

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dagan.checkpoints.format import build_checkpoint, load_module_state
from dagan.checkpoints.rng_state import restore_rng_state
from dagan.config import Config, ConfigError, TrainParams
from dagan.geometry.transforms import RandomTransform
from dagan.losses.adversarial import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss
from dagan.losses.keypoints import equivariance_losses, keypoint_distance_loss
from dagan.losses.perceptual import ImagePyramid, PerceptualLoss
from dagan.models.factory import ReenactmentModels
from dagan.models.vgg import VGGFeatures
from dagan.train.distributed import DistEnv, all_reduce_mean, maybe_sync_batchnorm, wrap_ddp

__all__ = [
    "TRAINED_MODULES",
    "DiscriminatorFullModel",
    "GeneratorFullModel",
    "ReenactmentTrainer",
    "check_pyramid_sizes",
    "draw_keypoints",
    "sample_transforms",
    "transform_seed",
]

#: the networks a reenactment run trains (the depth net is frozen)
TRAINED_MODULES = ("kp_detector", "generator", "discriminator")

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
        out["kp_source"] = kp_source
        out["kp_driving"] = kp_driving
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


# --------------------------------------------------------------------------- the trainer


class ReenactmentTrainer:
    """The networks of ``models`` with their optimisers, schedulers and gradient scalers, one alternating
    generator / discriminator step per :meth:`step` (see the module docstring).

    ``steps_per_epoch`` places the epoch boundaries, where the schedulers step. Under ``torchrun`` (``env``)
    the networks are wrapped in DistributedDataParallel; every process builds the same trainer.
    """

    progress_keys: tuple[str, ...] = ("loss/total", "loss/perceptual", "loss/disc_gan")

    def __init__(
        self,
        cfg: Config,
        models: ReenactmentModels,
        vgg: VGGFeatures,
        env: DistEnv,
        *,
        steps_per_epoch: int,
        grad_accumulation: int = 1,
        perceptual_backbone: str = "",
    ) -> None:
        tp = cfg.train_params
        self.cfg, self.tp, self.env = cfg, tp, env
        self.steps_per_epoch, self.accumulation = int(steps_per_epoch), int(grad_accumulation)
        self.perceptual_backbone = perceptual_backbone
        self.steps_done = 0
        models.kp_detector = maybe_sync_batchnorm(models.kp_detector, env)  # type: ignore[assignment]
        models.generator = maybe_sync_batchnorm(models.generator, env)  # type: ignore[assignment]
        self.models = models
        self.gen_full = GeneratorFullModel(models, vgg, tp).to(env.device).train()
        self.disc_full = DiscriminatorFullModel(models.discriminator, tp).to(env.device).train()  # type: ignore[arg-type]
        betas = (float(tp.betas[0]), float(tp.betas[1]))
        self.optimizers = {
            "kp_detector": torch.optim.Adam(models.kp_detector.parameters(), lr=tp.lr_kp_detector, betas=betas),
            "generator": torch.optim.Adam(models.generator.parameters(), lr=tp.lr_generator, betas=betas),
            "discriminator": torch.optim.Adam(
                models.discriminator.parameters(), lr=tp.lr_discriminator, betas=betas  # type: ignore[union-attr]
            ),
        }
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(tp.epoch_milestones), gamma=0.1)
            for name, opt in self.optimizers.items()
        }
        self.use_amp = bool(tp.amp) and env.device.type == "cuda"
        self.scalers = {
            name: torch.amp.GradScaler("cuda", enabled=self.use_amp) for name in ("generator", "discriminator")
        }
        lw = tp.loss_weights
        # The discriminator sits inside the generator model (GAN and feature-matching losses); with both
        # switched off its parameters get no gradient there.
        disc_unused = lw.generator_gan == 0 and not any(lw.feature_matching)
        self.gen_ddp = wrap_ddp(
            self.gen_full,
            env,
            ignore={"depth_net": self.gen_full.depth_net, "perceptual": self.gen_full.perceptual},
            find_unused_parameters=disc_unused,
        )
        self.disc_ddp = wrap_ddp(self.disc_full, env)
        self._shown: dict[str, Any] = {}

    # ------------------------------------------------------------------ one step
    def step(self, batch: Any) -> dict[str, float]:
        """One generator and one discriminator step on this process's share of the global batch; the losses
        (averaged over processes), learning rates and epoch of the step."""
        source, driving = (x.to(self.env.device, non_blocking=True) for x in _pair(batch))
        losses = all_reduce_mean(self._losses_and_updates(source, driving), self.env)
        metrics = {f"loss/{k}": v for k, v in losses.items()}
        metrics.update({f"lr/{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()})
        metrics["epoch"] = float(self.steps_done // self.steps_per_epoch)
        self.steps_done += 1
        if self.steps_done % self.steps_per_epoch == 0:
            for sched in self.schedulers.values():
                sched.step()
        return metrics

    def _losses_and_updates(self, source: Tensor, driving: Tensor) -> dict[str, float]:
        env, tp, accumulation, optimizers = self.env, self.tp, self.accumulation, self.optimizers
        local = source.shape[0]
        micro = local // accumulation
        # Sample i of this rank sits at position rank + W·i of the global batch (see dagan.train.sampling).
        positions = [env.rank + env.world_size * i for i in range(local)]
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        tr = tp.transform_params
        gen_params = [
            p for n in ("kp_detector", "generator") for g in optimizers[n].param_groups for p in g["params"]
        ]
        disc_params = [p for g in optimizers["discriminator"].param_groups for p in g["params"]]

        # ---- generator side
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        predictions, keypoints = [], []
        for m in range(accumulation):
            sl = slice(m * micro, (m + 1) * micro)
            transform = sample_transforms(
                positions[sl], tp.seed, self.steps_done, tr.sigma_affine, tr.sigma_tps, tr.points_tps,
                device=source.device,
            )
            last = m == accumulation - 1 or not env.distributed
            with nullcontext() if last else self.gen_ddp.no_sync():  # type: ignore[operator]
                with autocast:
                    losses, generated = self.gen_ddp(source[sl], driving[sl], transform)
                total = sum(losses.values())
                self.scalers["generator"].scale(total / accumulation).backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulation
            sums["total"] = sums.get("total", 0.0) + float(total.detach()) / accumulation
            predictions.append(generated["prediction"].detach())
            keypoints.append(generated["kp_driving"]["value"].detach())
            if m == 0:  # what visuals() shows
                self._shown = {"source": source[sl], "driving": driving[sl], **_detached(generated)}
        scaler = self.scalers["generator"]
        scaler.unscale_(optimizers["kp_detector"])
        scaler.unscale_(optimizers["generator"])
        if tp.grad_clip:
            torch.nn.utils.clip_grad_norm_(gen_params, tp.grad_clip)
        scaler.step(optimizers["kp_detector"])
        scaler.step(optimizers["generator"])
        scaler.update()

        # ---- discriminator side (its gradients from the generator pass are discarded)
        if tp.loss_weights.discriminator_gan != 0:
            optimizers["discriminator"].zero_grad(set_to_none=True)
            for m in range(accumulation):
                sl = slice(m * micro, (m + 1) * micro)
                last = m == accumulation - 1 or not env.distributed
                with nullcontext() if last else self.disc_ddp.no_sync():  # type: ignore[operator]
                    with autocast:
                        d_losses = self.disc_ddp(driving[sl], predictions[m], keypoints[m])
                    d_total = sum(d_losses.values())
                    self.scalers["discriminator"].scale(d_total / accumulation).backward()
                for k, v in d_losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulation
            dscaler = self.scalers["discriminator"]
            dscaler.unscale_(optimizers["discriminator"])
            if tp.grad_clip:
                torch.nn.utils.clip_grad_norm_(disc_params, tp.grad_clip)
            dscaler.step(optimizers["discriminator"])
            dscaler.update()
        if not all(math.isfinite(v) for v in sums.values()):
            bad = [k for k, v in sums.items() if not math.isfinite(v)]
            raise FloatingPointError(f"non-finite loss at step {self.steps_done + 1}: {', '.join(bad)}")
        return sums

    def visuals(self) -> dict[str, Tensor]:
        """Source and driving frames with keypoints, source disparity, deformed source, occlusion map and
        prediction of the last step's first micro-batch."""
        shown = self._shown
        cols: dict[str, Tensor] = {
            "source": draw_keypoints(shown["source"], shown["kp_source"]),
            "driving": draw_keypoints(shown["driving"], shown["kp_driving"]),
        }
        if shown.get("source_depth") is not None:
            cols["source_depth"] = _grey(shown["source_depth"])
        if shown.get("deformed") is not None:
            cols["deformed"] = shown["deformed"].float().cpu().clamp(0, 1)
        if shown.get("occlusion_map") is not None:
            cols["occlusion"] = _grey(shown["occlusion_map"], normalize=False)
        cols["prediction"] = shown["prediction"].float().cpu().clamp(0, 1)
        return cols

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The reenactment checkpoint: weights (the frozen depth net too, so the file animates on its own),
        optimisers, schedulers, gradient scalers, step, epoch and random state."""
        modules: dict[str, nn.Module] = {name: getattr(self.models, name) for name in TRAINED_MODULES}
        if self.models.depth_net is not None:
            modules["depth_net"] = self.models.depth_net
        meta = {
            "perceptual_backbone": self.perceptual_backbone,
            "world_size": self.env.world_size,
            "grad_accumulation": self.accumulation,
            "steps_per_epoch": self.steps_per_epoch,
            "grad_scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
        }
        return build_checkpoint(
            kind="reenactment",
            config=self.cfg.to_dict(),
            modules=modules,
            optimizers=self.optimizers,
            schedulers=self.schedulers,
            epoch=self.steps_done // self.steps_per_epoch,
            step=self.steps_done,
            meta=meta,
        )

    def load_state_dict(self, state: Mapping[str, Any], source: str | Path) -> None:
        """Continue from a reenactment checkpoint (checked beforehand to hold every state it needs). The
        frozen depth net is not loaded here: it is part of ``models``."""
        for name in TRAINED_MODULES:
            load_module_state(getattr(self.models, name), state["modules"][name], name, source)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        for name, scaler in self.scalers.items():
            saved = state.get("meta", {}).get("grad_scalers", {}).get(name)
            if saved:
                scaler.load_state_dict(saved)
        self.steps_done = int(state["step"])
        if state.get("rng"):
            restore_rng_state(state["rng"])


def _detached(generated: Mapping[str, Any]) -> dict[str, Tensor | None]:
    """The generator outputs :meth:`ReenactmentTrainer.visuals` draws, without their autograd graph."""
    def get(key: str) -> Tensor | None:
        value = generated.get(key)
        return None if value is None else value.detach()

    return {
        "kp_source": generated["kp_source"]["value"].detach(),
        "kp_driving": generated["kp_driving"]["value"].detach(),
        **{k: get(k) for k in ("source_depth", "deformed", "occlusion_map", "prediction")},
    }


def draw_keypoints(images: Tensor, kp: Tensor, radius: int = 1) -> Tensor:
    """Copies of B×3×H×W images with each keypoint (B×K×2 in [-1, 1], corner-aligned (x, y)) drawn as a
    (2·radius+1)² square in a distinct hue."""
    out = images.detach().float().cpu().clamp(0, 1).clone()
    b, _, h, w = out.shape
    kp = kp.detach().float().cpu()
    k = kp.shape[1]
    hues = torch.arange(k, dtype=torch.float32) / max(k, 1)
    # HSV (h, 1, 1) → RGB
    colours = torch.stack([(torch.abs(((hues * 6 + off) % 6) - 3) - 1).clamp(0, 1) for off in (0, 4, 2)], 1)
    xs = ((kp[..., 0] + 1) / 2 * (w - 1)).round().long()
    ys = ((kp[..., 1] + 1) / 2 * (h - 1)).round().long()
    for i in range(b):
        for j in range(k):
            x, y = int(xs[i, j]), int(ys[i, j])
            y0, y1, x0, x1 = max(0, y - radius), min(h, y + radius + 1), max(0, x - radius), min(w, x + radius + 1)
            if y0 < y1 and x0 < x1:
                out[i, :, y0:y1, x0:x1] = colours[j].view(3, 1, 1)
    return out


def _grey(maps: Tensor, normalize: bool = True) -> Tensor:
    """1-channel maps → 3-channel images, min-max normalised per image when ``normalize`` (display only)."""
    maps = maps.detach().float().cpu()
    if not normalize:
        return maps.clamp(0, 1).expand(-1, 3, -1, -1)
    flat = maps.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1, 1)
    return ((maps - lo) / (hi - lo).clamp_min(1e-8)).expand(-1, 3, -1, -1)


def _to_images(x: Any) -> Tensor:
    """A batch of frames from the data loader as B×3×H×W float in [0, 1] (uint8 and HWC layouts accepted)."""
    t = torch.as_tensor(x)
    if t.dim() == 4 and t.shape[1] != 3 and t.shape[-1] == 3:
        t = t.permute(0, 3, 1, 2)
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    return t.float()


def _pair(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, Mapping):
        return _to_images(batch["source"]), _to_images(batch["driving"])
    return _to_images(batch[0]), _to_images(batch[1])
