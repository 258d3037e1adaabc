"""Training: the trainers (reenactment, FDN++ depth) and what they share.

* :mod:`dagan.train.loop` — the one step-indexed loop: checkpoints, ``latest.pt``, limits, Ctrl-C, logging;
* :mod:`dagan.train.sampling` — the batches of each step, a pure function of (seed, step);
* :mod:`dagan.train.run` — the run folder: config copy, ``log.txt``, metrics, image grids, progress bar;
* :mod:`dagan.train.distributed` — one process or many under ``torchrun``;
* :mod:`dagan.train.reenactment` / :mod:`dagan.train.trainer` — the reenactment step and ``train_reenactment``;
* :mod:`dagan.train.depth_trainer` — the depth step and ``train_depth``.
"""

from dagan.train.run import (
    ProgressBar,
    TrainingRun,
    check_resume_compatible,
    checkpoint_name,
    default_run_dir,
    image_grid,
    read_metrics,
    resolve_run_dir,
    save_png,
    seed_everything,
    to_rgb,
)

__all__ = [
    "ProgressBar",
    "TrainingRun",
    "check_resume_compatible",
    "checkpoint_name",
    "default_run_dir",
    "image_grid",
    "read_metrics",
    "resolve_run_dir",
    "save_png",
    "seed_everything",
    "to_rgb",
]
