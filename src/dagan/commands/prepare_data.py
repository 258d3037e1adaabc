"""``dagan prepare-data INPUT… -o ROOT``: face-cropped training clips from raw videos (or the standard
VoxCeleb crops from their metadata), in the ``ROOT/{train,test}/<person>#<video>#<tube>`` layout."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dagan.commands.arguments import (
    crf,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)

NAME = "prepare-data"
HELP = "turn raw videos into face-cropped training clips (face tubes, or the VoxCeleb metadata crops)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("inputs", "split_csv", "identities", "metadata")
OUTPUTS: tuple[str, ...] = ("root",)

DESCRIPTION = """\
Turn raw videos into training data. For every video: detect faces, link them into tubes, cut the tubes at
scene changes and lost tracks and where the face leaves the tube's first box (IoU < --min-iou), drop pieces
shorter than --min-frames, crop each piece with one fixed square box (the union of its face boxes enlarged
by --increase per side) and write it resized to --size as ROOT/{train,test}/<person>#<video>#<tube>.mp4 (or a
PNG frame folder). Several faces give several tubes. With --metadata, reproduce the standard VoxCeleb crops
from downloaded YouTube videos named <video_id>.mp4 instead. Finished videos are skipped when the command is
run again; a video that cannot be read is reported and skipped. Exit status 1 when a video failed or no clip
exists."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, frame folders, or folders searched recursively for them",
    )
    parser.add_argument(
        "-o",
        "--out",
        "--output",
        dest="root",
        required=True,
        type=Path,
        metavar="ROOT",
        help="dataset folder to write train/ and test/ into",
    )
    parser.add_argument(
        "--size",
        type=positive_int,
        default=256,
        help="side of the square crops in pixels (256 for VoxCeleb, 512 for HDTF; default 256)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("mp4", "png"),
        default="mp4",
        help="one H.264 MP4 per clip, or one folder of PNG frames per clip (default mp4)",
    )
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="hold out this fraction of the identities (whole identities) as test (default 0)",
    )
    split.add_argument(
        "--split-csv",
        type=Path,
        metavar="CSV",
        help="CSV with columns video,split[,person] giving every video's split (train/test)",
    )
    parser.add_argument(
        "--identities",
        type=Path,
        metavar="CSV",
        help="CSV with columns video,person naming the person in each video (default: one "
        "identity per video). 'video' is the file name, its stem or its path",
    )
    parser.add_argument(
        "--metadata",
        type=Path,
        metavar="CSV",
        help="VoxCeleb metadata (video_id,start,end,bbox,fps,width,height,partition,person_id): "
        "crop these clips from the INPUT videos named <video_id>.<ext> instead of "
        "detecting faces",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=min(4, os.cpu_count() or 1),
        help="videos processed in parallel (default: min(4, CPU count))",
    )
    tubes = parser.add_argument_group("face tubes")
    tubes.add_argument(
        "--detector",
        default="auto",
        choices=("auto", "mediapipe", "dlib", "opencv"),
        help="face detector (default auto: mediapipe, else dlib, else opencv)",
    )
    tubes.add_argument(
        "--min-frames",
        type=positive_int,
        default=64,
        help="drop tube pieces shorter than this many frames (default 64)",
    )
    tubes.add_argument(
        "--increase",
        type=non_negative_float,
        default=0.1,
        help="enlarge the union of a piece's face boxes by this fraction per side (default 0.1)",
    )
    tubes.add_argument(
        "--min-iou",
        type=unit_interval,
        default=0.25,
        help="split a tube where the face box overlaps the piece's first box by less (default 0.25)",
    )
    tubes.add_argument(
        "--box-scale",
        type=positive_float,
        default=1.5,
        help="enlarge each detector box by this factor before the union (default 1.5: a still "
        "face's crop is 1.8 face boxes wide, like dagan animate's crops)",
    )
    tubes.add_argument(
        "--detect-every",
        type=positive_int,
        default=1,
        metavar="K",
        help="run the detector on every K-th frame and interpolate the boxes in between "
        "(frames at scene cuts are always detected; default 1)",
    )
    tubes.add_argument(
        "--detect-max-side",
        type=non_negative_int,
        default=640,
        metavar="PX",
        help="run the detector on frames scaled down to this longer side (faster on HD video; "
        "0: full size; default 640)",
    )
    tubes.add_argument(
        "--max-gap",
        type=non_negative_int,
        default=5,
        help="a tube survives this many frames without a detection (default 5)",
    )
    tubes.add_argument(
        "--cut-threshold",
        type=unit_interval,
        default=0.3,
        help="scene cut when consecutive frames' colour histograms differ by more than this "
        "total-variation distance (default 0.3)",
    )
    tubes.add_argument(
        "--min-face",
        type=non_negative_float,
        default=0.0,
        help="drop pieces whose median face box side is below this many pixels (default 0)",
    )
    tubes.add_argument(
        "--pad",
        choices=("zeros", "edge"),
        default="zeros",
        help="fill for crop parts outside the frame: black, or the nearest border pixel",
    )
    parser.add_argument("--crf", type=crf, default=18, help="H.264 quality of MP4 clips (lower: better; 18)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo every video and rewrite existing clips (default: skip finished videos)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from dagan.errors import InputError
    from dagan.prepare.planning import Job, plan_metadata_jobs, plan_video_jobs
    from dagan.prepare.runner import PrepareOptions, prepare
    from dagan.prepare.tubes import TubeOptions

    tube = TubeOptions(
        size=args.size,
        min_frames=args.min_frames,
        increase=args.increase,
        min_iou=args.min_iou,
        box_scale=args.box_scale,
        max_gap=args.max_gap,
        detect_every=args.detect_every,
        detect_max_side=args.detect_max_side,
        cut_threshold=args.cut_threshold,
        min_face=args.min_face,
        pad=args.pad,
    )
    options = PrepareOptions(
        root=args.root, fmt=args.fmt, detector=args.detector, crf=args.crf, tube=tube, force=args.force
    )
    notes: list[str] = []
    jobs: list[Job]
    if args.metadata is not None:
        if args.split_csv is not None or args.test_fraction or args.identities is not None:
            raise InputError(
                "--metadata takes splits and identities from the metadata; "
                "drop --split-csv, --test-fraction and --identities"
            )
        jobs = list(plan_metadata_jobs(args.inputs, args.metadata, notes))
    else:
        jobs = list(plan_video_jobs(args.inputs, args.test_fraction, args.split_csv, args.identities, notes))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    summary = prepare(jobs, options, workers=args.workers, progress=progress, notes=notes)
    print(summary.format())
    return 0 if summary.ok else 1
