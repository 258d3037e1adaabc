"""``dagan export``: write a reenactment model as ONNX graphs plus a manifest, for deployment."""

from __future__ import annotations

import argparse

from dagan.commands.arguments import bounded

NAME = "export"
HELP = "export a reenactment model to ONNX (graphs for ONNX Runtime, OpenVINO, …)"
#: Argument names of what the command reads and writes (dagan.cli refuses outputs that overwrite inputs).
INPUTS: tuple[str, ...] = ("checkpoint", "depth_checkpoint")
OUTPUTS: tuple[str, ...] = ("output",)
#: The output folder is replaced as a whole: an input inside it is refused too.
REPLACED_OUTPUTS: tuple[str, ...] = ("output",)
EPILOG = """\
writes three graphs where the work splits, and manifest.json (arch, resolution, inputs/outputs, checksums):
  keypoints.onnx  image -> disparity -> keypoints         (source, anchor and every driving frame)
  source.onnx     source image (+ disparity) -> generator source encodings (once per source)
  decode.onnx     source encodings + source and transferred driving keypoints -> frame (per frame)
motion transfer (relative motion, adapt-scale, smoothing) runs between keypoints and decode, outside the
graphs. Run an export with: dagan animate --checkpoint OUT_DIR --backend onnxruntime|openvino ...
examples:
  dagan export --checkpoint dagan-vox-256.pt -o dagan-onnx
  dagan export --checkpoint model.pt -o model-onnx --dynamic-batch --precision fp16
"""

#: ONNX opsets this exporter writes (GridSample needs 16).
opset_number = bounded(int, 16, 23)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="reenactment checkpoint (ours, or an official DaGAN .pth.tar / per-module folder)",
    )
    parser.add_argument(
        "--depth-checkpoint",
        default=None,
        help="face depth model, when the checkpoint does not hold one (as for dagan animate)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="graph format (default onnx)")
    parser.add_argument("--opset", type=opset_number, default=18, help="ONNX opset, 16..23 (default 18)")
    parser.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="keypoint and decode graphs take any number of frames (default: exactly one)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16"),
        help="fp16 stores the weights in half precision (half the size; arithmetic stays fp32)",
    )
    parser.add_argument(
        "--exporter",
        default="auto",
        choices=("auto", "dynamo", "torchscript"),
        help="torch.onnx exporter: auto = dynamo, falling back to TorchScript for a graph it fails on",
    )


def run(args: argparse.Namespace) -> int:
    from dagan.export.exporter import export_model

    manifest = export_model(
        args.checkpoint,
        args.output,
        depth_checkpoint=args.depth_checkpoint,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        precision=args.precision,
        exporter=args.exporter,
    )
    graphs = ", ".join(f"{g['file']} ({g['exporter']})" for g in manifest["graphs"].values())
    res = manifest["resolution"]
    print(
        f"wrote {args.output}: {manifest['arch']} {res}x{res}, opset {manifest['opset']}, "
        f"{manifest['precision']}: {graphs}"
    )
    return 0
