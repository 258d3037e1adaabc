"""``dagan train-depth``: self-supervised FDN++ face-depth training on consecutive video frames."""

from __future__ import annotations

import argparse

from dagan.commands.arguments import positive_int

NAME = "train-depth"
HELP = "train the FDN++ face depth network (self-supervised, on consecutive video frames)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("config", "data", "resume")
OUTPUTS: tuple[str, ...] = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        metavar="CFG",
        help="YAML config, e.g. configs/depth-vox-256.yaml (configs/depth-fdn-vox-256.yaml "
        "trains FDN, without the uncertainty head)",
    )
    parser.add_argument(
        "--data",
        metavar="ROOT",
        help="folder of training videos or frame folders (ROOT/train is used when it exists); "
        "default: dataset_params.root_dir of the config",
    )
    parser.add_argument(
        "--out",
        metavar="RUN",
        help="run folder (default: runs/<config-name>-<time>; when resuming, the checkpoint's run)",
    )
    parser.add_argument(
        "--resume", metavar="CKPT", help="continue a run from one of its checkpoints (latest.pt)"
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        metavar="N",
        help="stop at step N (overrides depth_train_params.num_steps; counts from step 0, also "
        "when resuming)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dagan.config import load_config
    from dagan.train.depth_trainer import train_depth

    cfg = load_config(args.config)
    data = args.data if args.data is not None else cfg.dataset_params.root_dir
    result = train_depth(
        cfg,
        data,
        out=args.out,
        config_path=args.config,
        resume=args.resume,
        max_steps=args.max_steps,
        device=args.device,
        show_progress=False if args.no_progress else None,
    )
    print(result.summary())
    return 0
