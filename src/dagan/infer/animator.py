"""Streaming face animation: one source face driven by a video (``dagan animate``; ``dagan.Animator``).

Pipeline (memory does not grow with the video's length):

1. **Source, once** (:meth:`Animator.prepare_source`): the face is detected and cut out as a square crop
   (scale × the face box, like a VoxCeleb crop) resized to the model resolution; its disparity, keypoints
   and everything the generator derives from it alone (encoder features, depth features, attention
   keys/values) are computed once and kept in a :class:`SourceState`.
2. **Driving analysis** (a first, decode-only pass, only with cropping or ``find_best_frame``): face boxes of
   every frame, smoothed over time (zero-phase Gaussian on centre and size) into a stable crop tube; with
   ``find_best_frame``, 68 landmarks per frame pick the anchor frame closest to the source (normalised for
   position and size). Only boxes and landmarks are kept — a few numbers per frame.
3. **Generation** (second pass): frames are decoded, cropped, batched, turned into keypoints (depth →
   keypoints), mapped onto the source by relative or absolute motion (:mod:`dagan.infer.motion`, optionally
   One-Euro smoothed), generated from the cached source encodings, pasted back into the full source picture
   (by default, when cropping), and encoded (H.264, the driving fps and audio) as they go.

Relative motion is anchored at one driving frame; every output frame depends only on its own driving frame
and the anchor, so animating "forward and backward from the best frame" (the official demo) gives the same
frames as one pass in display order, which is what is done here (except that the optional smoothing runs in
display order). At the anchor frame the anchor's own keypoints are used, so the generator receives exactly
the source keypoints there.

All outputs are written to temporary names and renamed at the end: a failure or Ctrl-C leaves nothing
behind under the final names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dagan.config import Config
from dagan.data.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoInfo,
    VideoWriter,
    iter_frames,
    probe_video,
    read_frames,
    read_image,
    resize_rgb,
    staging_folder,
)
from dagan.devices import resolve_device
from dagan.errors import DaganError, InputError
from dagan.infer.motion import MotionTransfer
from dagan.infer.smoothing import KeypointSmoother
from dagan.models.factory import ReenactmentModels
from dagan.protected_inputs import LabelledPath, check_outputs_spare_inputs

__all__ = [
    "CHECKPOINT_ENV",
    "PANEL_HEIGHT",
    "PRECISIONS",
    "AnimateResult",
    "Animator",
    "FrameSession",
    "ProgressCallback",
    "SourceState",
    "check_inputs",
    "check_options",
    "load_source_image",
    "resolve_checkpoint",
    "stack_panels",
]

KeypointDict = dict[str, Tensor]
PathLike = str | os.PathLike[str]
#: ``on_progress(stage, done, total)`` of :meth:`Animator.animate`: stage "faces" (the driving analysis pass)
#: or "animate" (generation), frames done so far out of ``total``. An exception raised by it (e.g. a
#: cancelled job) stops the animation; nothing is left under the output names.
ProgressCallback = Callable[[str, int, int], None]
PRECISIONS = ("fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: Output containers that hold H.264 + AAC.
OUTPUT_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv")
#: Default enlargement of the detected face box for the square crop (see dagan.faces.boxes).
DEFAULT_CROP_SCALE = 1.8
#: Environment variable naming the reenactment checkpoint when none is passed explicitly.
CHECKPOINT_ENV = "DAGAN_CHECKPOINT"
#: Minimum height of every panel of a side-by-side video (small models' crops are enlarged to it).
PANEL_HEIGHT = 256


# --------------------------------------------------------------------------- small helpers


def load_source_image(source: PathLike | np.ndarray) -> np.ndarray:
    """The source picture as H×W×3 uint8 RGB: an image file, the first frame of a video (or frame folder),
    or an array. Grayscale is replicated to RGB and transparency is composited on white (converted, never
    refused)."""
    if isinstance(source, np.ndarray):
        return _as_rgb_uint8(source, "source image")
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in VIDEO_EXTENSIONS:
        return next(iter_frames(path))
    if path.suffix.lower() in IMAGE_EXTENSIONS or not path.exists():
        return read_image(path)
    try:  # unknown extension: an image, else a video
        return read_image(path)
    except InputError:
        return next(iter_frames(path))


def _as_rgb_uint8(array: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise InputError(f"{what} must be uint8 or float in [0, 1], got {arr.dtype}")
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:  # composite on white, as read_image does
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{what} must be an H×W×3 RGB image, got shape {arr.shape}")
    return arr


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_writable(path: Path, what: str, folder: bool = False) -> None:
    """Fail early (before any work) when ``path`` cannot be created: probe with a temp file beside it."""
    if path.is_dir() and not folder:
        raise InputError(f"{what} '{path}' is a folder, expected a file name")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{what} '{path}' exists and is not a folder")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot write {what} '{path}': '{ancestor}' is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or _first_line(exc)
        raise InputError(f"cannot write {what} '{path}': {reason}") from None


def resolve_checkpoint(path: PathLike | None = None) -> tuple[Path, str]:
    """The reenactment checkpoint to use and where it came from: ``path`` when given (``"argument"``), else
    ``$DAGAN_CHECKPOINT`` when set and not empty (``"environment"``), else the bundled 64×64 demo model
    (``"bundled"``, :data:`dagan.assets.DEMO_CHECKPOINT`)."""
    if path is not None and str(path):
        return Path(path), "argument"
    env = os.environ.get(CHECKPOINT_ENV, "")
    if env:
        return Path(env), "environment"
    from dagan.assets import DEMO_CHECKPOINT

    return DEMO_CHECKPOINT, "bundled"


def stack_panels(panels: Sequence[np.ndarray], height: int = PANEL_HEIGHT) -> np.ndarray:
    """Panels (H×W×3 uint8) side by side, each resized to ``height`` with its aspect kept and an even
    width (so the total width suits yuv420p video)."""
    out = []
    for p in panels:
        width = max(2, 2 * round(p.shape[1] * height / p.shape[0] / 2))
        if p.shape[:2] != (height, width):
            p = np.asarray(Image.fromarray(p).resize((width, height), Image.Resampling.BICUBIC))
        out.append(p)
    return np.concatenate(out, axis=1)


class _PngFolder:
    """Streaming writer of ``0000000.png, 0000001.png, …`` (a frame folder) into a hidden temporary folder
    that replaces ``folder`` on :meth:`commit`. An existing ``folder`` is replaced only when it holds
    nothing but a previous run's frames (``0000000.png`` …); otherwise it is refused, so no user data is
    deleted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if folder.exists():  # only an earlier run's frames (0000000.png …) may be replaced, never user photos
            others = [p.name for p in folder.iterdir() if not (p.suffix == ".png" and len(p.stem) == 7
                                                                and p.stem.isdigit() and p.is_file())]
            if others:
                raise InputError(
                    f"frames folder '{folder}' already exists and holds other files (e.g. {others[0]})"
                )
        self.tmp = staging_folder(folder)  # usual permissions, unlike mkdtemp's 0700
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self.tmp / f"{self.count:07d}.png", compress_level=1)
        self.count += 1

    def commit(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(self.tmp, self.folder)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- state and results


@dataclass
class SourceState:
    """Everything that depends only on the source, computed once by :meth:`Animator.prepare_source`."""

    image: Tensor  # 1×3×R×R in [0, 1], on the model's device
    disparity: Tensor | None  # 1×1×R×R, or None for depth-free models
    keypoints: KeypointDict  # float32 {"value": 1×K×2, "jacobian": 1×K×2×2}
    cache: dict[str, Any]  # the generator's source encodings
    crop: np.ndarray  # R×R×3 uint8: what the model sees
    full_image: np.ndarray  # the source picture as given (H×W×3 uint8)
    crop_box: Any = None  # dagan.faces.CropBox of the crop in full_image, None without cropping
    face_box: Any = None  # dagan.faces.FaceBox of the detected face, None without cropping


@dataclass
class AnimateResult:
    """What :meth:`Animator.animate` produced."""

    output: Path
    num_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    anchor_index: int | None  # driving frame used as relative-motion anchor (None in absolute mode)
    scale: float  # adapt-scale factor used (1.0 when off or absolute)
    seconds: float  # wall time of the whole call
    frames_out: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------- the animator


class Animator:
    """Animate a source face with the motion of a driving video, using a trained reenactment model.

    >>> animator = Animator.from_checkpoint("model.pt", device="cpu")  # doctest: +SKIP
    >>> animator.animate("face.jpg", "driving.mp4", "out.mp4")         # doctest: +SKIP

    Frame-level use (real time): ``state = animator.prepare_source(image)``, then
    ``session = animator.session(state)`` and ``session(frame)`` per camera frame (the first frame is the
    anchor), or ``animator.generate_frames(batch, state, transfer)`` for explicit control.
    """

    def __init__(
        self,
        models: ReenactmentModels | None,
        config: Config,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        engine: Any = None,
    ) -> None:
        # ``engine``: exported graphs (dagan.export.GraphEngine) that replace the torch networks; the
        # pipeline around them (crops, motion transfer, smoothing, paste-back) is the same. Tensors stay on
        # the CPU (the engine's runtime places its own work).
        self.engine = engine
        self.device = torch.device("cpu" if engine is not None else resolve_device(device))
        if precision not in PRECISIONS:
            raise DaganError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise DaganError("fp16 needs a CUDA device (--device cuda); on CPU use fp32 or bf16")
        if engine is not None and precision != "fp32":
            raise DaganError("exported graphs run in fp32 (export with --precision fp16 for smaller files)")
        if models is None and engine is None:
            raise DaganError("an Animator needs models or an engine of exported graphs")
        self.precision = precision
        self.config = config
        self.models = models.eval().to(self.device) if models is not None else None  # type: ignore[assignment]
        self.resolution = config.resolution
        self._detector: Any = None
        self._landmarks: Any = None

    @classmethod
    def from_checkpoint(
        cls,
        path: PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        depth_checkpoint: PathLike | None = None,
        backend: str = "torch",
    ) -> Animator:
        """Load our reenactment checkpoint (or an official DaGAN file) — see :mod:`dagan.infer.loading`.

        Without ``path``: ``$DAGAN_CHECKPOINT``, else the bundled 64×64 demo model, which shows the pipeline
        but not real quality (see :func:`resolve_checkpoint`). ``backend`` ``onnxruntime`` or ``openvino``
        runs exported graphs instead of PyTorch: ``path`` is then a ``dagan export`` folder, or a checkpoint
        exported on the fly (see :mod:`dagan.export`)."""
        from dagan.infer.loading import load_reenactment_model

        checkpoint, _ = resolve_checkpoint(path)
        if backend != "torch":
            from dagan.export.runtime import load_engine

            if precision != "fp32":  # refused before any (possibly long) export or session loading
                raise DaganError("exported graphs run in fp32 (export with --precision fp16 for smaller files)")
            engine = load_engine(checkpoint, backend, None if device is None else str(device), depth_checkpoint)
            return cls(None, engine.config, None, precision, engine=engine)
        from dagan.export.manifest import is_export

        if is_export(checkpoint):
            raise DaganError(
                f"'{checkpoint}' is an exported model (ONNX): use --backend onnxruntime or openvino"
            )
        dev = resolve_device(device)
        cfg, models = load_reenactment_model(checkpoint, depth_checkpoint=depth_checkpoint, device=dev)
        return cls(models, cfg, dev, precision)

    # ------------------------------------------------------------------ tensors
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def to_tensor(self, frames: np.ndarray | Sequence[np.ndarray]) -> Tensor:
        """N×H×W×3 uint8 (or one H×W×3 frame) → N×3×H×W float32 in [0, 1] on the device."""
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # e.g. views of Pillow images; torch wants writable memory
            arr = arr.copy()
        x = torch.from_numpy(arr).to(self.device)
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    @staticmethod
    def to_uint8(images: Tensor) -> np.ndarray:
        """N×3×H×W in [0, 1] → N×H×W×3 uint8, rounded (round(255·x))."""
        x = images.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def _disparity_and_keypoints(self, images: Tensor) -> tuple[Tensor | None, KeypointDict]:
        if self.engine is not None:
            return self.engine.keypoints(images)  # type: ignore[no-any-return]
        m = self.models
        needs_depth = m.depth_net is not None and (m.kp_detector.use_depth or m.generator.uses_depth)
        disparity = m.disparity(images) if needs_depth else None
        kp = m.kp_detector(images, disparity if m.kp_detector.use_depth else None)
        # motion transfer (hull areas, inverses) and smoothing run in float32 even under autocast
        return disparity, {k: v.float() for k, v in kp.items()}

    @torch.inference_mode()
    def keypoints(self, frames: np.ndarray | Tensor) -> KeypointDict:
        """Keypoints (float32) of model-resolution frames (N×R×R×3 uint8 or N×3×R×R in [0, 1])."""
        images = frames if isinstance(frames, Tensor) else self.to_tensor(self._model_size(frames))
        with self._autocast():
            return self._disparity_and_keypoints(images.to(self.device))[1]

    def _model_size(self, frames: np.ndarray) -> np.ndarray:
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        r = self.resolution
        if arr.shape[1:3] != (r, r):
            arr = np.stack([resize_rgb(f, r) for f in arr])
        return arr

    # ------------------------------------------------------------------ faces
    def detector(self, name: str = "auto") -> Any:
        """The face detector (created once; needs the ``faces`` extra)."""
        if self._detector is None or (name != "auto" and self._detector.name != name):
            from dagan.faces import create_detector

            self._detector = create_detector(name)
        return self._detector

    def landmarker(self, detector: str = "auto") -> Any:
        """dlib's 68-point landmark predictor (created once; needs the ``faces`` extra)."""
        if self._landmarks is None:
            from dagan.faces import Landmarks68

            self._landmarks = Landmarks68(self.detector(detector))
        return self._landmarks

    def crop_source(
        self,
        image: np.ndarray,
        crop_scale: float = DEFAULT_CROP_SCALE,
        detector: str = "auto",
        what: str = "source",
    ) -> tuple[np.ndarray, Any, Any]:
        """(R×R crop, CropBox, FaceBox) around the largest face of ``image``; InputError if there is none."""
        from dagan.faces import crop_and_resize
        from dagan.faces.cropping import face_crop_box

        found = face_crop_box(self.detector(detector), image, crop_scale)
        if found is None:
            raise InputError(
                f"no face found in the {what} image (use --no-crop to animate the whole picture)"
            )
        box, face = found
        return crop_and_resize(image, box, self.resolution, pad="edge"), box, face

    # ------------------------------------------------------------------ source
    @torch.inference_mode()
    def prepare_source(
        self,
        source: PathLike | np.ndarray,
        crop: bool = True,
        crop_scale: float = DEFAULT_CROP_SCALE,
        detector: str = "auto",
    ) -> SourceState:
        """Crop the source face and compute its disparity, keypoints and generator encodings — once."""
        full = load_source_image(source)
        crop_box = face_box = None
        if crop:
            crop_img, crop_box, face_box = self.crop_source(full, crop_scale, detector)
        else:
            crop_img = resize_rgb(full, self.resolution)
        image = self.to_tensor(crop_img)
        with self._autocast():
            disparity, kp = self._disparity_and_keypoints(image)
            if self.engine is not None:
                cache = self.engine.encode_source(image, disparity)
            else:
                cache = self.models.generator.encode_source(
                    image, disparity if self.models.generator.uses_depth else None
                )
        return SourceState(image, disparity, kp, cache, crop_img, full, crop_box, face_box)

    def motion_transfer(
        self,
        state: SourceState,
        anchor: KeypointDict | np.ndarray | None,
        relative: bool = True,
        adapt_scale: bool = True,
    ) -> MotionTransfer:
        """The motion mapping for ``state``: relative to ``anchor`` (keypoints, or a model-resolution
        frame) or absolute."""
        mode = "relative" if relative else "absolute"
        if anchor is not None and not isinstance(anchor, dict):
            anchor = self.keypoints(anchor)
        return MotionTransfer.create(state.keypoints, anchor, mode, adapt_scale)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ frames
    @torch.inference_mode()
    def generate_from_keypoints(self, kp_driving: KeypointDict, state: SourceState) -> Tensor:
        """Generated frames (N×3×R×R in [0, 1]) for the generator's driving keypoints (after transfer)."""
        if self.engine is not None:
            return self.engine.decode(state.image, state.cache, kp_driving, state.keypoints)  # type: ignore[no-any-return]
        with self._autocast():
            out = self.models.generator.decode(state.image, state.cache, kp_driving, state.keypoints)
        return out["prediction"].float()

    @torch.inference_mode()
    def generate_frames(
        self,
        driving: np.ndarray | Tensor,
        state: SourceState,
        transfer: MotionTransfer,
        smoother: KeypointSmoother | None = None,
        anchor_rows: Sequence[int] = (),
    ) -> Tensor:
        """Generate a batch: driving frames (N×R×R×3 uint8 or N×3×R×R in [0, 1], already cropped) →
        N×3×R×R in [0, 1]. Rows in ``anchor_rows`` are the anchor frame itself and get the anchor's own
        keypoints (so the relative motion there is exactly zero)."""
        kp = self.keypoints(driving)
        if anchor_rows and transfer.kp_anchor is not None:
            rows = torch.as_tensor(list(anchor_rows), device=kp["value"].device)
            kp = {k: v.clone() for k, v in kp.items()}
            for key in kp:
                if key in transfer.kp_anchor:
                    kp[key][rows] = transfer.kp_anchor[key].to(kp[key].dtype)
        if smoother is not None:
            kp = smoother(kp)
        return self.generate_from_keypoints(transfer(kp), state)

    def __call__(
        self, driving: np.ndarray, state: SourceState, transfer: MotionTransfer | None = None
    ) -> np.ndarray:
        """Generated uint8 frames (N×R×R×3) for uint8 driving frames; without ``transfer``, relative motion
        anchored at the first frame of ``driving``."""
        frames = self._model_size(driving)
        if transfer is None:
            transfer = self.motion_transfer(state, self.keypoints(frames[:1]))
        return self.to_uint8(self.generate_frames(frames, state, transfer))

    def session(
        self,
        state: SourceState,
        relative: bool = True,
        adapt_scale: bool = True,
        smooth: float = 0.0,
        fps: float = 30.0,
        crop_driving: bool = False,
        crop_scale: float = DEFAULT_CROP_SCALE,
        paste_back: bool = False,
        detector: str = "auto",
    ) -> FrameSession:
        """A frame-by-frame (real-time) animation of ``state``: see :class:`FrameSession`."""
        return FrameSession(
            self, state, relative, adapt_scale, smooth, fps, crop_driving, crop_scale, paste_back, detector
        )

    # ------------------------------------------------------------------ whole videos
    def animate(
        self,
        source: PathLike | np.ndarray,
        driving: PathLike,
        output: PathLike,
        *,
        relative: bool = True,
        adapt_scale: bool = True,
        find_best_frame: bool = False,
        best_frame: int | None = None,
        crop: bool = True,
        crop_scale: float = DEFAULT_CROP_SCALE,
        detector: str = "auto",
        paste_back: bool | None = None,
        smooth: float = 0.0,
        batch_size: int = 8,
        side_by_side: bool = False,
        frames_out: PathLike | None = None,
        audio: bool = True,
        max_frames: int | None = None,
        progress: bool = True,
        crf: int = 18,
        on_progress: ProgressCallback | None = None,
    ) -> AnimateResult:
        """Animate ``source`` (image, or a video's first frame) with ``driving`` into ``output`` (H.264
        yuv420p at the driving fps, with the driving audio unless ``audio=False``, one frame per driving
        frame). See the module docstring for the pipeline and ``dagan animate --help`` for the options.

        The output keeps the source's framing: with ``crop`` (default), the generated face is pasted back into
        the full source picture, at its resolution (``paste_back=False`` gives the model-resolution crop).
        ``paste_back=None`` (default) means "on whenever there is a crop to paste back"; without ``crop`` the
        whole picture is the model's input and the output is the model-resolution frame. ``side_by_side``
        shows source | driving crop | result, each panel at least :data:`PANEL_HEIGHT` pixels high.
        ``on_progress`` is called as frames are done (see :data:`ProgressCallback`)."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        output = Path(output)
        frames_dir = Path(frames_out) if frames_out is not None else None
        check_options(
            output,
            batch_size=batch_size,
            smooth=smooth,
            crop=crop,
            paste_back=paste_back,
            find_best_frame=find_best_frame,
            best_frame=best_frame,
            max_frames=max_frames,
        )
        paste_back = crop if paste_back is None else paste_back
        info = check_inputs(source, driving, output, frames_dir, load_source=False)
        num_frames = info.num_frames if max_frames is None else min(info.num_frames, max_frames)
        if best_frame is not None and not 0 <= best_frame < num_frames:
            raise InputError(
                f"--best-frame {best_frame} is outside the driving video's frames 0..{num_frames - 1}"
            )

        t = time.perf_counter()
        state = self.prepare_source(source, crop=crop, crop_scale=crop_scale, detector=detector)
        timings["source"] = time.perf_counter() - t

        t = time.perf_counter()
        boxes, anchor_index = self._analyse_driving(
            info, num_frames, state, crop, crop_scale, find_best_frame, best_frame, detector, progress, on_progress
        )
        timings["analysis"] = time.perf_counter() - t
        transfer = self._anchor_transfer(info, state, boxes, anchor_index, relative, adapt_scale)
        smoother = KeypointSmoother(info.fps, min_cutoff=smooth) if smooth > 0 else None
        paster = None
        if paste_back:
            from dagan.faces import PasteBack

            paster = PasteBack(state.full_image, state.crop_box, self.resolution)

        t = time.perf_counter()
        written = self._stream(
            info,
            num_frames,
            state,
            transfer,
            smoother,
            boxes,
            anchor_index,
            paster,
            side_by_side,
            output,
            frames_dir,
            audio and info.has_audio,
            batch_size,
            progress,
            crf,
            on_progress,
        )
        timings["generate"] = time.perf_counter() - t
        height, width = written
        return AnimateResult(
            output=output,
            num_frames=num_frames,
            fps=info.fps,
            width=width,
            height=height,
            has_audio=audio and info.has_audio,
            anchor_index=anchor_index if relative else None,
            scale=transfer.scale,
            seconds=time.perf_counter() - start,
            frames_out=frames_dir,
            timings=timings,
        )

    def _analyse_driving(
        self,
        info: VideoInfo,
        num_frames: int,
        state: SourceState,
        crop: bool,
        crop_scale: float,
        find_best_frame: bool,
        best_frame: int | None,
        detector: str,
        progress: bool,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[list[Any] | None, int]:
        """First pass: per-frame crop boxes (smoothed tube) and the anchor frame index."""
        if not crop and not find_best_frame:
            return None, best_frame or 0
        from tqdm import tqdm

        from dagan.faces import best_frame_index, largest_face
        from dagan.faces.cropping import crop_tube

        det = self.detector(detector)
        landmarker = self.landmarker(detector) if find_best_frame else None
        source_landmarks = None
        if landmarker is not None:
            source_landmarks = landmarker.landmarks(state.full_image, state.face_box)
            if source_landmarks is None:
                raise InputError("no face found in the source image (needed by --find-best-frame)")
        faces: list[Any] = []
        landmarks: list[np.ndarray | None] = []
        frames = _limit(iter_frames(info.path), num_frames)
        for frame in tqdm(
            frames, total=num_frames, desc="faces", unit="frame", disable=not progress, leave=False
        ):
            face = largest_face(det.detect(frame))
            faces.append(None if face is None else face.as_array())
            if landmarker is not None:
                landmarks.append(None if face is None else landmarker.landmarks(frame, face))
            if on_progress is not None:
                on_progress("faces", len(faces), num_frames)
        if all(f is None for f in faces):
            raise InputError(
                f"no face found in the driving video '{info.path}' (use --no-crop to use whole frames)"
            )
        anchor = best_frame or 0
        if find_best_frame:
            try:
                anchor = best_frame_index(source_landmarks, landmarks)
            except ValueError as exc:  # no usable landmarks anywhere
                raise InputError(f"--find-best-frame: {exc}") from None
        if not crop:
            return None, anchor
        return crop_tube(faces, (info.height, info.width), crop_scale), anchor

    def _driving_frame(self, frame: np.ndarray, index: int, boxes: list[Any] | None) -> np.ndarray:
        if boxes is None:
            return resize_rgb(frame, self.resolution)
        from dagan.faces import crop_and_resize

        return crop_and_resize(frame, boxes[index], self.resolution, pad="edge")

    def _anchor_transfer(
        self,
        info: VideoInfo,
        state: SourceState,
        boxes: list[Any] | None,
        anchor_index: int,
        relative: bool,
        adapt_scale: bool,
    ) -> MotionTransfer:
        if not relative:
            return self.motion_transfer(state, None, relative=False)
        frame = read_frames(info.path, [anchor_index])[0]
        return self.motion_transfer(
            state, self._driving_frame(frame, anchor_index, boxes)[None], True, adapt_scale
        )

    def _stream(
        self,
        info: VideoInfo,
        num_frames: int,
        state: SourceState,
        transfer: MotionTransfer,
        smoother: KeypointSmoother | None,
        boxes: list[Any] | None,
        anchor_index: int,
        paster: Any,
        side_by_side: bool,
        output: Path,
        frames_dir: Path | None,
        audio: bool,
        batch_size: int,
        progress: bool,
        crf: int,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[int, int]:
        """Second pass: decode → crop → generate → compose → encode, batch by batch."""
        from tqdm import tqdm

        pngs = _PngFolder(frames_dir) if frames_dir is not None else None
        size = (0, 0)
        # a model's own resolution when it is larger, so side-by-side never shrinks the generated crop
        panel_height = max(PANEL_HEIGHT, self.resolution)
        try:
            with (
                VideoWriter(output, info.rate, audio_from=info.path if audio else None, crf=crf) as writer,
                tqdm(total=num_frames, desc="animate", unit="frame", disable=not progress) as bar,
            ):
                frames = enumerate(_limit(iter_frames(info.path), num_frames))
                for batch in _batched(frames, batch_size):
                    indices = [i for i, _ in batch]
                    driving = np.stack([self._driving_frame(f, i, boxes) for i, f in batch])
                    rows = [
                        r
                        for r, i in enumerate(indices)
                        if i == anchor_index and transfer.kp_anchor is not None
                    ]
                    generated = self.to_uint8(self.generate_frames(driving, state, transfer, smoother, rows))
                    for crop_out, crop_in in zip(generated, driving):
                        frame = paster(crop_out) if paster is not None else crop_out
                        if side_by_side:
                            src = state.full_image if paster is not None else state.crop
                            frame = stack_panels([src, crop_in, frame], panel_height)
                        size = frame.shape[:2]
                        writer.write(frame)
                        if pngs is not None:
                            pngs.write(frame)
                    bar.update(len(batch))
                    if on_progress is not None:
                        on_progress("animate", indices[-1] + 1, num_frames)
                if writer.frames_written != num_frames:
                    raise InputError(
                        f"driving video '{info.path}' yielded {writer.frames_written} frames, "
                        f"expected {num_frames}"
                    )
                if pngs is not None:
                    pngs.commit()
                    pngs = None
        finally:
            if pngs is not None:
                pngs.abort()
        return size


class FrameSession:
    """Frame-by-frame animation for real-time use: ``session(frame) -> generated frame`` (uint8).

    The first frame (or the one given to :meth:`set_anchor`) is the relative-motion anchor. With
    ``crop_driving`` every frame's face is detected and followed by a streaming One-Euro box smoother; with
    ``paste_back`` (needs a cropped source) the output is the full source picture with the face replaced.
    """

    def __init__(
        self,
        animator: Animator,
        state: SourceState,
        relative: bool = True,
        adapt_scale: bool = True,
        smooth: float = 0.0,
        fps: float = 30.0,
        crop_driving: bool = False,
        crop_scale: float = DEFAULT_CROP_SCALE,
        paste_back: bool = False,
        detector: str = "auto",
    ) -> None:
        self.animator, self.state = animator, state
        self.relative, self.adapt_scale = relative, adapt_scale
        self.smoother = KeypointSmoother(fps, min_cutoff=smooth) if smooth > 0 else None
        self.crop_scale, self.detector_name = crop_scale, detector
        self.box_smoother = None
        if crop_driving:
            from dagan.faces import BoxSmoother

            self.box_smoother = BoxSmoother(fps=fps)
        self.paster = None
        if paste_back:
            if state.crop_box is None:
                raise DaganError("paste-back needs a source prepared with crop=True")
            from dagan.faces import PasteBack

            self.paster = PasteBack(state.full_image, state.crop_box, animator.resolution)
        self.transfer: MotionTransfer | None = (
            None if relative else animator.motion_transfer(state, None, False)
        )

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The model-resolution driving crop of one camera frame."""
        frame = _as_rgb_uint8(frame, "driving frame")
        if self.box_smoother is None:
            return resize_rgb(frame, self.animator.resolution)
        from dagan.faces import crop_and_resize, largest_face, square_crop_box

        box = self.box_smoother.update(largest_face(self.animator.detector(self.detector_name).detect(frame)))
        if box is None:
            return resize_rgb(frame, self.animator.resolution)
        crop_box = square_crop_box(box, frame.shape[:2], scale=self.crop_scale)
        return crop_and_resize(frame, crop_box, self.animator.resolution, pad="edge")

    def set_anchor(self, frame: np.ndarray) -> None:
        """Use ``frame`` (a camera frame) as the relative-motion anchor."""
        kp = self.animator.keypoints(self.crop(frame)[None])
        self.transfer = self.animator.motion_transfer(self.state, kp, self.relative, self.adapt_scale)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        driving = self.crop(frame)[None]
        rows: list[int] = []
        if self.transfer is None:
            kp = self.animator.keypoints(driving)
            self.transfer = self.animator.motion_transfer(self.state, kp, self.relative, self.adapt_scale)
            rows = [0]
        out = self.animator.to_uint8(
            self.animator.generate_frames(driving, self.state, self.transfer, self.smoother, rows)
        )[0]
        return self.paster(out) if self.paster is not None else out


# --------------------------------------------------------------------------- checks


def _limit(frames: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if i >= count:
            return
        yield frame


def check_inputs(
    source: PathLike | np.ndarray,
    driving: PathLike,
    output: PathLike,
    frames_out: PathLike | None = None,
    load_source: bool = True,
) -> VideoInfo:
    """Fail fast, before any model work: the source reads as an image (or video), the driving video probes
    fine (exists, not empty, not truncated, has a video stream), no output would overwrite an input, and the
    outputs can be created. Returns the driving video's :class:`VideoInfo`."""
    if load_source:
        load_source_image(source)
    elif not isinstance(source, np.ndarray) and not Path(source).exists():
        raise InputError(f"source not found: '{source}'")
    info = probe_video(driving)
    inputs = [LabelledPath.of("driving video", driving)]
    if not isinstance(source, np.ndarray):
        inputs.append(LabelledPath.of("source", source))
    outputs = [LabelledPath.of("output", output)]
    if frames_out is not None:
        outputs.append(LabelledPath.of("frames folder", frames_out, replaced=True))
    check_outputs_spare_inputs(inputs, outputs)
    _check_writable(Path(output), "output")
    if frames_out is not None:
        _check_writable(Path(frames_out), "frames folder", folder=True)
    return info


def check_options(
    output: PathLike,
    *,
    batch_size: int = 8,
    smooth: float = 0.0,
    crop: bool = True,
    paste_back: bool | None = None,
    find_best_frame: bool = False,
    best_frame: int | None = None,
    max_frames: int | None = None,
) -> None:
    """Refuse the option values and combinations :meth:`Animator.animate` refuses, without any file or
    model work (so a command can check them before loading a model)."""
    output = Path(output)
    if output.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise DaganError(f"output '{output}' must end in {', '.join(OUTPUT_EXTENSIONS)} (H.264 video)")
    if batch_size < 1:
        raise DaganError(f"batch size must be >= 1, got {batch_size}")
    if smooth < 0:
        raise DaganError(f"smoothing must be >= 0 (0 = off), got {smooth}")
    if paste_back and not crop:  # only an explicit request; the default (None) follows crop
        raise DaganError(
            "--paste-back needs face cropping: with --no-crop the whole picture is animated, so there is "
            "nothing to paste back into (drop one of them)"
        )
    if find_best_frame and best_frame is not None:
        raise DaganError("give either --find-best-frame or --best-frame, not both")
    if max_frames is not None and max_frames < 1:
        raise DaganError(f"max frames must be >= 1, got {max_frames}")
