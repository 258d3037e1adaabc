"""Export a reenactment model to ONNX and run the exported graphs (``dagan export``;
``dagan animate --backend onnxruntime|openvino``).

* :mod:`dagan.export.graphs` — the three graphs (keypoints, source encodings, decode) and their export;
* :mod:`dagan.export.manifest` — the export folder's ``manifest.json`` and checksums;
* :mod:`dagan.export.fp16` — half-precision weight storage;
* :mod:`dagan.export.exporter` — checkpoint → export folder (:func:`export_model`);
* :mod:`dagan.export.runtime` — ONNX Runtime / OpenVINO sessions behind :class:`GraphEngine`.

The optional packages (``dagan[onnx]``, ``dagan[openvino]``) are imported only when used.
"""

from dagan.export.exporter import export_model
from dagan.export.manifest import is_export, read_manifest
from dagan.export.runtime import BACKENDS, ONNX_BACKENDS, GraphEngine, load_engine

__all__ = ["BACKENDS", "ONNX_BACKENDS", "GraphEngine", "export_model", "is_export", "load_engine", "read_manifest"]
