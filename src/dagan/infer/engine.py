"""The model side of animation, tensors in and tensors out.

An :class:`Engine` makes the three model calls every animation needs:

* ``keypoints(images)`` → (disparity or None, keypoints) of N×3×R×R images in [0, 1];
* ``encode_source(image, disparity)`` → everything the generator derives from the source alone (encoder
  features, depth features, attention keys/values), computed once per source;
* ``predict(source_image, cache, kp_driving, kp_source)`` → N×3×R×R generated frames in [0, 1] for the
  *transferred* driving keypoints.

:class:`TorchEngine` runs the checkpoint's PyTorch networks (optionally under autocast);
:class:`dagan.export.runtime.GraphEngine` runs the exported ONNX graphs. The functions below build on the
protocol only — source encoding (:class:`SourceState`), motion transfer and batch generation — so the video
job and the live session run the same code whichever engine does the arithmetic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from dagan.config import Config
from dagan.data.video import resize_rgb
from dagan.devices import resolve_device
from dagan.errors import DaganError
from dagan.infer.motion import MotionTransfer
from dagan.infer.smoothing import KeypointSmoother
from dagan.models.factory import ReenactmentModels
from dagan.models.inference import optimize_for_inference
from dagan.paths import PathLike

__all__ = [
    "batched",
    "PRECISIONS",
    "Engine",
    "SourceState",
    "TorchEngine",
    "encode_source",
    "frame_keypoints",
    "generate_frames",
    "motion_transfer",
    "open_engine",
    "to_tensor",
    "to_uint8",
]

KeypointDict = dict[str, Tensor]
PRECISIONS = ("fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_GRAPHS_FP32 = "exported graphs run in fp32 (export with --precision fp16 for smaller files)"


class Engine(Protocol):
    """Where the networks of one reenactment model run. Keypoints come back as float32 (motion transfer
    and smoothing need full precision) and predictions as float32 in [0, 1]."""

    config: Config
    resolution: int  # R: the model's square input and output size
    device: torch.device  # where input tensors go

    def keypoints(self, images: Tensor) -> tuple[Tensor | None, KeypointDict]: ...

    def encode_source(self, image: Tensor, disparity: Tensor | None) -> Any: ...

    def predict(
        self, source_image: Tensor, cache: Any, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> Tensor: ...


class TorchEngine:
    """The PyTorch networks of a checkpoint on one device; ``precision`` ``fp16``/``bf16`` runs them under
    autocast (fp16 only on CUDA).

    With ``fast_path`` (the default) the engine runs an inference-only copy of ``models``
    (:func:`dagan.models.inference.optimize_for_inference`: BatchNorm folded into the convolutions, spectral
    norms resolved once, channels-last keypoint and depth nets on CPU), whose frames stay within float
    rounding (a couple of uint8 levels) of the networks as trained, and ``models`` is left as it is.
    Without it the engine runs ``models`` themselves (put in eval mode on ``device``), bit for bit as
    trained.
    """

    def __init__(
        self,
        models: ReenactmentModels,
        config: Config,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        fast_path: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise DaganError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise DaganError("fp16 needs a CUDA device (--device cuda); on CPU use fp32 or bf16")
        self.precision = precision
        self.config = config
        self.resolution = config.resolution
        self.fast_path = fast_path
        if fast_path:
            # channels-last only where it was measured to pay: oneDNN's CPU convolutions
            fast = optimize_for_inference(models, channels_last=self.device.type == "cpu")
            self.models = fast.to(self.device)
        else:
            self.models = models.eval().to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    @torch.inference_mode()
    def keypoints(self, images: Tensor) -> tuple[Tensor | None, KeypointDict]:
        m = self.models
        with self._autocast():
            needs_depth = m.depth_net is not None and (m.kp_detector.use_depth or m.generator.uses_depth)
            disparity = m.disparity(images) if needs_depth else None
            kp = m.kp_detector(images, disparity if m.kp_detector.use_depth else None)
            return disparity, {k: v.float() for k, v in kp.items()}

    @torch.inference_mode()
    def encode_source(self, image: Tensor, disparity: Tensor | None) -> Any:
        generator = self.models.generator
        with self._autocast():
            return generator.encode_source(image, disparity if generator.uses_depth else None)

    @torch.inference_mode()
    def predict(self, source_image: Tensor, cache: Any, kp_driving: KeypointDict, kp_source: KeypointDict) -> Tensor:
        with self._autocast():
            prediction = self.models.generator.predict(source_image, cache, kp_driving, kp_source)
        return prediction.float()


def open_engine(
    checkpoint: PathLike,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    depth_checkpoint: PathLike | None = None,
    backend: str = "torch",
    fast_path: bool = True,
) -> Engine:
    """The engine for ``checkpoint``: our reenactment checkpoint or an official DaGAN file in PyTorch
    (``backend="torch"``), or — with ``onnxruntime``/``openvino`` — a ``dagan export`` folder (a checkpoint
    is exported on the fly; see :mod:`dagan.export`). ``fast_path`` selects the inference-only networks of
    :class:`TorchEngine` (exported graphs get their own fusions from the runtime and ignore it)."""
    if backend != "torch":
        from dagan.export.runtime import load_engine

        if precision != "fp32":  # refused before any (possibly long) export or session loading
            raise DaganError(_GRAPHS_FP32)
        return load_engine(checkpoint, backend, None if device is None else str(device), depth_checkpoint)
    from dagan.checkpoints.reenactment import load_reenactment_model
    from dagan.export.manifest import is_export

    if is_export(checkpoint):
        raise DaganError(f"'{checkpoint}' is an exported model (ONNX): use --backend onnxruntime or openvino")
    dev = resolve_device(device)
    config, models = load_reenactment_model(checkpoint, depth_checkpoint=depth_checkpoint, device=dev)
    return TorchEngine(models, config, dev, precision, fast_path)


# --------------------------------------------------------------------------- frames ↔ tensors


def to_tensor(frames: np.ndarray | Sequence[np.ndarray], device: torch.device | str = "cpu") -> Tensor:
    """N×H×W×3 uint8 (or one H×W×3 frame) → N×3×H×W float32 in [0, 1] on ``device``."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # e.g. views of Pillow images; torch wants writable memory
        arr = arr.copy()
    x = torch.from_numpy(arr).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(images: Tensor) -> np.ndarray:
    """N×3×H×W in [0, 1] → N×H×W×3 uint8, rounded (round(255·x))."""
    x = images.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def model_size(frames: np.ndarray, resolution: int) -> np.ndarray:
    """N×H×W×3 (or one H×W×3) uint8 frames resized to resolution² where they are not already."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.shape[1:3] != (resolution, resolution):
        arr = np.stack([resize_rgb(f, resolution) for f in arr])
    return arr


# --------------------------------------------------------------------------- source, motion, generation


@dataclass
class SourceState:
    """Everything that depends only on the source, computed once (see :func:`encode_source`)."""

    image: Tensor  # 1×3×R×R in [0, 1], on the engine's device
    disparity: Tensor | None  # 1×1×R×R, or None for depth-free models
    keypoints: KeypointDict  # float32 {"value": 1×K×2, "jacobian": 1×K×2×2}
    cache: Any  # the generator's source encodings
    crop: np.ndarray  # R×R×3 uint8: what the model sees
    full_image: np.ndarray  # the source picture as given (H×W×3 uint8)
    crop_box: Any = None  # dagan.faces.CropBox of the crop in full_image, None without cropping
    face_box: Any = None  # dagan.faces.FaceBox of the detected face, None without cropping


def encode_source(
    engine: Engine, crop: np.ndarray, full_image: np.ndarray, crop_box: Any = None, face_box: Any = None
) -> SourceState:
    """The :class:`SourceState` of a model-resolution source crop (R×R×3 uint8) cut from ``full_image``."""
    image = to_tensor(crop, engine.device)
    disparity, kp = engine.keypoints(image)
    cache = engine.encode_source(image, disparity)
    return SourceState(image, disparity, kp, cache, crop, full_image, crop_box, face_box)


def frame_keypoints(engine: Engine, frames: np.ndarray | Tensor) -> KeypointDict:
    """Keypoints (float32) of driving frames: N×H×W×3 uint8 (resized to the model's size where needed) or
    N×3×R×R in [0, 1]."""
    images = frames if isinstance(frames, Tensor) else to_tensor(model_size(frames, engine.resolution), engine.device)
    return engine.keypoints(images.to(engine.device))[1]


def motion_transfer(
    engine: Engine,
    state: SourceState,
    anchor: KeypointDict | np.ndarray | None,
    relative: bool = True,
    adapt_scale: bool = True,
) -> MotionTransfer:
    """The motion mapping for ``state``: relative to ``anchor`` (keypoints, or a model-resolution frame) or
    absolute."""
    mode = "relative" if relative else "absolute"
    if anchor is not None and not isinstance(anchor, dict):
        anchor = frame_keypoints(engine, anchor)
    return MotionTransfer.create(state.keypoints, anchor, mode, adapt_scale)  # type: ignore[arg-type]


@torch.inference_mode()
def generate_frames(
    engine: Engine,
    driving: np.ndarray | Tensor,
    state: SourceState,
    transfer: MotionTransfer,
    smoother: KeypointSmoother | None = None,
    anchor_rows: Sequence[int] = (),
) -> Tensor:
    """Generate a batch: driving frames (N×R×R×3 uint8 or N×3×R×R in [0, 1], already cropped) → N×3×R×R in
    [0, 1]. Rows in ``anchor_rows`` are the anchor frame itself and get the anchor's own keypoints (so the
    relative motion there is exactly zero)."""
    kp = frame_keypoints(engine, driving)
    if anchor_rows and transfer.kp_anchor is not None:
        rows = torch.as_tensor(list(anchor_rows), device=kp["value"].device)
        kp = {k: v.clone() for k, v in kp.items()}
        for key in kp:
            if key in transfer.kp_anchor:
                kp[key][rows] = transfer.kp_anchor[key].to(kp[key].dtype)
    if smoother is not None:
        kp = smoother(kp)
    return engine.predict(state.image, state.cache, transfer(kp), state.keypoints)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last one shorter): driving frames in generator calls."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
