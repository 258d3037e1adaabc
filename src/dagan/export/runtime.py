"""Run an exported model folder with ONNX Runtime or OpenVINO (``dagan animate --backend …``).

:class:`GraphEngine` holds one session per graph (``keypoints``, ``source``, ``decode``; see
:mod:`dagan.export.graphs`) and is an :class:`dagan.infer.engine.Engine`: it makes the three model calls of
animation — keypoints of frames, the source encodings, and the prediction for transferred keypoints — on
torch tensors, so the video job and the live session keep their whole pipeline (crops, motion transfer,
smoothing, paste-back, audio) and only where the networks run changes. Graphs exported with a fixed batch
of 1 are run frame by frame.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dagan.config import Config, ConfigError, config_from_dict
from dagan.errors import CheckpointError, DaganError, MissingExtraError
from dagan.export.manifest import check_graph_file, is_export, read_manifest

__all__ = ["BACKENDS", "ONNX_BACKENDS", "GraphEngine", "load_engine"]

#: ``torch`` runs the checkpoint's networks in PyTorch; the others run the exported ONNX graphs.
BACKENDS = ("torch", "onnxruntime", "openvino")
ONNX_BACKENDS = ("onnxruntime", "openvino")

KeypointDict = dict[str, Tensor]
Session = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
#: a runtime's names of each graph input (OpenVINO may know a tensor by several names)
InputNames = list[set[str]]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _onnxruntime_session(
    path: Path, device: str, threads: int | None, outputs: list[str]
) -> tuple[Session, InputNames]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("the onnxruntime backend", "onnx", "onnxruntime") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no per-session warnings on the console
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DaganError("this onnxruntime has no CUDA support (pip install onnxruntime-gpu); use --device cpu")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({_first_line(exc)})") from None
    names = [o.name for o in session.get_outputs()]
    if sorted(names) != sorted(outputs):
        raise CheckpointError(f"{path} gives outputs {names}, its manifest says {outputs}; re-run 'dagan export'")

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feeds)))

    return run, [{i.name} for i in session.get_inputs()]


def _openvino_session(
    path: Path, device: str, threads: int | None, outputs: list[str]
) -> tuple[Session, InputNames]:
    try:
        import openvino as ov
    except ImportError:
        raise MissingExtraError("the openvino backend", "openvino", "openvino") from None
    if device == "cuda":
        raise DaganError("the openvino backend runs on the CPU here; use --device cpu (or --backend onnxruntime)")
    # f32 explicitly: on CPUs with bf16 units OpenVINO would otherwise compute in bf16 (frames off by more
    # than a few levels); LATENCY: one request at a time, as the pipeline runs.
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise CheckpointError(f"{path}: OpenVINO cannot load it ({_first_line(exc)})") from None
    request = compiled.create_infer_request()
    ports = []
    for name in outputs:
        port = next((p for p in compiled.outputs if name in p.get_names()), None)
        if port is None:
            raise CheckpointError(f"{path} has no output '{name}' named in its manifest; re-run 'dagan export'")
        ports.append((port, name))

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = request.infer(feeds)
        return {name: np.array(results[port]) for port, name in ports}

    return run, [set(port.get_names()) for port in compiled.inputs]


_SESSIONS = {"onnxruntime": _onnxruntime_session, "openvino": _openvino_session}


def _numpy(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


class GraphEngine:
    """The exported graphs of one model, in ONNX Runtime or OpenVINO sessions.

    ``GraphEngine("export_dir", "onnxruntime")``; :attr:`config` is the model config stored in the
    manifest; tensors go in and come out on the CPU (the runtime places its own work). Raises
    :class:`CheckpointError` (one line) for a folder that is not an export, a graph file that is missing,
    corrupt or from another export, and :class:`MissingExtraError` when the runtime is not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "onnxruntime",
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        if backend not in _SESSIONS:
            raise DaganError(f"backend must be one of {', '.join(ONNX_BACKENDS)} for exported graphs, got {backend!r}")
        device = "cpu" if device in (None, "auto") else str(device)
        if device not in ("cpu", "cuda"):
            raise DaganError(f"unsupported device {device!r} for the {backend} backend; use cpu or cuda")
        self.folder, self.manifest = read_manifest(path)
        self.backend = backend
        try:
            self.config: Config = config_from_dict(self.manifest["config"])
        except ConfigError as exc:
            raise CheckpointError(f"{self.folder}: the config in the manifest is invalid ({exc})") from None
        self.resolution = int(self.manifest["resolution"])
        self.device = torch.device("cpu")
        self.dynamic_batch = bool(self.manifest["dynamic_batch"])
        self.sessions: dict[str, Session] = {}
        for name in ("keypoints", "source", "decode"):
            graph = check_graph_file(self.folder, self.manifest, name)
            run, inputs = _SESSIONS[backend](graph, device, threads, self._names(name, "outputs"))
            expected = self._names(name, "inputs")
            if len(inputs) != len(expected) or not all(any(e in names for names in inputs) for e in expected):
                got = [sorted(names)[0] for names in inputs]
                raise CheckpointError(
                    f"{graph} takes inputs {got}, its manifest says {expected}; re-run 'dagan export'"
                )
            self.sessions[name] = run
        self.cache_names = self._names("source", "outputs")

    def _names(self, graph: str, kind: str) -> list[str]:
        """Input or output names of ``graph`` from the manifest."""
        return [entry["name"] for entry in self.manifest["graphs"][graph][kind]]

    def _run_frames(self, name: str, feeds: dict[str, np.ndarray], batched: Sequence[str]) -> dict[str, np.ndarray]:
        """Run graph ``name``; with a fixed batch of 1, frame by frame over the ``batched`` inputs."""
        size = feeds[batched[0]].shape[0]
        if self.dynamic_batch or size == 1:
            return self.sessions[name](feeds)
        parts = [
            self.sessions[name]({k: (v[i : i + 1] if k in batched else v) for k, v in feeds.items()})
            for i in range(size)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def keypoints(self, images: Tensor) -> tuple[Tensor | None, KeypointDict]:
        """(disparity or None, keypoints) of N×3×R×R images in [0, 1], as float32 CPU tensors."""
        out = self._run_frames("keypoints", {"image": _numpy(images)}, ["image"])
        kp = {"value": torch.from_numpy(out["kp_value"])}
        if "kp_jacobian" in out:
            kp["jacobian"] = torch.from_numpy(out["kp_jacobian"])
        disparity = out.get("disparity")
        return (torch.from_numpy(disparity) if disparity is not None else None), kp

    def encode_source(self, image: Tensor, disparity: Tensor | None) -> dict[str, np.ndarray]:
        """The generator's source encodings (named arrays) of one source image."""
        feeds = {"image": _numpy(image)}
        if "disparity" in self._names("source", "inputs"):
            if disparity is None:
                raise DaganError("the source graph needs the source disparity")
            feeds["disparity"] = _numpy(disparity)
        return self.sessions["source"](feeds)

    def predict(
        self, source_image: Tensor, cache: dict[str, np.ndarray], kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> Tensor:
        """Generated frames N×3×R×R in [0, 1] for N transferred driving keypoint sets."""
        inputs = self._names("decode", "inputs")
        feeds = {"source_image": _numpy(source_image)}
        for prefix, kp in (("kp_source_", kp_source), ("kp_driving_", kp_driving)):
            for key, value in kp.items():
                if prefix + key in inputs:
                    feeds[prefix + key] = _numpy(value)
        feeds.update({name: cache[name] for name in self.cache_names})
        batched = [n for n in ("kp_driving_value", "kp_driving_jacobian") if n in feeds]
        return torch.from_numpy(self._run_frames("decode", feeds, batched)["prediction"])


def load_engine(
    path: str | os.PathLike[str],
    backend: str = "onnxruntime",
    device: str | None = None,
    depth_checkpoint: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> GraphEngine:
    """A :class:`GraphEngine` for an export folder, or for a checkpoint exported on the fly into a
    temporary folder (fp32, dynamic batch; removed once the sessions are loaded)."""
    if is_export(path):
        if depth_checkpoint is not None:
            raise DaganError("--depth-checkpoint does not apply to an exported model (its depth net is in the graphs)")
        return GraphEngine(path, backend, device, threads)
    from dagan.export.exporter import export_model

    if backend not in _SESSIONS:
        raise DaganError(f"backend must be one of {', '.join(ONNX_BACKENDS)} for exported graphs, got {backend!r}")
    _require(backend)
    print(f"dagan: exporting '{path}' to ONNX for the {backend} backend (save time with 'dagan export')",
          file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="dagan-export-"))
    try:
        export_model(path, tmp / "model", depth_checkpoint=depth_checkpoint, dynamic_batch=True)
        return GraphEngine(tmp / "model", backend, device, threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _require(backend: str) -> None:
    """MissingExtraError before any export work when the runtime (or the ONNX exporter) is missing."""
    import importlib

    extra = "onnx" if backend == "onnxruntime" else "openvino"
    for module in ("onnx", "onnxscript", backend):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(f"the {backend} backend", extra, module) from None
