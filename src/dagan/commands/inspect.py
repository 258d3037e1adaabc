"""``dagan inspect CKPT [--json]``: say what a checkpoint is — ours, an official DaGAN file, a depth folder.

Prints the format, arch, keypoints, resolution, depth backbone, parameter counts per module and the training
epoch/step. Exit status 0 for a recognised checkpoint, 1 for a readable PyTorch file that is none of them,
2 (one ``dagan: error:`` line) for a missing, corrupt or unsafe file.
"""

from __future__ import annotations

import argparse
import json

NAME = "inspect"
HELP = (
    "say what a checkpoint is (dagan, official DaGAN .pth.tar / per-module file, Monodepth2 depth folder): "
    "arch, keypoints, resolution, depth backbone, parameters, training step"
)
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("checkpoint",)
OUTPUTS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or a Monodepth2 depth folder")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    from dagan.checkpoints.describe import describe_checkpoint

    desc = describe_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(desc.to_dict(), indent=2))
    else:
        print("\n".join(desc.lines()))
    return 0 if desc.format != "unknown" else 1
