"""``dagan demo``: animate the bundled public-domain photo with the bundled real clip (offline)."""

from __future__ import annotations

import argparse

from dagan.commands.arguments import positive_int

NAME = "demo"
HELP = "animate a bundled photo with a bundled real clip using the bundled small demo model (offline)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("checkpoint", "source", "driving")
OUTPUTS: tuple[str, ...] = ("output", "output/result.mp4", "output/side_by_side.mp4", "output/source_depth.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dagan.infer.demo import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE

    parser.add_argument(
        "-o", "--output", "--out", dest="output", default="demo_output",
        help="folder for result.mp4, side_by_side.mp4 and source_depth.png (default demo_output)",
    )
    parser.add_argument(
        "--checkpoint", default=str(DEMO_CHECKPOINT),
        help="reenactment checkpoint with a depth net (default: the bundled 64x64 demo model)",
    )
    parser.add_argument("--source", default=str(DEMO_SOURCE), help="source face image (default: astronaut)")
    parser.add_argument(
        "--driving", default=str(DEMO_DRIVING), help="driving video (default: the bundled real clip)"
    )
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                        help="animate only the first N driving frames (default: all)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show progress bars (default: on)")


def run(args: argparse.Namespace) -> int:
    from dagan.infer.demo import run_demo

    res = run_demo(args.output, args.checkpoint, args.source, args.driving, args.max_frames, args.progress)
    print(f"animated {res.num_frames} frames in {res.seconds:.0f} s"
          + (" (with the driving audio)" if res.has_audio else ""))
    print(f"result:       {res.result}")
    print(f"side by side: {res.side_by_side}  (source | driving | result | source depth)")
    print(f"source depth: {res.source_depth}")
    return 0
