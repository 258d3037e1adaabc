"""FDN++ (and FDN) self-supervised face-depth training on consecutive video frames (DaGAN++ §III-B).

One step, for a batch of frame pairs (I_t target, I_{t+1} source):

1. the depth net gives disparities σ_s at scales s = 0..S−1 (1/2^s resolution) for I_t;
2. the pose net on I_t ⊕ I_{t+1} gives the motion T_{t→t+1} = [R | t] (axis-angle + translation), the
   intrinsics K of this pair (learned, no camera parameters needed) and, for FDN++, the uncertainty U;
3. per scale, σ_s is upsampled bilinearly to full resolution (Monodepth2), converted to depth, and I_{t+1}
   is inverse-warped into the target view with K and T; the loss of :func:`dagan.losses.depth_loss`
   (photometric SSIM+L1 with α = 0.8, auto-mask, uncertainty weighting with its log regulariser, and
   edge-aware smoothness on σ_s at its own resolution, divided by 2^s as in Monodepth2) is averaged over
   the scales.

Both networks are optimised jointly with Adam (:class:`DepthTrainer`), stepped by the loop shared with
reenactment training (:func:`dagan.train.loop.train_loop`). The batch of step n is a pure function of
(seed, n) (:class:`dagan.train.sampling.StreamBatchSampler`), so a run resumed from a checkpoint continues
exactly as if uninterrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from dagan.checkpoints.depth import DEPTH_NET_KEYS, adopt_depth_params
from dagan.checkpoints.format import build_checkpoint, load_checkpoint, load_module_state
from dagan.checkpoints.rng_state import restore_rng_state
from dagan.config import Config, ConfigError, config_from_dict
from dagan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, probe_video, read_frames
from dagan.devices import resolve_device
from dagan.errors import CheckpointError, InputError
from dagan.geometry.camera import disparity_to_depth, inverse_warp, pose_vector_to_matrix
from dagan.losses import depth_loss, min_reprojection_error
from dagan.models.factory import build_depth_net, build_pose_net
from dagan.train.loop import LoopPlan, TrainResult, check_not_finished, end_step, train_loop
from dagan.train.run import TrainingRun, check_resume_compatible, seed_everything
from dagan.train.sampling import StreamBatchSampler, step_loader

__all__ = [
    "RESUME_KEYS",
    "DepthFullModel",
    "DepthTrainer",
    "FramePairDataset",
    "find_videos",
    "train_depth",
]

#: Config entries that must match to resume a depth run (the networks' shapes and the training geometry).
RESUME_KEYS = (
    "dataset_params.frame_shape",
    "model_params.depth_params.backbone",
    "model_params.depth_params.width",
    "model_params.depth_params.uncertainty",
    "model_params.depth_params.learn_intrinsics",
    "model_params.depth_params.num_scales",
    "model_params.depth_params.min_depth",
    "model_params.depth_params.max_depth",
)
#: Above this many bytes of decoded frames (at training size) the dataset reads frames on demand.
CACHE_LIMIT_BYTES = 512 * 2**20


# --------------------------------------------------------------------------- data


def find_videos(root: str | Path) -> list[Path]:
    """Training videos under ``root`` (``root/train`` when it exists, VoxCeleb layout): video files and
    frame folders (directories holding images), sorted by path."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"data folder not found: '{root}'")
    if not root.is_dir():
        raise InputError(f"data path '{root}' is not a folder")
    base = root / "train" if (root / "train").is_dir() else root
    found: list[Path] = []
    for path in sorted(base.rglob("*")):
        if path.name.startswith("."):
            continue
        if _is_video(path):
            found.append(path)
    if not found:
        raise InputError(
            f"no videos or frame folders found in '{base}' (expected {', '.join(VIDEO_EXTENSIONS)} files or "
            "folders of frames)"
        )
    return found


def _is_video(path: Path) -> bool:
    """A video file, or a folder that directly holds image files (a frame folder)."""
    if path.is_file():
        return path.suffix.lower() in VIDEO_EXTENSIONS
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file())


class FramePairDataset(Dataset):
    """Consecutive frame pairs (I_t, I_{t+gap}) of every video, resized to ``size``×``size``.

    Item keys are ``(index, hflip, tflip)`` (a plain int means no flips): ``hflip`` mirrors both frames,
    ``tflip`` swaps them (the pose net then sees the reverse motion). Items are dicts with ``target`` and
    ``source`` (3×H×W float in [0, 1]) and ``video`` / ``frame`` (which pair it is). Small datasets are decoded
    once and kept in memory (``cache=None`` decides by size).
    """

    def __init__(self, root: str | Path, size: int, frame_gap: int = 1, cache: bool | None = None) -> None:
        if frame_gap < 1:
            raise InputError(f"frame_gap must be at least 1, got {frame_gap}")
        self.size = int(size)
        self.frame_gap = int(frame_gap)
        self.videos = find_videos(root)
        counts = [probe_video(v).num_frames for v in self.videos]
        self.pairs: list[tuple[int, int]] = [
            (v, t) for v, n in enumerate(counts) for t in range(max(n - self.frame_gap, 0))
        ]
        if not self.pairs:
            raise InputError(f"the videos in '{root}' are too short: need more than {frame_gap} frames")
        if cache is None:
            cache = sum(counts) * self.size * self.size * 3 <= CACHE_LIMIT_BYTES
        self._frames: list[np.ndarray] | None = None
        if cache:
            self._frames = [read_frames(v, range(n), self.size) for v, n in zip(self.videos, counts)]

    def __len__(self) -> int:
        return len(self.pairs)

    def _pair(self, index: int) -> np.ndarray:
        v, t = self.pairs[index]
        if self._frames is not None:
            return self._frames[v][[t, t + self.frame_gap]]
        return read_frames(self.videos[v], [t, t + self.frame_gap], self.size)

    def __getitem__(self, key: int | tuple[int, bool, bool]) -> dict[str, Any]:
        index, hflip, tflip = (key, False, False) if isinstance(key, int) else key
        frames = self._pair(int(index))  # 2×H×W×3 uint8
        if hflip:
            frames = frames[:, :, ::-1]
        if tflip:
            frames = frames[::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        v, t = self.pairs[int(index)]
        return {"target": tensor[0], "source": tensor[1], "video": v, "frame": t}


# --------------------------------------------------------------------------- the objective and the trainer


class DepthFullModel(nn.Module):
    """The depth net, the pose net and the FDN++ objective for one batch of frame pairs (see the module
    docstring). When the depth net is frozen it stays in eval mode."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.params = cfg.depth_train_params
        self.depth_params = cfg.model_params.depth_params
        self.depth_net = build_depth_net(cfg)
        self.pose_net = build_pose_net(cfg)
        self.depth_frozen = False

    def train(self, mode: bool = True) -> DepthFullModel:
        super().train(mode)
        if getattr(self, "depth_frozen", False):
            self.depth_net.eval()
        return self

    def forward(self, target: Tensor, source: Tensor) -> dict[str, Any]:
        """Losses (averaged over scales) and the maps to visualise, for target/source batches B×3×H×W."""
        h, w = target.shape[-2:]
        disps = self.depth_net.forward_multiscale(target)
        pose = self.pose_net(target, source)
        T = pose_vector_to_matrix(pose["axisangle"], pose["translation"])  # target camera → source camera
        K, U = pose["intrinsics"], pose["uncertainty"]
        sums: dict[str, Tensor] = {}
        warped0 = None
        for s, disp in enumerate(disps):
            disp_full = disp if s == 0 else F.interpolate(disp, size=(h, w), mode="bilinear", align_corners=False)
            depth = disparity_to_depth(disp_full, self.depth_params.min_depth, self.depth_params.max_depth)
            warped, _ = inverse_warp(source, depth, T, K)
            terms = depth_loss(target, warped, source, disp, U, self.params)
            terms["smoothness"] = terms["smoothness"] / 2**s  # Monodepth2: weaker at coarse scales
            terms["total"] = terms["photometric"] + terms["smoothness"] + terms["uncertainty_reg"]
            for k, v in terms.items():
                sums[k] = sums.get(k, 0) + v
            if s == 0:
                warped0 = warped
        losses = {k: v / len(disps) for k, v in sums.items()}
        return {"losses": losses, "disparity": disps[0], "uncertainty": U, "intrinsics": K,
                "reconstruction": warped0, "pose": pose}


class DepthTrainer:
    """:class:`DepthFullModel` with its Adam optimiser and step-wise MultiStepLR: one step per :meth:`step`,
    the whole state as a depth checkpoint (:meth:`state_dict` / :meth:`load_state_dict`)."""

    progress_keys: tuple[str, ...] = ("loss/total", "depth/photometric_error")

    def __init__(self, cfg: Config, device: str | torch.device = "cpu", data_root: str | Path | None = None) -> None:
        self.cfg = cfg
        self.params = cfg.depth_train_params
        self.device = torch.device(device)
        self.model = DepthFullModel(cfg).to(self.device)
        self.optimizer, self.scheduler = self._optimise(list(self.model.parameters()))
        self.steps_done = 0
        self.meta = {} if data_root is None else {"data_root": str(data_root)}
        self._shown: dict[str, Any] = {}

    def _optimise(self, params: list[nn.Parameter]) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR]:
        optimizer = _adam(params, self.params.lr)
        return optimizer, torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(self.params.lr_milestones), gamma=0.1
        )

    @property
    def depth_net(self) -> nn.Module:
        return self.model.depth_net

    @property
    def pose_net(self) -> nn.Module:
        return self.model.pose_net

    @property
    def uses_uncertainty(self) -> bool:
        return self.model.pose_net.predicts_uncertainty

    def freeze_depth_net(self, state: Mapping[str, Any], source: str | Path) -> None:
        """Load trained depth-net weights and keep them fixed: from now on only the pose net (motion,
        intrinsics and uncertainty heads) is optimised. The frozen net stays in eval mode, so its BatchNorm
        uses the stored statistics and the pose net learns against the disparities inference produces."""
        load_module_state(self.model.depth_net, state, "depth_net", source)
        self.model.depth_net.requires_grad_(False)
        self.optimizer, self.scheduler = self._optimise(list(self.model.pose_net.parameters()))
        self.model.depth_frozen = True
        self.model.train(self.model.training)

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One Adam step on a batch of frame pairs (``target``, ``source``); the scalars to log."""
        target, source = batch["target"].to(self.device), batch["source"].to(self.device)
        self.model.train()
        out = self.model(target, source)
        self.optimizer.zero_grad(set_to_none=True)
        out["losses"]["total"].backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        self._shown = {"target": target, "source": source, "disparity": out["disparity"].detach(),
                       "uncertainty": None if out["uncertainty"] is None else out["uncertainty"].detach(),
                       "reconstruction": out["reconstruction"].detach()}
        return self._scalars(out, self.cfg.resolution)

    def _scalars(self, out: Mapping[str, Any], width: int) -> dict[str, float]:
        losses = out["losses"]
        values = {f"loss/{k}": float(v.detach()) for k, v in losses.items() if k in
                  ("total", "photometric", "smoothness", "uncertainty_reg")}
        values["depth/photometric_error"] = float(losses["photometric_error"])
        values["depth/automask_fraction"] = float(losses["automask_fraction"])
        values["depth/focal_over_width"] = float(out["intrinsics"][:, 0, 0].detach().mean()) / width
        values["depth/disparity_mean"] = float(out["disparity"].detach().mean())
        if out["uncertainty"] is not None:
            values["depth/uncertainty_mean"] = float(out["uncertainty"].detach().mean())
        values["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return values
    @torch.no_grad()
    def visuals(self) -> dict[str, Tensor]:
        """Columns of the image grid of the last step: frame, source, disparity, uncertainty, reconstruction and
        auto-mask."""
        shown = self._shown
        target, source, recon = shown["target"], shown["source"], shown["reconstruction"]
        _, mask = min_reprojection_error(target, recon, source, self.params.ssim_alpha, True)
        cols = {"frame": target, "source": source, "disparity": shown["disparity"]}
        if shown["uncertainty"] is not None:
            cols["uncertainty"] = shown["uncertainty"]
        cols["reconstruction"] = recon
        cols["automask"] = mask
        return cols

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The depth checkpoint: both nets, optimiser, scheduler, step and random state."""
        return build_checkpoint(
            kind="depth", config=self.cfg.to_dict(),
            modules={"depth_net": self.model.depth_net, "pose_net": self.model.pose_net},
            optimizers={"adam": self.optimizer}, schedulers={"lr": self.scheduler},
            step=self.steps_done, meta=self.meta,
        )

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str | Path) -> None:
        """Continue from a depth checkpoint (its nets strictly, optimiser, scheduler, step, random state)."""
        modules, opts, scheds = ckpt.get("modules", {}), ckpt.get("optimizers", {}), ckpt.get("schedulers", {})
        for name in ("depth_net", "pose_net"):
            if name not in modules:
                raise CheckpointError(f"cannot resume from {source}: it has no '{name}' weights")
            load_module_state(getattr(self.model, name), modules[name], name, source)
        if "adam" not in opts or "lr" not in scheds:
            raise CheckpointError(f"cannot resume from {source}: it holds no optimizer/scheduler state")
        try:
            self.optimizer.load_state_dict(opts["adam"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot resume from {source}: optimizer state does not fit ({exc})") from None
        self.scheduler.load_state_dict(scheds["lr"])
        # A config may change the milestones between runs: the current config wins.
        self.scheduler.milestones = type(self.scheduler.milestones)(self.params.lr_milestones)
        self.steps_done = int(ckpt.get("step", 0))
        if ckpt.get("rng"):
            restore_rng_state(ckpt["rng"])


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused (single-kernel) update when this torch/device supports it: on CPU the
    per-tensor update of ~28 M parameters otherwise costs more than the forward and backward passes."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


# --------------------------------------------------------------------------- the run


def train_depth(
    cfg: Config,
    data_root: str | Path,
    *,
    out: str | Path | None = None,
    config_path: str | Path | None = None,
    resume: str | Path | None = None,
    max_steps: int | None = None,
    device: str | None = None,
    show_progress: bool | None = None,
    echo: bool = True,
    tensorboard: bool = True,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    frozen_depth: str | Path | None = None,
) -> TrainResult:
    """Train FDN++ (FDN when ``model_params.depth_params.uncertainty`` is false) on the videos under
    ``data_root`` and return where the run went.

    ``max_steps`` replaces ``depth_train_params.num_steps`` (the step count at which training stops, also
    when resuming). ``max_seconds`` stops early (after a checkpoint) once that many seconds of ``clock``
    (default wall time) have passed — used by benchmarks with a time budget. Ctrl-C stops after the step in
    progress, with a checkpoint, and raises :class:`KeyboardInterrupt` (see :mod:`dagan.train.loop`).
    ``resume`` continues a run from one of its checkpoints. ``frozen_depth`` (a depth or reenactment
    checkpoint) supplies a trained depth net that is kept fixed while only the pose net trains (see
    :meth:`DepthTrainer.freeze_depth_net`).
    """
    p = cfg.depth_train_params
    end, end_source = end_step(max_steps, p.num_steps, f"depth_train_params.num_steps {p.num_steps}")
    dev = resolve_device(device)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume, map_location="cpu", kind="depth")
        check_resume_compatible(ckpt.get("config", {}), cfg.to_dict(), RESUME_KEYS, resume)

    frozen = None
    if frozen_depth is not None:  # the run's config must describe the net it freezes (its width, backbone…)
        frozen = load_checkpoint(frozen_depth, map_location="cpu")
        if "depth_net" not in frozen.get("modules", {}):
            raise CheckpointError(f"{frozen_depth} holds no depth net ('depth_net' module) to freeze")
        try:
            trained = config_from_dict(frozen.get("config", {})).model_params.depth_params
        except ConfigError as exc:
            raise CheckpointError(f"{frozen_depth}: the config stored in the checkpoint is invalid ({exc})") from None
        adopt_depth_params(cfg, trained, frozen_depth, keys=(*DEPTH_NET_KEYS, "min_depth", "max_depth"))

    dataset = FramePairDataset(data_root, cfg.resolution, p.frame_gap)
    seed_everything(p.seed)
    trainer = DepthTrainer(cfg, dev, data_root=data_root)
    if frozen is not None:
        trainer.freeze_depth_net(frozen["modules"]["depth_net"], frozen_depth)  # type: ignore[arg-type]
    if ckpt is not None:
        trainer.load_state_dict(ckpt, resume)  # type: ignore[arg-type]
        check_not_finished(resume, trainer.steps_done, end, end_source)  # type: ignore[arg-type]
    start = trainer.steps_done

    flips = cfg.dataset_params.augmentation_params.flip_param
    sampler = StreamBatchSampler(len(dataset), p.batch_size, p.seed, start, end, flips.horizontal_flip,
                                 flips.time_flip)
    loader = step_loader(dataset, sampler, p.num_workers, pin_memory=dev.type == "cuda")
    run = TrainingRun.create(out=out, config=cfg, config_path=config_path, resume=resume, echo=echo,
                             tensorboard=tensorboard)
    with run:
        what = "FDN++" if trainer.uses_uncertainty else "FDN"
        run.log(f"{what} depth training: {len(dataset.videos)} videos, {len(dataset)} frame pairs, "
                f"{cfg.resolution}x{cfg.resolution}, steps {start}->{end}, device {dev}")
        plan = LoopPlan(end=end, end_source=end_source, log_every=p.log_freq, visual_every=p.visual_freq,
                        checkpoint_every=p.checkpoint_freq, max_seconds=max_seconds)
        return train_loop(trainer, loader, run, plan, resumed_from=resume, clock=clock, show_progress=show_progress,
                          desc=what)
