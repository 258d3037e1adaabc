"""The three exportable graphs of a reenactment model, as plain ``nn.Module`` wrappers with tensor-only
inputs and outputs, and :func:`export_graphs` which writes them as ONNX files.

The model splits where the work splits at inference:

* ``keypoints`` — image(s) → disparity (frozen depth net) → keypoints (value, Jacobian). Run once on the
  source, once on the relative-motion anchor and on every driving frame.
* ``source`` — the source image (and its disparity) → everything the generator derives from the source
  alone (appearance features of every level, attention queries or keys/values of the depth features).
  Run once per source.
* ``decode`` — the source image, its encodings, the source keypoints and the *transferred* driving keypoints
  → the generated frame (the generator's prediction-only path, ``Generator.predict``). Run per driving frame.

Motion transfer (relative motion, adapt-scale from a convex hull, One-Euro smoothing, the anchor frame's own
keypoints) runs between ``keypoints`` and ``decode`` outside the graphs, in the same code as the torch
backend — it is a few dozen numbers per frame and partly stateful, so keeping it out of the graphs keeps the
backends' numerics identical there. Per source, the work is ``keypoints`` + ``source``; per frame,
``keypoints`` + ``decode``; no weights are stored twice.

Every warp is a 2-D ``grid_sample`` (ONNX ``GridSample``, opset ≥ 16). The one operator without an ONNX
equivalent is the 2×2 matrix inverse of the dense motion's Taylor motions; while tracing it is replaced by
its closed form (:func:`export_friendly_ops`), which agrees with ``torch.inverse`` to float rounding.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dagan.models.factory import ReenactmentModels

__all__ = [
    "EXPORTERS",
    "GRAPH_NAMES",
    "DecodeGraph",
    "GraphSpec",
    "KeypointGraph",
    "SourceGraph",
    "build_graphs",
    "export_friendly_ops",
    "export_graphs",
]

GRAPH_NAMES = ("keypoints", "source", "decode")
#: ``auto`` tries torch's dynamo exporter first and falls back to the TorchScript one for a graph it fails on.
EXPORTERS = ("auto", "dynamo", "torchscript")
KEYPOINT_KEYS = ("value", "jacobian")


def _inverse_2x2(matrix: Tensor) -> Tensor:
    """Closed-form inverse of …×2×2 matrices: [[d, −b], [−c, a]] / (ad − bc)."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    rows = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return rows / det[..., None, None]


@contextlib.contextmanager
def export_friendly_ops() -> Iterator[None]:
    """While tracing, ``torch.inverse`` of 2×2 matrices (the dense motion's Jacobians) becomes the closed
    form, which ONNX can express; other sizes keep the original. Restored on exit."""
    original = torch.inverse

    def inverse(matrix: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if matrix.shape[-2:] == (2, 2) and not args and not kwargs:
            return _inverse_2x2(matrix)
        return original(matrix, *args, **kwargs)

    torch.inverse = inverse  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.inverse = original


def flatten_cache(cache: dict[str, Any]) -> list[tuple[str, Tensor]]:
    """The generator's source cache as named tensors: ``key`` for a tensor, ``key_i`` for list entries."""
    named: list[tuple[str, Tensor]] = []
    for key, value in cache.items():
        if isinstance(value, Tensor):
            named.append((key, value))
        else:
            named.extend((f"{key}_{i}", v) for i, v in enumerate(value))
    return named


class KeypointGraph(nn.Module):
    """image N×3×R×R in [0, 1] → ``kp_value`` N×K×2, ``kp_jacobian`` N×K×2×2 (when estimated) and
    ``disparity`` N×1×R×R (when the keypoint detector or the generator uses depth)."""

    def __init__(self, models: ReenactmentModels) -> None:
        super().__init__()
        self.depth_net = models.depth_net
        self.kp_detector = models.kp_detector
        self.kp_uses_depth = bool(models.kp_detector.use_depth)
        self.needs_depth = models.depth_net is not None and (
            self.kp_uses_depth or bool(models.generator.uses_depth)
        )
        self.has_jacobian = models.kp_detector.jacobian is not None

    @property
    def output_names(self) -> list[str]:
        names = ["kp_value"] + (["kp_jacobian"] if self.has_jacobian else [])
        return names + (["disparity"] if self.needs_depth else [])

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        disparity = self.depth_net(image) if self.needs_depth and self.depth_net is not None else None
        kp = self.kp_detector(image, disparity if self.kp_uses_depth else None)
        outputs = [kp["value"]] + ([kp["jacobian"]] if self.has_jacobian else [])
        return tuple(outputs + ([disparity] if disparity is not None else []))


class SourceGraph(nn.Module):
    """``image`` 1×3×R×R (and ``disparity`` 1×1×R×R for depth-aware generators) → the generator's source
    encodings, one output per cached tensor (names from :func:`flatten_cache`)."""

    def __init__(self, models: ReenactmentModels, cache_names: Sequence[str]) -> None:
        super().__init__()
        self.generator = models.generator
        self.uses_depth = bool(models.generator.uses_depth)
        self.cache_names = list(cache_names)

    @property
    def input_names(self) -> list[str]:
        return ["image"] + (["disparity"] if self.uses_depth else [])

    def forward(self, image: Tensor, disparity: Tensor | None = None) -> tuple[Tensor, ...]:
        cache = self.generator.encode_source(image, disparity if self.uses_depth else None)
        return tuple(t for _, t in flatten_cache(cache))


class DecodeGraph(nn.Module):
    """Source image, source keypoints, transferred driving keypoints (batch N) and the source encodings
    (batch 1) → ``prediction`` N×3×R×R in [0, 1]."""

    def __init__(self, models: ReenactmentModels, cache_layout: dict[str, int | None]) -> None:
        super().__init__()
        self.generator = models.generator
        self.has_jacobian = models.kp_detector.jacobian is not None
        #: cache key → None for a tensor, or the length of a list of tensors
        self.cache_layout = dict(cache_layout)

    @property
    def input_names(self) -> list[str]:
        kp = ["value"] + (["jacobian"] if self.has_jacobian else [])
        names = ["source_image"] + [f"kp_source_{k}" for k in kp] + [f"kp_driving_{k}" for k in kp]
        for key, count in self.cache_layout.items():
            names.extend([key] if count is None else [f"{key}_{i}" for i in range(count)])
        return names

    def forward(self, source_image: Tensor, *tensors: Tensor) -> Tensor:
        n_kp = 2 if self.has_jacobian else 1
        kp_source = dict(zip(KEYPOINT_KEYS, tensors[:n_kp]))
        kp_driving = dict(zip(KEYPOINT_KEYS, tensors[n_kp : 2 * n_kp]))
        batch = kp_driving["value"].shape[0]

        # Batch-1 source tensors are expanded to the driving batch here, so the generator's own
        # "batch 1 or batch N" test compares equal sizes and traces without a branch on the batch size.
        def expand(t: Tensor) -> Tensor:
            return t.expand(batch, *t.shape[1:])

        rest = iter(tensors[2 * n_kp :])
        cache: dict[str, Any] = {}
        for key, count in self.cache_layout.items():
            cache[key] = expand(next(rest)) if count is None else [expand(next(rest)) for _ in range(count)]
        kp_source = {k: expand(v) for k, v in kp_source.items()}
        return self.generator.predict(expand(source_image), cache, kp_driving, kp_source)


@dataclass
class GraphSpec:
    """One graph to export: the module, example inputs, names, and which inputs have a batch axis."""

    name: str
    module: nn.Module
    args: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    batched_inputs: list[str]
    batched_outputs: list[str]
    #: index of the first input passed through ``*tensors`` (torch.export wants their shapes as one tuple)
    varargs_start: int | None = None


def build_graphs(models: ReenactmentModels, resolution: int, batch: int = 1) -> list[GraphSpec]:
    """The three graph specs with example inputs (``batch`` driving frames; the source always has batch 1)."""
    models = models.eval()
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, resolution, resolution, generator=gen)
    frames = torch.rand(batch, 3, resolution, resolution, generator=gen)
    kp_graph = KeypointGraph(models)
    with torch.no_grad():
        kp_src = kp_graph(image)
        kp_drv = kp_graph(frames)
        n_kp = 2 if kp_graph.has_jacobian else 1
        disparity = kp_src[n_kp] if kp_graph.needs_depth else None
        uses_depth = bool(models.generator.uses_depth)
        cache = models.generator.encode_source(image, disparity if uses_depth else None)
    layout = {k: (None if isinstance(v, Tensor) else len(v)) for k, v in cache.items()}
    cache_named = flatten_cache(cache)
    cache_names = [n for n, _ in cache_named]

    source = SourceGraph(models, cache_names)
    source_args = (image,) + ((disparity,) if uses_depth and disparity is not None else ())
    decode = DecodeGraph(models, layout)
    decode_args = (image, *kp_src[:n_kp], *kp_drv[:n_kp], *(t for _, t in cache_named))
    kp_outputs = kp_graph.output_names
    return [
        GraphSpec("keypoints", kp_graph, (frames,), ["image"], kp_outputs, ["image"], kp_outputs),
        GraphSpec("source", source, source_args, source.input_names, cache_names, [], []),
        GraphSpec(
            "decode",
            decode,
            decode_args,
            decode.input_names,
            ["prediction"],
            ["kp_driving_value", "kp_driving_jacobian"],
            ["prediction"],
            varargs_start=1,
        ),
    ]


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx prints progress and version-conversion tracebacks on success; keep the CLI's output clean
    (failures still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_one(spec: GraphSpec, path: Path, opset: int, dynamic_batch: bool, exporter: str) -> None:
    batched_in = [n for n in spec.batched_inputs if n in spec.input_names] if dynamic_batch else []
    batched_out = [n for n in spec.batched_outputs if n in spec.output_names] if dynamic_batch else []
    with _quiet_export(), export_friendly_ops(), torch.no_grad():
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            shapes: list[Any] = [{0: batch} if n in batched_in else None for n in spec.input_names]
            if spec.varargs_start is not None:
                shapes = [*shapes[: spec.varargs_start], tuple(shapes[spec.varargs_start :])]
            kwargs: dict[str, Any] = {"dynamic_shapes": tuple(shapes)} if batched_in else {}
            program = torch.onnx.export(
                spec.module,
                spec.args,
                dynamo=True,
                opset_version=opset,
                input_names=spec.input_names,
                output_names=spec.output_names,
                optimize=True,
                **kwargs,
            )
            if program is None:  # pragma: no cover - dynamo=True always returns the program
                raise RuntimeError("the dynamo exporter returned no program")
            program.save(str(path), external_data=False)
        else:
            axes = {n: {0: "batch"} for n in batched_in + batched_out}
            torch.onnx.export(
                spec.module,
                spec.args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_axes=axes or None,
                do_constant_folding=True,
            )


def graph_signature(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs of an ONNX file as ``{"name", "shape", "dtype"}`` (symbolic axes by name)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        shape = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim]
        return {"name": value.name, "shape": shape, "dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type))}

    return [describe(v) for v in graph.input], [describe(v) for v in graph.output]


def _check_opset(path: Path, opset: int) -> None:
    """The dynamo exporter writes its own opset and converts it down on request, but leaves the model
    unconverted (with a logged warning) when it cannot: refuse that, so ``auto`` tries the next exporter."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise RuntimeError(f"the graph was written with opset {got}, not the requested {opset}")


def export_graphs(
    models: ReenactmentModels,
    resolution: int,
    folder: Path,
    opset: int = 18,
    dynamic_batch: bool = False,
    exporter: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Write ``keypoints.onnx``, ``source.onnx`` and ``decode.onnx`` into ``folder`` (checked with
    ``onnx.checker``); returns, per graph, the file name, the exporter used and the input/output names.

    Batch axes are fixed at 1 unless ``dynamic_batch`` (then the keypoint and decode graphs take any
    number of frames; the source graph always takes one image)."""
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    # Two example frames when the batch is dynamic, so no size-1 specialisation is traced in.
    specs = build_graphs(models, resolution, batch=2 if dynamic_batch else 1)
    info: dict[str, dict[str, Any]] = {}
    for spec in specs:
        path = folder / f"{spec.name}.onnx"
        order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
        used, error = None, None
        for name in order:
            try:
                _export_one(spec, path, opset, dynamic_batch, name)
                onnx.checker.check_model(str(path), full_check=True)
                _check_opset(path, opset)
            except Exception as exc:  # the dynamo exporter fails on some graphs: try the next exporter
                error = exc
                path.unlink(missing_ok=True)
                continue
            used = name
            break
        if used is None:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RuntimeError(f"could not export the {spec.name} graph: {reason}") from error
        inputs, outputs = graph_signature(path)
        info[spec.name] = {"file": path.name, "exporter": used, "inputs": inputs, "outputs": outputs}
    return info
