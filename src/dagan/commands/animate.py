"""``dagan animate``: animate a source face with the motion of a driving video."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from dagan.commands.arguments import crop_scale, non_negative_float, non_negative_int, positive_int
from dagan.errors import CheckpointError

if TYPE_CHECKING:
    from dagan.infer.options import AnimateOptions

NAME = "animate"
HELP = "animate a face (image or video's first frame) with the motion of a driving video"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("source", "driving", "checkpoint", "depth_checkpoint")
OUTPUTS: tuple[str, ...] = ("output", "frames_out")
#: Output folders replaced as a whole: an input inside them is refused too.
REPLACED_OUTPUTS: tuple[str, ...] = ("frames_out",)
EPILOG = """\
defaults: the model from --checkpoint, else $DAGAN_CHECKPOINT, else the bundled 64x64 demo model;
relative motion with adapt-scale; face crop on, and the generated face pasted back into the full source
picture (the output has the source's size; --no-paste-back gives the model-resolution crop, --no-crop
animates the whole picture resized to the model resolution); driving audio kept; no smoothing.
examples:
  dagan animate -s face.jpg -d talk.mp4 -o out.mp4                 # the bundled demo model
  dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint dagan++-vox-256.pt --find-best-frame
  dagan animate -s face.png -d talk.mp4 -o cmp.mp4 --checkpoint model.pt --side-by-side --smooth 1.5
"""
#: Fields of dagan.infer.options.AnimateOptions the command leaves at their defaults (no option for them).
NOT_OFFERED: tuple[str, ...] = ("crf",)
#: Printed (stderr) when neither --checkpoint nor $DAGAN_CHECKPOINT names a model.
BUNDLED_NOTE = (
    "dagan: using the bundled {res}×{res} demo model ({path}); for real quality pass --checkpoint "
    "(train one with 'dagan train', or import the official DaGAN weights with 'dagan import-official')"
)


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
        help="reenactment checkpoint (ours, or an official DaGAN .pth.tar); default: $DAGAN_CHECKPOINT, "
        "else the bundled 64x64 demo model (shows the pipeline, not real quality)",
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
        "--side-by-side",
        action="store_true",
        help="output source | driving crop | result side by side, each panel at least 256 px high",
    )
    io.add_argument(
        "--max-frames",
        type=positive_int,
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
        type=non_negative_int,
        default=None,
        metavar="N",
        help="anchor relative motion at driving frame N (default: 0)",
    )
    motion.add_argument(
        "--smooth",
        type=non_negative_float,
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
        type=crop_scale,
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
        action=argparse.BooleanOptionalAction,
        default=None,  # None: on whenever there is a crop to paste back (an explicit --paste-back with
        # --no-crop is an error)
        help="blend the generated face into the full source picture, so the output keeps its size and "
        "framing; --no-paste-back outputs the model-resolution face crop (default: on; with --no-crop "
        "there is nothing to paste back into)",
    )

    run_opts = parser.add_argument_group("performance")
    run_opts.add_argument(
        "--batch-size", type=positive_int, default=None,
        help="driving frames per generator call (default: 1 on CPU, where batching buys no speed, 8 on CUDA)",
    )
    run_opts.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    run_opts.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "bf16"),
        help="autocast precision (fp16 needs CUDA; default fp32)",
    )
    run_opts.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime", "openvino"),
        help="run the networks in PyTorch (default), or as ONNX graphs in ONNX Runtime or OpenVINO: "
        "--checkpoint is then a 'dagan export' folder (a checkpoint is exported on the fly)",
    )
    run_opts.add_argument(
        "--fast-path",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run PyTorch networks rewritten for inference (BatchNorm folded into the convolutions, "
        "spectral norms computed once, channels-last keypoint and depth nets on CPU): frames within float "
        "rounding (a couple of uint8 levels) of the networks as trained; --no-fast-path runs them exactly "
        "as trained (default: on)",
    )
    run_opts.add_argument("--quiet", action="store_true", help="no progress bar")


def animate_options(args: argparse.Namespace) -> AnimateOptions:
    """The :class:`AnimateOptions` of the command line: each option is named as the field it sets (every
    field but those in :data:`NOT_OFFERED`)."""
    from dataclasses import fields

    from dagan.infer.options import AnimateOptions

    return AnimateOptions(
        **{f.name: getattr(args, f.name) for f in fields(AnimateOptions) if f.name not in NOT_OFFERED}
    )


def run(args: argparse.Namespace) -> int:
    from dagan.infer.animator import CHECKPOINT_ENV, Animator, resolve_checkpoint
    from dagan.infer.video_job import check_inputs

    # everything that can be refused is refused before the model is loaded
    options = animate_options(args)
    options.check()
    check_inputs(args.source, args.driving, args.output, args.frames_out)
    checkpoint, origin = resolve_checkpoint(args.checkpoint)
    try:
        animator = Animator.from_checkpoint(
            checkpoint,
            device=args.device,
            precision=args.precision,
            depth_checkpoint=args.depth_checkpoint,
            backend=args.backend,
            fast_path=args.fast_path,
        )
    except CheckpointError as exc:
        if origin != "environment":
            raise
        raise CheckpointError(f"${CHECKPOINT_ENV}: {exc}") from None  # say where the path came from
    if origin == "bundled":
        print(BUNDLED_NOTE.format(res=animator.resolution, path=checkpoint), file=sys.stderr)
    result = animator.animate(
        args.source, args.driving, args.output, options, frames_out=args.frames_out, progress=not args.quiet
    )
    anchor = "" if result.anchor_index is None else f", anchor frame {result.anchor_index}"
    audio = " with audio" if result.has_audio else ""
    print(
        f"wrote {result.output} ({result.num_frames} frames, {result.width}x{result.height}, "
        f"{result.fps:g} fps{audio}{anchor}) in {result.seconds:.1f} s "
        f"({result.frames_per_second:.1f} frames/s)"
    )
    return 0
