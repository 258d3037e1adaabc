"""``dagan synth OUT``: render a synthetic talking-head dataset with ground-truth depth, mask and pose.

By default every clip shows the one synthetic person of :func:`dagan.data.synthetic.render_video`; with
``--identities N`` the clips show N different synthetic identities (:mod:`dagan.data.identities`) with
large head poses (:mod:`dagan.data.performances`), train and held-out test identities disjoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dagan.commands.arguments import crf, fraction, non_negative_float, non_negative_int, positive_int
from dagan.data.identities import identity_seeds
from dagan.data.identity_clips import write_identity_dataset
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
    parser.add_argument("--videos", type=positive_int, default=None,
                        help="number of clips (default 10); with --identities, clips per identity (default 2)")
    parser.add_argument("--identities", type=positive_int, default=None,
                        help="render N synthetic identities (head shape, real face photo, skin tone, hair, "
                             "background) with large head poses instead of one person")
    parser.add_argument("--split", choices=("train", "test", "both"), default=None,
                        help="with --identities: N training identities, N held-out test identities, or both "
                             "split by --test-fraction (default both)")
    parser.add_argument("--frames", type=positive_int, default=64, help="frames per clip (default 64)")
    parser.add_argument("--size", type=positive_int, default=256, help="frame size in pixels (default 256)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed; with --identities, the index of the first identity of each split "
                             "(default 0)")
    parser.add_argument("--test-fraction", type=fraction, default=0.2,
                        help="fraction of clips (with --identities: of identities) in test/ (default 0.2)")
    parser.add_argument("--non-rigid", type=non_negative_float, default=1.0,
                        help="strength of mouth/blink motion, 0 = rigid head (default 1)")
    parser.add_argument("--format", choices=("mp4", "png"), default="mp4",
                        help="mp4 (H.264, near-lossless) or png frame folders (exact) (default mp4)")
    parser.add_argument("--crf", type=crf, default=4, help="H.264 quality for mp4, 0 = lossless (default 4)")


def _test_count(items: int, test_fraction: float) -> int:
    """round(items · fraction), at least one when the fraction is positive and there are two or more items,
    always leaving one for training."""
    n_test = int(round(items * test_fraction))
    if test_fraction > 0 and items >= 2:
        n_test = max(n_test, 1)
    return min(n_test, items - 1)


def _run_identities(args: argparse.Namespace) -> int:
    n = args.identities
    split = args.split or "both"
    n_test = {"train": 0, "test": n, "both": _test_count(n, args.test_fraction)}[split]
    try:
        seeds = identity_seeds("train", n - n_test, args.seed) + identity_seeds("test", n_test, args.seed)
    except ValueError as exc:
        raise DaganError(f"--identities/--seed: {exc}") from None
    videos = args.videos or 2
    paths = write_identity_dataset(args.out, seeds, videos, args.frames, args.size, non_rigid=args.non_rigid,
                                   video_format=args.format, crf=args.crf)
    print(f"wrote {len(paths)} clips of {n} identities ({n - n_test} train, {n_test} test) of {args.frames} "
          f"frames at {args.size}x{args.size} to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    for name, least in (("videos", 1), ("frames", 2), ("size", 16)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            raise DaganError(f"--{name} must be at least {least}, got {getattr(args, name)}")
    if not 0.0 <= args.test_fraction < 1.0:
        raise DaganError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.crf < 0 or args.crf > 51:
        raise DaganError(f"--crf must be in 0..51, got {args.crf}")
    if args.identities is not None:
        return _run_identities(args)
    if args.split is not None:
        raise DaganError("--split needs --identities")
    paths = write_synthetic_dataset(args.out, args.videos or 10, args.frames, args.size, seed=args.seed,
                                    test_fraction=args.test_fraction, non_rigid=args.non_rigid,
                                    video_format=args.format, crf=args.crf)
    n_test = sum(p.parent.name == "test" for p in paths)
    print(f"wrote {len(paths)} clips ({len(paths) - n_test} train, {n_test} test) of {args.frames} frames "
          f"at {args.size}x{args.size} to {args.out}")
    return 0
