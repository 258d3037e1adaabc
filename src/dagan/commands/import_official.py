"""``dagan import-official``: convert the official DaGAN (CVPR 2022) weights into a dagan checkpoint.

    dagan import-official --checkpoint DaGAN_vox_adv_256.pth.tar --depth depth/models/weights_19 -o dagan.pt
    dagan import-official --depth depth/models/weights_19 -o depth.pt        # the depth model alone

The generator kind (plain / SPADE), keypoint count, widths and depth backbone are read from the files;
``--arch`` or ``--config`` only check that the files are what you expect. The result is a self-describing
checkpoint (config included) that every dagan command loads; ``dagan animate`` also reads the official
files directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dagan.config import ARCHS
from dagan.errors import InputError

NAME = "import-official"
HELP = (
    "convert official DaGAN weights (.pth.tar or per-module files + Monodepth2 depth folder) to a dagan "
    "checkpoint"
)
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("checkpoint", "depth", "config")
OUTPUTS: tuple[str, ...] = ("output",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="official training checkpoint (e.g. DaGAN_vox_adv_256.pth.tar), a per-module generator.pt / "
        "kp_detector.pt (its companions are found beside it) or their folder",
    )
    parser.add_argument(
        "--depth",
        "--depth-checkpoint",
        dest="depth",
        metavar="DIR",
        help="Monodepth2 depth folder with encoder.pth and depth.pth (e.g. depth/models/weights_19)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="dagan checkpoint to write")
    parser.add_argument(
        "--arch", choices=ARCHS, help="expected generator kind; refused if the file holds another"
    )
    parser.add_argument("--config", metavar="CFG", help="expected model config; the files must fit it")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args: argparse.Namespace) -> int:
    from dagan.checkpoints.describe import describe_checkpoint
    from dagan.checkpoints.official_import import import_official, import_official_depth
    from dagan.config import load_config

    if not args.checkpoint and not args.depth:
        raise InputError("nothing to import: give --checkpoint FILE (and --depth DIR), or --depth DIR alone")
    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"output {output} is a folder; give a file name, e.g. {output / 'dagan.pt'}")
    inputs = [Path(p).resolve() for p in (args.checkpoint, args.depth) if p]
    if output.resolve() in inputs:
        raise InputError(f"output {output} is one of the input files")
    if output.exists() and not args.force:
        raise InputError(f"output {output} exists; pass --force to overwrite it")
    config = load_config(args.config) if args.config else None
    if args.checkpoint:
        import_official(args.checkpoint, args.depth, output, args.arch, config=config)
    else:
        if args.arch or config is not None:
            raise InputError("--arch / --config apply to a reenactment checkpoint; give --checkpoint FILE")
        import_official_depth(args.depth, output)
    print(f"wrote {output}")
    print("\n".join(describe_checkpoint(output).lines()[1:]))
    return 0
