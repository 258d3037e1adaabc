"""``dagan animate``: animate a source face with the motion of a driving video."""

from __future__ import annotations

import argparse
import os

from dagan.errors import CheckpointError

NAME = "animate"
HELP = "animate a face (image or video's first frame) with the motion of a driving video"
#: Environment variable read when --checkpoint is not given.
CHECKPOINT_ENV = "DAGAN_CHECKPOINT"

EPILOG = """\
defaults: relative motion with adapt-scale, face crop on, driving audio kept, no smoothing.
examples:
  dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint dagan++-vox-256.pt
  dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint model.pt --paste-back --find-best-frame
  dagan animate -s face.png -d talk.mp4 -o cmp.mp4 --checkpoint model.pt --side-by-side --smooth 1.5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument(
        "-s",
        "--source",
        required=True,
        help="source face: an image (grey and transparent images are converted to RGB) or a video "
        "(its first frame is used)",
    )
    io.add_argument("-d", "--driving", required=True, help="driving video (or folder of frames)")
    io.add_argument(
        "-o", "--output", required=True, help="output video (.mp4): H.264 yuv420p at the driving fps"
    )
    io.add_argument(
        "--checkpoint",
        default=None,
        help=f"reenactment checkpoint (ours, or an official DaGAN .pth.tar); default: ${CHECKPOINT_ENV}",
    )
    io.add_argument(
        "--depth-checkpoint",
        default=None,
        help="face depth model: our depth checkpoint, or the official Monodepth2-layout folder",
    )
    io.add_argument(
        "--frames-out",
        metavar="DIR",
        default=None,
        help="also write every output frame as a lossless PNG (0000000.png, …) into DIR",
    )
    io.add_argument(
        "--audio",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="copy the driving video's audio into the output (default: on)",
    )
    io.add_argument(
        "--side-by-side", action="store_true", help="output source | driving crop | result side by side"
    )
    io.add_argument(
        "--max-frames",
        type=int,
        default=None,
        metavar="N",
        help="animate only the first N driving frames (quick previews)",
    )

    motion = parser.add_argument_group("motion")
    mode = motion.add_mutually_exclusive_group()
    mode.add_argument(
        "--relative",
        dest="relative",
        action="store_true",
        default=True,
        help="transfer the driving motion relative to an anchor frame (default)",
    )
    mode.add_argument(
        "--absolute",
        dest="relative",
        action="store_false",
        help="use the driving keypoints as they are (the driving face shape leaks in)",
    )
    motion.add_argument(
        "--adapt-scale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale relative motion by the faces' size ratio (convex-hull area; default: on)",
    )
    anchor = motion.add_mutually_exclusive_group()
    anchor.add_argument(
        "--find-best-frame",
        action="store_true",
        help="anchor at the driving frame whose face landmarks best match the source "
        "(needs the 'faces' extra)",
    )
    anchor.add_argument(
        "--best-frame",
        type=int,
        default=None,
        metavar="N",
        help="anchor relative motion at driving frame N (default: 0)",
    )
    motion.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="S",
        help="One-Euro smoothing of keypoints against jitter: minimum cutoff in Hz, smaller is "
        "smoother (e.g. 1.5 mild, 0.5 strong); 0 = off (default)",
    )

    faces = parser.add_argument_group("faces")
    faces.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="detect and crop the faces (square box with margin; a smoothed crop tube for the "
        "driving video). --no-crop resizes the whole pictures (default: on)",
    )
    faces.add_argument(
        "--crop-scale",
        type=float,
        default=1.8,
        help="crop side / face-box size (default 1.8, like the VoxCeleb crops)",
    )
    faces.add_argument(
        "--detector",
        default="auto",
        choices=("auto", "mediapipe", "dlib", "opencv"),
        help="face detector backend (default: the best installed)",
    )
    faces.add_argument(
        "--paste-back",
        action="store_true",
        help="blend the generated face into the full source picture (output at its resolution)",
    )

    run_opts = parser.add_argument_group("performance")
    run_opts.add_argument("--batch-size", type=int, default=8, help="driving frames per batch (default 8)")
    run_opts.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    run_opts.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "bf16"),
        help="autocast precision (fp16 needs CUDA; default fp32)",
    )
    run_opts.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dagan.infer.animator import Animator, check_inputs

    check_inputs(args.source, args.driving, args.output, args.frames_out)
    checkpoint = args.checkpoint or os.environ.get(CHECKPOINT_ENV)
    if not checkpoint:
        raise CheckpointError(
            f"no checkpoint given: pass --checkpoint (or set ${CHECKPOINT_ENV}) — train one with "
            "'dagan train' or use the official DaGAN weights"
        )
    animator = Animator.from_checkpoint(
        checkpoint, device=args.device, precision=args.precision, depth_checkpoint=args.depth_checkpoint
    )
    result = animator.animate(
        args.source,
        args.driving,
        args.output,
        relative=args.relative,
        adapt_scale=args.adapt_scale,
        find_best_frame=args.find_best_frame,
        best_frame=args.best_frame,
        crop=args.crop,
        crop_scale=args.crop_scale,
        detector=args.detector,
        paste_back=args.paste_back,
        smooth=args.smooth,
        batch_size=args.batch_size,
        side_by_side=args.side_by_side,
        frames_out=args.frames_out,
        audio=args.audio,
        max_frames=args.max_frames,
        progress=not args.quiet,
    )
    anchor = "" if result.anchor_index is None else f", anchor frame {result.anchor_index}"
    audio = " with audio" if result.has_audio else ""
    print(
        f"wrote {result.output} ({result.num_frames} frames, {result.width}x{result.height}, "
        f"{result.fps:g} fps{audio}{anchor}) in {result.seconds:.1f} s "
        f"({result.frames_per_second:.1f} frames/s)"
    )
    return 0
