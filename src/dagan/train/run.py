"""Shared training-run infrastructure: run folder, config copy, ``log.txt``, scalars, image grids, progress.

One :class:`TrainingRun` per training process. Layout of a run folder::

    RUN/config.yaml            the resolved config (after overrides) used by this run
    RUN/log.txt                timestamped text log (messages and scalar summaries)
    RUN/metrics.jsonl          one JSON object per logged step: {"step": N, "loss/...": x, ...}
    RUN/checkpoints/           step-XXXXXXXX.pt and latest.pt (written by the trainer)
    RUN/visuals/               step-XXXXXXXX-<tag>.png image grids (also sent to TensorBoard)
    RUN/tensorboard/           TensorBoard event files (only when the ``tensorboard`` package is installed)

Only the main process writes (``enabled=False`` turns every method into a no-op, for DDP ranks > 0).

Typical use::

    run = TrainingRun.create(out=args.out, config=cfg, config_path=args.config)
    with run:
        bar = run.progress(total=num_steps, initial=start_step)
        for step in ...:
            ...
            run.scalars(step, {"loss/total": loss.item()})
            run.images(step, "train", {"frame": img, "disparity": disp})
            bar.update_losses({"loss": loss.item()})
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dagan.atomic_files import write_png_atomic
from dagan.config import Config, dump_config
from dagan.errors import CheckpointError, InputError

__all__ = [
    "TrainingRun",
    "ProgressBar",
    "seed_everything",
    "default_run_dir",
    "resolve_run_dir",
    "image_grid",
    "to_rgb",
    "save_png",
    "check_resume_compatible",
    "checkpoint_name",
    "read_metrics",
]

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a CPU run is reproducible given ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- run folder


def _safe_name(text: str) -> str:
    """File-name-safe, space-free version of ``text`` (other characters become ``-``)."""
    return _SAFE.sub("-", text).strip("-") or "run"


def default_run_dir(config_path: str | Path | None, root: str | Path = "runs", now: datetime | None = None) -> Path:
    """``runs/<config-stem>-<YYYYmmdd-HHMMSS>`` with no spaces; a numeric suffix avoids collisions."""
    stem = _safe_name(Path(config_path).stem if config_path else "run")
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stem}-{stamp}"
    path, i = base, 2
    while path.exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


def resolve_run_dir(
    out: str | Path | None, config_path: str | Path | None, resume: str | Path | None = None
) -> Path:
    """The run folder to use.

    * ``out`` given → that folder;
    * else resuming ``RUN/checkpoints/x.pt`` → ``RUN`` (the run continues in place);
    * else → :func:`default_run_dir`.
    """
    if out is not None:
        return Path(out)
    if resume is not None:
        ckpt = Path(resume)
        if ckpt.parent.name == "checkpoints":
            return ckpt.parent.parent
    return default_run_dir(config_path)


def checkpoint_name(step: int) -> str:
    """``step-00001234.pt`` — zero-padded so names sort by step."""
    return f"step-{int(step):08d}.pt"


def check_resume_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], keys: Sequence[str], source: str | Path
) -> None:
    """Raise :class:`CheckpointError` if the checkpoint's config differs from ``current`` at any dotted key.

    ``keys`` name what must match to continue training (architecture, model sizes), e.g.
    ``["model_params.arch", "model_params.depth_params"]``; other settings (learning rate, step count) may change.
    """
    for key in keys:
        a, b = saved, current
        for part in key.split("."):
            a = a.get(part, "<missing>") if isinstance(a, Mapping) else "<missing>"
            b = b.get(part, "<missing>") if isinstance(b, Mapping) else "<missing>"
        if a != b:
            diff = _first_difference(a, b, key)
            raise CheckpointError(
                f"cannot resume from {source}: it was trained with a different {diff} (use the same config "
                "or start a new run)"
            )


def _first_difference(a: Any, b: Any, key: str) -> str:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, "<missing>") != b.get(k, "<missing>"):
                return _first_difference(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{key}.{k}")
    return f"'{key}' ({a!r} in the checkpoint, {b!r} now)"


# --------------------------------------------------------------------------- images


def to_rgb(images: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
    """B×C×H×W → B×3×H×W in [0, 1] for display.

    3-channel images are clamped to [0, 1]. 1-channel maps (disparity, uncertainty, masks) are min-max
    normalised per image when ``normalize`` (default for 1-channel) and drawn with the viridis colour map.
    """
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.shape[1] == 3:
        return images.clamp(0, 1)
    if images.shape[1] != 1:
        raise ValueError(f"to_rgb expects 1 or 3 channels, got {images.shape[1]}")
    if normalize is None or normalize:
        flat = images.flatten(1)
        lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
        hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
        images = (images - lo) / (hi - lo).clamp_min(1e-8)
    from dagan.infer.depth_export import apply_colormap  # lazy: keeps import of this module light

    rgb = apply_colormap(images[:, 0].clamp(0, 1).numpy(), "viridis")  # B×H×W×3 float in [0, 1]
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()


def image_grid(
    columns: Mapping[str, torch.Tensor], max_rows: int = 4, size: int | None = None, pad: int = 2
) -> torch.Tensor:
    """Tile named B×C×H×W batches into one 3×H'×W' image in [0, 1]: one column per entry, one row per sample.

    1-channel maps are colour-mapped (see :func:`to_rgb`); every panel is resized to ``size`` (default: the
    first entry's height) so maps at different scales line up. The column order is the mapping's order.
    """
    if not columns:
        raise ValueError("image_grid needs at least one column")
    first = next(iter(columns.values()))
    side = int(size or first.shape[-2])
    rows = min(int(first.shape[0]), max_rows)
    panels = []
    for _, batch in columns.items():
        rgb = to_rgb(batch[:rows])
        if rgb.shape[-2:] != (side, side):
            rgb = F.interpolate(rgb, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
        panels.append(rgb)
    ncol = len(panels)
    grid = torch.ones(3, rows * side + (rows + 1) * pad, ncol * side + (ncol + 1) * pad)
    for c, panel in enumerate(panels):
        for r in range(min(rows, panel.shape[0])):
            y, x = pad + r * (side + pad), pad + c * (side + pad)
            grid[:, y : y + side, x : x + side] = panel[r]
    return grid


def save_png(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Write a 3×H×W float tensor in [0, 1] (or an H×W×3 uint8 array) as an 8-bit PNG, atomically."""
    if isinstance(image, torch.Tensor):
        arr = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    else:
        arr = np.asarray(image)
    return write_png_atomic(path, arr)


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """tqdm bar over training steps with ETA, steps/s and the latest losses as a postfix."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train", enabled: bool = True) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}",
        )

    def update(self, n: int = 1, losses: Mapping[str, float] | None = None) -> None:
        if losses:
            self.update_losses(losses, refresh=False)
        self._bar.update(n)

    def update_losses(self, losses: Mapping[str, float], refresh: bool = True) -> None:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=refresh)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if not self._bar.disable:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


# --------------------------------------------------------------------------- scalars / TensorBoard


class _TensorBoard:
    """SummaryWriter wrapper; becomes a no-op (with one log line) when tensorboard is not installed."""

    def __init__(self, log_dir: Path) -> None:
        self.available = False
        self._writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # ImportError, or a tensorboard/protobuf mismatch
            return
        self._writer = SummaryWriter(log_dir=str(log_dir))
        self.available = True

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, global_step=step)

    def image(self, step: int, tag: str, image: torch.Tensor) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, image, global_step=step, dataformats="CHW")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# --------------------------------------------------------------------------- the run


class TrainingRun:
    """A run folder with its log, metrics, TensorBoard writer, visuals and progress bar.

    Create with :meth:`create`; use as a context manager (or call :meth:`close`). With ``enabled=False``
    (non-main DDP ranks) nothing is written and every method is a no-op.
    """

    def __init__(
        self, directory: Path, *, enabled: bool = True, tensorboard: bool = True, echo: bool = True
    ) -> None:
        self.dir = Path(directory)
        self.enabled = enabled
        self.echo = echo
        self._log: TextIO | None = None
        self._metrics: TextIO | None = None
        self._tb: _TensorBoard | None = None
        self._bar: ProgressBar | None = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(exist_ok=True)
        self._log = open(self.dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115 — closed in close()
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            self._tb = _TensorBoard(self.dir / "tensorboard")
            if not self._tb.available:
                self.log("tensorboard is not installed: scalars go to metrics.jsonl, images to visuals/")

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        *,
        out: str | Path | None,
        config: Config | None = None,
        config_path: str | Path | None = None,
        resume: str | Path | None = None,
        enabled: bool = True,
        tensorboard: bool = True,
        echo: bool = True,
    ) -> TrainingRun:
        """Make (or reopen, when resuming) the run folder and write ``config.yaml``.

        A fresh run refuses a folder that already holds checkpoints (``InputError``) so a finished run is
        never silently overwritten; pass ``resume`` to continue one.
        """
        directory = resolve_run_dir(out, config_path, resume)
        if directory.exists() and not directory.is_dir():
            raise InputError(f"run folder {directory} exists and is not a folder")
        ckpts = directory / "checkpoints"
        if enabled and resume is None and ckpts.is_dir() and any(ckpts.glob("*.pt")):
            raise InputError(
                f"run folder {directory} already holds checkpoints: pass --resume {ckpts / 'latest.pt'} "
                "or choose another --out"
            )
        run = cls(directory, enabled=enabled, tensorboard=tensorboard, echo=echo)
        if config is not None:
            run.write_config(config, config_path)
        return run

    def write_config(self, config: Config, config_path: str | Path | None = None) -> None:
        """Write the resolved ``config`` to ``config.yaml`` (main process only) — unless that file is the
        user's ``--config`` itself (``--out`` is the folder holding it, as when a run is resumed with its own
        config.yaml): an input is never overwritten, and that file already describes the run."""
        if not self.enabled:
            return
        target = self.dir / "config.yaml"
        if config_path is not None and target.exists() and os.path.samefile(target, config_path):
            self.log(f"config.yaml is the --config file itself ({config_path}): left as it is")
            return
        dump_config(config, target)

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def visuals_dir(self) -> Path:
        return self.dir / "visuals"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / checkpoint_name(step)

    @property
    def latest_checkpoint(self) -> Path:
        return self.checkpoints_dir / "latest.pt"

    @property
    def tensorboard_available(self) -> bool:
        return bool(self._tb and self._tb.available)

    # ------------------------------------------------------------------ logging
    def log(self, message: str) -> None:
        """Append a timestamped line to ``log.txt`` (and print it above the progress bar when ``echo``)."""
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        assert self._log is not None
        self._log.write(line + "\n")
        self._log.flush()
        if self.echo:
            if self._bar is not None:
                self._bar.write(line)
            else:
                print(line, file=sys.stderr)

    def scalars(self, step: int, values: Mapping[str, float], log_line: bool = True) -> None:
        """Record scalars at ``step``: TensorBoard, ``metrics.jsonl`` and (optionally) one ``log.txt`` line."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items()}
        if self._tb is not None:
            self._tb.scalars(step, clean)
        assert self._metrics is not None
        self._metrics.write(json.dumps({"step": int(step), **{k: _json_float(v) for k, v in clean.items()}}) + "\n")
        self._metrics.flush()
        if log_line:
            body = " ".join(f"{k}={v:.5g}" for k, v in clean.items())
            self.log(f"step {step}: {body}")

    def images(
        self, step: int, tag: str, columns: Mapping[str, torch.Tensor], max_rows: int = 4, save: bool = True
    ) -> torch.Tensor | None:
        """Build an :func:`image_grid`, send it to TensorBoard and save ``visuals/step-XXXXXXXX-<tag>.png``."""
        if not self.enabled:
            return None
        grid = image_grid(columns, max_rows=max_rows)
        if self._tb is not None:
            self._tb.image(step, f"{tag}/{'|'.join(columns)}", grid)
        if save:
            save_png(grid, self.visuals_dir / f"step-{int(step):08d}-{_safe_name(tag)}.png")
        return grid

    def progress(self, total: int, initial: int = 0, desc: str = "train", show: bool | None = None) -> ProgressBar:
        """A progress bar with ETA; shown on the main process when stderr is a terminal (or ``show=True``)."""
        if show is None:
            show = sys.stderr.isatty()
        self._bar = ProgressBar(total, initial, desc, enabled=self.enabled and show)
        return self._bar

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
        for fh in (self._log, self._metrics):
            if fh is not None:
                fh.close()
        self._log = self._metrics = None

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN/metrics.jsonl`` (for tests, benchmarks and plotting)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

