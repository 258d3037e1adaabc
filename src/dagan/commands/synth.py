"""``dagan synth OUT``: render a synthetic talking-head dataset with ground-truth depth, mask and pose."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagan.commands.arguments import crf, fraction, non_negative_float, positive_int
from dagan.data.synthetic import write_synthetic_dataset
from dagan.errors import DaganError

NAME = "synth"
HELP = "render synthetic talking heads with ground-truth depth, head pose and intrinsics"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ()
OUTPUTS: tuple[str, ...] = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output dataset folder (gets train/ and test/)")
    parser.add_argument("--videos", type=positive_int, default=10, help="number of clips (default 10)")
    parser.add_argument("--frames", type=positive_int, default=64, help="frames per clip (default 64)")
    parser.add_argument("--size", type=positive_int, default=256, help="frame size in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--test-fraction", type=fraction, default=0.2,
                        help="fraction of clips in test/ (default 0.2)")
    parser.add_argument("--non-rigid", type=non_negative_float, default=1.0,
                        help="strength of mouth/blink motion, 0 = rigid head (default 1)")
    parser.add_argument("--format", choices=("mp4", "png"), default="mp4",
                        help="mp4 (H.264, near-lossless) or png frame folders (exact) (default mp4)")
    parser.add_argument("--crf", type=crf, default=4, help="H.264 quality for mp4, 0 = lossless (default 4)")


def run(args: argparse.Namespace) -> int:
    for name, least in (("videos", 1), ("frames", 2), ("size", 16)):
        if getattr(args, name) < least:
            raise DaganError(f"--{name} must be at least {least}, got {getattr(args, name)}")
    if not 0.0 <= args.test_fraction < 1.0:
        raise DaganError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.crf < 0 or args.crf > 51:
        raise DaganError(f"--crf must be in 0..51, got {args.crf}")
    paths = write_synthetic_dataset(args.out, args.videos, args.frames, args.size, seed=args.seed,
                                    test_fraction=args.test_fraction, non_rigid=args.non_rigid,
                                    video_format=args.format, crf=args.crf)
    n_test = sum(p.parent.name == "test" for p in paths)
    print(f"wrote {len(paths)} clips ({len(paths) - n_test} train, {n_test} test) of {args.frames} frames "
          f"at {args.size}x{args.size} to {args.out}")
    return 0
