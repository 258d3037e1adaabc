"""Converting official DaGAN weights and Monodepth2 depth folders into our self-describing checkpoints.

The result stores the config the files describe, so every dagan command loads it without the official files.
Official optimizer states are not carried over (their parameter order is the official code's); the epoch is kept
and ``meta.imported_from`` records the source files.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dagan.checkpoints.depth import load_depth_models
from dagan.checkpoints.format import save_checkpoint
from dagan.checkpoints.official_arch import OFFICIAL_RESOLUTION
from dagan.checkpoints.official_files import read_official_reenactment, resolve_depth_folder
from dagan.checkpoints.reenactment import build_official_models
from dagan.config import Config

__all__ = ["import_official", "import_official_depth"]


def import_official(
    checkpoint_path: str | Path,
    depth_path: str | Path | None,
    output: str | Path,
    arch: str | None = None,
    *,
    config: Config | None = None,
) -> Path:
    """Convert official weights (+ depth folder) into our reenactment checkpoint at ``output``.

    ``arch`` and ``config`` only check that the files are what the caller expects (see
    :func:`~dagan.checkpoints.reenactment.build_official_models`).
    """
    official = read_official_reenactment(checkpoint_path)
    cfg, models = build_official_models(official, depth_path, arch, config=config, resolution=OFFICIAL_RESOLUTION)
    modules: dict[str, nn.Module] = {"kp_detector": models.kp_detector, "generator": models.generator}
    if models.discriminator is not None:
        modules["discriminator"] = models.discriminator
    if models.depth_net is not None:
        modules["depth_net"] = models.depth_net
    meta = {
        "imported_from": {
            "format": official.source,
            "checkpoint": [str(p) for p in official.files],
            "depth": str(depth_path) if depth_path is not None else "",
            "epoch": official.epoch if official.epoch is not None else -1,
        }
    }
    return save_checkpoint(
        output,
        kind="reenactment",
        config=cfg.to_dict(),
        modules=modules,
        epoch=official.epoch or 0,
        step=0,
        rng=False,
        meta=meta,
    )


def import_official_depth(depth_path: str | Path, output: str | Path) -> Path:
    """Convert a Monodepth2 depth folder into our depth checkpoint (``depth_net``, plus ``pose_net`` when the
    folder has pose files of the same backbone)."""
    folder = resolve_depth_folder(depth_path)  # a Monodepth2 folder only: ours needs no import
    depth = load_depth_models(folder)
    modules: dict[str, nn.Module] = {"depth_net": depth.depth_net}
    if depth.pose_net is not None:
        modules["pose_net"] = depth.pose_net
    meta = {"imported_from": {"format": "Monodepth2 depth folder", "depth": str(folder)}}
    return save_checkpoint(
        output, kind="depth", config=depth.config.to_dict(), modules=modules, epoch=0, step=0, rng=False, meta=meta
    )
