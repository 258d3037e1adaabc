"""``dagan export``: a reenactment checkpoint → a folder of ONNX graphs and a manifest.

:func:`export_model` loads the checkpoint (ours or an official DaGAN file, like ``dagan animate``), writes
``keypoints.onnx``, ``source.onnx``, ``decode.onnx`` (:mod:`dagan.export.graphs`) and ``manifest.json``
(:mod:`dagan.export.manifest`) into a hidden folder beside the output and renames it into place at the end,
so a failure leaves nothing under the output name. An existing output folder is replaced only when it
holds nothing but a previous export.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from dagan.errors import DaganError, InputError, MissingExtraError
from dagan.export.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, sha256_file, weights_checksum
from dagan.paths import PathLike

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "PRECISIONS", "export_model"]

#: The dynamo exporter's own opset (no version conversion needed).
DEFAULT_OPSET = 18
#: GridSample (every warp) exists from opset 16 on.
MIN_OPSET = 16
PRECISIONS = ("fp32", "fp16")
_EXPORT_SUFFIXES = (".onnx", ".json")


def _require_exporter() -> None:
    import importlib

    for module in ("onnx", "onnxscript"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError("dagan export", "onnx", module) from None


def check_export_options(opset: int, precision: str, exporter: str = "auto") -> None:
    """Refuse option values before any model work."""
    from dagan.export.graphs import EXPORTERS

    if opset < MIN_OPSET:
        raise DaganError(f"opset must be >= {MIN_OPSET} (ONNX GridSample), got {opset}")
    if precision not in PRECISIONS:
        raise DaganError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if exporter not in EXPORTERS:
        raise DaganError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")


def _check_output(output: Path) -> None:
    if output.exists():
        if not output.is_dir():
            raise InputError(f"output '{output}' exists and is not a folder")
        others = [p.name for p in output.iterdir() if p.suffix.lower() not in _EXPORT_SUFFIXES]
        if others:
            raise InputError(
                f"output folder '{output}' already exists and holds other files (e.g. {others[0]}); "
                "give a new or an earlier export's folder"
            )


def export_model(
    checkpoint: PathLike,
    output: PathLike,
    *,
    depth_checkpoint: PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    precision: str = "fp32",
    exporter: str = "auto",
) -> dict[str, Any]:
    """Export ``checkpoint`` into the folder ``output``; returns the manifest written there.

    ``dynamic_batch`` lets the keypoint and decode graphs take any number of frames (else exactly one);
    ``precision="fp16"`` stores the weights in half precision (:mod:`dagan.export.fp16`); ``exporter``
    is ``auto`` (dynamo, falling back to TorchScript for a graph dynamo fails on), ``dynamo`` or
    ``torchscript``."""
    from dagan.atomic_files import staging_folder
    from dagan.checkpoints.reenactment import load_reenactment_model
    from dagan.export.fp16 import store_weights_fp16
    from dagan.export.graphs import export_graphs

    check_export_options(opset, precision, exporter)
    _require_exporter()
    output = Path(output)
    _check_output(output)
    cfg, models = load_reenactment_model(checkpoint, depth_checkpoint=depth_checkpoint, device="cpu")
    tmp = staging_folder(output)
    try:
        try:
            graphs = export_graphs(models, cfg.resolution, tmp, opset, dynamic_batch, exporter)
        except RuntimeError as exc:
            raise DaganError(str(exc).splitlines()[0]) from exc
        for entry in graphs.values():
            if precision == "fp16":
                store_weights_fp16(tmp / entry["file"])
            entry["sha256"] = sha256_file(tmp / entry["file"])
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": cfg.arch,
            "resolution": cfg.resolution,
            "num_kp": cfg.model_params.common_params.num_kp,
            "precision": precision,
            "dynamic_batch": dynamic_batch,
            "opset": opset,
            "checkpoint": Path(checkpoint).name,
            "weights_sha256": weights_checksum(checkpoint),
            "torch_version": torch.__version__,
            "graphs": graphs,
            "config": cfg.to_dict(),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
