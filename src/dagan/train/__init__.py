"""Training: shared run infrastructure (:mod:`dagan.train.run`) and the trainers (FDN++ depth, reenactment)."""

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
