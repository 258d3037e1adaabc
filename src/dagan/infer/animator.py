"""``dagan.Animator``: the public face of animation — one model (an :class:`dagan.infer.engine.Engine`), the
face tools, and the ways to animate with them.

* ``animator.animate(source, driving, output, **options)`` — a whole video into files
  (:class:`dagan.infer.video_job.VideoJob`; options are the fields of
  :class:`dagan.infer.options.AnimateOptions`);
* ``animator.session(state, …)`` — frame by frame, for a webcam (:class:`dagan.infer.live_session.LiveSession`);
* ``animator.prepare_source``, ``animator.generate_frames`` — explicit frame-level control.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dagan.config import Config
from dagan.faces.boxes import DEFAULT_CROP_SCALE
from dagan.infer.engine import (
    Engine,
    SourceState,
    TorchEngine,
    frame_keypoints,
    generate_frames,
    model_size,
    motion_transfer,
    open_engine,
    to_tensor,
    to_uint8,
)
from dagan.infer.live_session import LiveSession
from dagan.infer.motion import MotionTransfer
from dagan.infer.options import AnimateOptions
from dagan.infer.smoothing import KeypointSmoother
from dagan.infer.source import FaceModels, prepare_source
from dagan.infer.video_job import AnimateResult, ProgressCallback, VideoJob
from dagan.models.factory import ReenactmentModels
from dagan.paths import PathLike

__all__ = ["CHECKPOINT_ENV", "Animator", "resolve_checkpoint"]

KeypointDict = dict[str, Tensor]
#: Environment variable naming the reenactment checkpoint when none is passed explicitly.
CHECKPOINT_ENV = "DAGAN_CHECKPOINT"


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


class Animator:
    """Animate a source face with the motion of a driving video, using a trained reenactment model.

    >>> animator = Animator.from_checkpoint("model.pt", device="cpu")  # doctest: +SKIP
    >>> animator.animate("face.jpg", "driving.mp4", "out.mp4")         # doctest: +SKIP

    Frame-level use (real time): ``state = animator.prepare_source(image)``, then
    ``session = animator.session(state)`` and ``session(frame)`` per camera frame (the first frame is the
    anchor), or ``animator.generate_frames(batch, state, transfer)`` for explicit control.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.faces = FaceModels()

    @classmethod
    def from_checkpoint(
        cls,
        path: PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        depth_checkpoint: PathLike | None = None,
        backend: str = "torch",
        fast_path: bool = True,
    ) -> Animator:
        """Load our reenactment checkpoint (or an official DaGAN file) — see :mod:`dagan.checkpoints.reenactment`.

        Without ``path``: ``$DAGAN_CHECKPOINT``, else the bundled 64×64 demo model, which shows the pipeline
        but not real quality (see :func:`resolve_checkpoint`). ``backend`` ``onnxruntime`` or ``openvino``
        runs exported graphs instead of PyTorch: ``path`` is then a ``dagan export`` folder, or a checkpoint
        exported on the fly (see :mod:`dagan.export`). ``precision`` ``fp16``/``bf16`` runs PyTorch under
        autocast. ``fast_path=False`` runs the PyTorch networks exactly as trained instead of their
        inference-only rewrite (see :class:`dagan.infer.engine.TorchEngine`)."""
        checkpoint, _ = resolve_checkpoint(path)
        return cls(open_engine(checkpoint, device, precision, depth_checkpoint, backend, fast_path))

    @property
    def config(self) -> Config:
        return self.engine.config

    @property
    def resolution(self) -> int:
        return self.engine.resolution

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def models(self) -> ReenactmentModels | None:
        """The PyTorch networks (None when exported graphs run them)."""
        return self.engine.models if isinstance(self.engine, TorchEngine) else None

    # ------------------------------------------------------------------ frames
    def to_tensor(self, frames: np.ndarray | Sequence[np.ndarray]) -> Tensor:
        """N×H×W×3 uint8 (or one H×W×3 frame) → N×3×H×W float32 in [0, 1] on the model's device."""
        return to_tensor(frames, self.device)

    to_uint8 = staticmethod(to_uint8)

    def keypoints(self, frames: np.ndarray | Tensor) -> KeypointDict:
        """Keypoints (float32) of model-resolution frames (N×R×R×3 uint8 or N×3×R×R in [0, 1])."""
        return frame_keypoints(self.engine, frames)

    def crop_source(
        self, image: np.ndarray, crop_scale: float = DEFAULT_CROP_SCALE, detector: str = "auto"
    ) -> tuple[np.ndarray, Any, Any]:
        """(R×R crop, CropBox, FaceBox) around the largest face of ``image``; InputError if there is none."""
        return self.faces.crop_face(image, self.resolution, crop_scale, detector)

    def prepare_source(
        self,
        source: PathLike | np.ndarray,
        crop: bool = True,
        crop_scale: float = DEFAULT_CROP_SCALE,
        detector: str = "auto",
    ) -> SourceState:
        """Crop the source face and compute its disparity, keypoints and generator encodings — once."""
        return prepare_source(self.engine, self.faces, source, crop, crop_scale, detector)

    def motion_transfer(
        self,
        state: SourceState,
        anchor: KeypointDict | np.ndarray | None,
        relative: bool = True,
        adapt_scale: bool = True,
    ) -> MotionTransfer:
        """The motion mapping for ``state``: relative to ``anchor`` (keypoints, or a model-resolution
        frame) or absolute."""
        return motion_transfer(self.engine, state, anchor, relative, adapt_scale)

    def generate_frames(
        self,
        driving: np.ndarray | Tensor,
        state: SourceState,
        transfer: MotionTransfer,
        smoother: KeypointSmoother | None = None,
        anchor_rows: Sequence[int] = (),
    ) -> Tensor:
        """Generate a batch: driving frames (N×R×R×3 uint8 or N×3×R×R in [0, 1], already cropped) →
        N×3×R×R in [0, 1]; see :func:`dagan.infer.engine.generate_frames`."""
        return generate_frames(self.engine, driving, state, transfer, smoother, anchor_rows)

    def __call__(
        self, driving: np.ndarray, state: SourceState, transfer: MotionTransfer | None = None
    ) -> np.ndarray:
        """Generated uint8 frames (N×R×R×3) for uint8 driving frames; without ``transfer``, relative motion
        anchored at the first frame of ``driving``."""
        frames = model_size(driving, self.resolution)
        if transfer is None:
            transfer = self.motion_transfer(state, self.keypoints(frames[:1]))
        return to_uint8(self.generate_frames(frames, state, transfer))

    # ------------------------------------------------------------------ ways to animate
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
    ) -> LiveSession:
        """A frame-by-frame (real-time) animation of ``state``: see :class:`LiveSession`."""
        return LiveSession(
            self.engine, self.faces, state, relative, adapt_scale, smooth, fps, crop_driving, crop_scale,
            paste_back, detector,
        )

    def video_job(
        self,
        source: PathLike | np.ndarray,
        driving: PathLike,
        output: PathLike,
        options: AnimateOptions | None = None,
        *,
        frames_out: PathLike | None = None,
        **option_values: Any,
    ) -> VideoJob:
        """A checked :class:`VideoJob` with its source prepared (``job.state``), ready to :meth:`~VideoJob.run`.
        ``options`` (default: :class:`AnimateOptions` ()) with ``option_values`` (its fields) replaced."""
        options = dataclasses.replace(options or AnimateOptions(), **option_values)
        return VideoJob(self.engine, self.faces, source, driving, output, options, frames_out)

    def animate(
        self,
        source: PathLike | np.ndarray,
        driving: PathLike,
        output: PathLike,
        options: AnimateOptions | None = None,
        *,
        frames_out: PathLike | None = None,
        progress: bool = True,
        on_progress: ProgressCallback | None = None,
        **option_values: Any,
    ) -> AnimateResult:
        """Animate ``source`` (image, or a video's first frame) with ``driving`` into ``output`` (H.264
        yuv420p at the driving fps, with the driving audio, one frame per driving frame), and into
        ``frames_out`` as PNGs when given. ``options`` and ``option_values`` as in :meth:`video_job`, e.g.
        ``animate(src, drv, out, find_best_frame=True)``; see :class:`VideoJob` for the pipeline."""
        job = self.video_job(source, driving, output, options, frames_out=frames_out, **option_values)
        return job.run(progress=progress, on_progress=on_progress)
