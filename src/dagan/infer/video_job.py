"""One source face animated by one driving video into files (``dagan animate``; ``Animator.animate``).

Pipeline (memory does not grow with the video's length):

1. **Source, once** (:func:`dagan.infer.source.prepare_source`): the face is detected and cut out as a square
   crop resized to the model resolution; its disparity, keypoints and generator encodings are computed once
   and kept in a :class:`dagan.infer.engine.SourceState`.
2. **Driving analysis** (a first, decode-only pass, only with cropping or ``find_best_frame``): face boxes of
   every frame, smoothed over time (zero-phase Gaussian on centre and size) into a stable crop tube; with
   ``find_best_frame``, 68 landmarks per frame pick the anchor frame closest to the source (normalised for
   position and size). Only boxes and landmarks are kept — a few numbers per frame.
3. **Generation** (second pass): frames are decoded, cropped, batched, turned into keypoints (depth →
   keypoints), mapped onto the source by relative or absolute motion (:mod:`dagan.infer.motion`, optionally
   One-Euro smoothed), generated from the cached source encodings, pasted back into the full source picture
   (by default, when cropping), and handed to the output sinks (:mod:`dagan.infer.sinks`) as they go.

Relative motion is anchored at one driving frame; every output frame depends only on its own driving frame
and the anchor, so animating "forward and backward from the best frame" (the official demo) gives the same
frames as one pass in display order, which is what is done here (except that the optional smoothing runs in
display order). At the anchor frame the anchor's own keypoints are used, so the generator receives exactly
the source keypoints there.

All outputs are written to temporary names and renamed at the end: a failure or Ctrl-C leaves nothing
behind under the final names.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dagan.data.video import VideoInfo, iter_frames, probe_video, read_frames, resize_rgb
from dagan.errors import DaganError, InputError
from dagan.infer.engine import Engine, SourceState, batched, generate_frames, motion_transfer, to_uint8
from dagan.infer.motion import MotionTransfer
from dagan.infer.options import AnimateOptions, default_batch_size
from dagan.infer.sinks import (
    PANEL_HEIGHT,
    AnimatedFrame,
    FrameFolderSink,
    FrameSink,
    SideBySideSink,
    VideoFileSink,
)
from dagan.infer.smoothing import KeypointSmoother
from dagan.infer.source import FaceModels, load_source_image, prepare_source
from dagan.paths import PathLike
from dagan.protected_inputs import LabelledPath, check_outputs_spare_inputs

__all__ = ["OUTPUT_EXTENSIONS", "AnimateResult", "ProgressCallback", "VideoJob", "check_inputs"]

#: ``on_progress(stage, done, total)`` of :meth:`VideoJob.run`: stage "faces" (the driving analysis pass)
#: or "animate" (generation), frames done so far out of ``total``. An exception raised by it (e.g. a
#: cancelled job) stops the animation; nothing is left under the output names.
ProgressCallback = Callable[[str, int, int], None]
#: Output containers that hold H.264 + AAC.
OUTPUT_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv")


@dataclass
class AnimateResult:
    """What :meth:`VideoJob.run` (``Animator.animate``) produced."""

    output: Path
    num_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    anchor_index: int | None  # driving frame used as relative-motion anchor (None in absolute mode)
    scale: float  # adapt-scale factor used (1.0 when off or absolute)
    seconds: float  # wall time of the whole job
    frames_out: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else float("inf")


class VideoJob:
    """Animate ``source`` (an image, a video's first frame, or an array) with ``driving`` into ``output``
    (H.264 yuv420p at the driving fps, with the driving audio unless ``options.audio`` is off, one frame per
    driving frame), and into ``frames_out`` as PNGs when given.

    Creating the job checks the options and files (nothing is written) and prepares the source
    (:attr:`state`); :meth:`run` does the rest. The output keeps the source's framing: with ``crop``, the
    generated face is pasted back into the full source picture (``paste_back=False`` gives the
    model-resolution crop); without ``crop`` the whole picture is the model's input. ``side_by_side`` shows
    source | driving crop | result, each panel at least :data:`PANEL_HEIGHT` pixels high.
    """

    def __init__(
        self,
        engine: Engine,
        faces: FaceModels,
        source: PathLike | np.ndarray,
        driving: PathLike,
        output: PathLike,
        options: AnimateOptions,
        frames_out: PathLike | None = None,
    ) -> None:
        self._start = time.perf_counter()
        self.engine, self.faces, self.options = engine, faces, options
        self.output = Path(output)
        self.frames_out = Path(frames_out) if frames_out is not None else None
        options.check()
        self.info = check_inputs(source, driving, self.output, self.frames_out, load_source=False)
        count = self.info.num_frames
        self.num_frames = count if options.max_frames is None else min(count, options.max_frames)
        if options.best_frame is not None and not 0 <= options.best_frame < self.num_frames:
            raise InputError(
                f"--best-frame {options.best_frame} is outside the driving video's frames "
                f"0..{self.num_frames - 1}"
            )
        t = time.perf_counter()
        self.state: SourceState = prepare_source(
            engine, faces, source, options.crop, options.crop_scale, options.detector
        )
        self.timings = {"source": time.perf_counter() - t}

    @property
    def source_panel(self) -> np.ndarray:
        """The source as a side-by-side panel shows it: the full picture when the result is pasted back into
        it, else the model's crop."""
        return self.state.full_image if self.options.pastes_back else self.state.crop

    def run(
        self,
        extra_sinks: Sequence[FrameSink] = (),
        progress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> AnimateResult:
        """Analyse the driving video, generate every frame and write it to the outputs and ``extra_sinks``
        (e.g. a :class:`dagan.infer.sinks.SideBySideSink` of its own). ``progress`` shows progress bars;
        ``on_progress`` is called as frames are done (see :data:`ProgressCallback`)."""
        opts, info = self.options, self.info
        t = time.perf_counter()
        boxes, anchor_index = self._analyse_driving(progress, on_progress)
        self.timings["analysis"] = time.perf_counter() - t
        transfer = self._anchor_transfer(boxes, anchor_index)
        audio = opts.audio and info.has_audio
        video = VideoFileSink(self.output, info.rate, audio_from=info.path if audio else None, crf=opts.crf)
        outputs: list[FrameSink] = [video]
        if self.frames_out is not None:
            outputs.append(FrameFolderSink(self.frames_out))
        if opts.side_by_side:
            # at the model's own resolution when it is larger, so the generated crop is never shrunk
            height = max(PANEL_HEIGHT, self.engine.resolution)
            outputs = [SideBySideSink(outputs, self.source_panel, height=height)]
        t = time.perf_counter()
        self._generate([*outputs, *extra_sinks], boxes, anchor_index, transfer, progress, on_progress)
        self.timings["generate"] = time.perf_counter() - t
        height, width = video.frame_size
        return AnimateResult(
            output=self.output,
            num_frames=self.num_frames,
            fps=info.fps,
            width=width,
            height=height,
            has_audio=audio,
            anchor_index=anchor_index if opts.relative else None,
            scale=transfer.scale,
            seconds=time.perf_counter() - self._start,
            frames_out=self.frames_out,
            timings=self.timings,
        )

    def _frames(self) -> Iterator[np.ndarray]:
        return islice(iter_frames(self.info.path), self.num_frames)

    def _analyse_driving(
        self, progress: bool, on_progress: ProgressCallback | None
    ) -> tuple[list[Any] | None, int]:
        """First pass: per-frame crop boxes (smoothed tube) and the anchor frame index."""
        opts, info, num_frames = self.options, self.info, self.num_frames
        if not opts.crop and not opts.find_best_frame:
            return None, opts.best_frame or 0
        from tqdm import tqdm

        from dagan.faces import best_frame_index, largest_face
        from dagan.faces.cropping import crop_tube

        detector = self.faces.detector(opts.detector)
        landmarker = self.faces.landmarker(opts.detector) if opts.find_best_frame else None
        source_landmarks = None
        if landmarker is not None:
            source_landmarks = landmarker.landmarks(self.state.full_image, self.state.face_box)
            if source_landmarks is None:
                raise InputError("no face found in the source image (needed by --find-best-frame)")
        faces: list[Any] = []
        landmarks: list[np.ndarray | None] = []
        for frame in tqdm(
            self._frames(), total=num_frames, desc="faces", unit="frame", disable=not progress, leave=False
        ):
            face = largest_face(detector.detect(frame))
            faces.append(None if face is None else face.as_array())
            if landmarker is not None:
                landmarks.append(None if face is None else landmarker.landmarks(frame, face))
            if on_progress is not None:
                on_progress("faces", len(faces), num_frames)
        if all(f is None for f in faces):
            raise InputError(
                f"no face found in the driving video '{info.path}' (use --no-crop to use whole frames)"
            )
        anchor = opts.best_frame or 0
        if opts.find_best_frame:
            assert source_landmarks is not None
            try:
                anchor = best_frame_index(source_landmarks, landmarks)
            except ValueError as exc:  # no usable landmarks anywhere
                raise InputError(f"--find-best-frame: {exc}") from None
        if not opts.crop:
            return None, anchor
        return crop_tube(faces, (info.height, info.width), opts.crop_scale), anchor

    def _driving_crop(self, frame: np.ndarray, index: int, boxes: list[Any] | None) -> np.ndarray:
        """The model-resolution driving crop of frame ``index`` (the whole frame resized without a tube)."""
        if boxes is None:
            return resize_rgb(frame, self.engine.resolution)
        from dagan.faces import crop_and_resize

        return crop_and_resize(frame, boxes[index], self.engine.resolution, pad="edge")

    def _anchor_transfer(self, boxes: list[Any] | None, anchor_index: int) -> MotionTransfer:
        opts = self.options
        if not opts.relative:
            return motion_transfer(self.engine, self.state, None, relative=False)
        frame = read_frames(self.info.path, [anchor_index])[0]
        anchor = self._driving_crop(frame, anchor_index, boxes)[None]
        return motion_transfer(self.engine, self.state, anchor, True, opts.adapt_scale)

    def _generate(
        self,
        sinks: Sequence[FrameSink],
        boxes: list[Any] | None,
        anchor_index: int,
        transfer: MotionTransfer,
        progress: bool,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Second pass: decode → crop → generate → paste back → sinks, batch by batch."""
        from tqdm import tqdm

        opts, num_frames = self.options, self.num_frames
        smoother = KeypointSmoother(self.info.fps, min_cutoff=opts.smooth) if opts.smooth > 0 else None
        paster = None
        if opts.pastes_back:
            from dagan.faces import PasteBack

            paster = PasteBack(self.state.full_image, self.state.crop_box, self.engine.resolution)
        written = 0
        with ExitStack() as stack:
            for sink in sinks:
                stack.enter_context(sink)
            bar = stack.enter_context(tqdm(total=num_frames, desc="animate", unit="frame", disable=not progress))
            batch_size = opts.batch_size or default_batch_size(self.engine.device.type)
            for batch in batched(enumerate(self._frames()), batch_size):
                indices = [i for i, _ in batch]
                driving = np.stack([self._driving_crop(f, i, boxes) for i, f in batch])
                rows = [r for r, i in enumerate(indices) if i == anchor_index and transfer.kp_anchor is not None]
                generated = to_uint8(generate_frames(self.engine, driving, self.state, transfer, smoother, rows))
                for (_, whole), crop_out, crop_in in zip(batch, generated, driving):
                    result = paster(crop_out) if paster is not None else crop_out
                    frame = AnimatedFrame(result=result, driving=whole, driving_crop=crop_in)
                    for sink in sinks:
                        sink.write(frame)
                    written += 1
                bar.update(len(batch))
                if on_progress is not None:
                    on_progress("animate", indices[-1] + 1, num_frames)
            if written != num_frames:
                raise InputError(
                    f"driving video '{self.info.path}' yielded {written} frames, expected {num_frames}"
                )


# --------------------------------------------------------------------------- checks before any work


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


def check_inputs(
    source: PathLike | np.ndarray,
    driving: PathLike,
    output: PathLike,
    frames_out: PathLike | None = None,
    load_source: bool = True,
) -> VideoInfo:
    """Fail fast, before any model work: the output names a video container, the source reads as an image
    (or video), the driving video probes fine (exists, not empty, not truncated, has a video stream), no
    output would overwrite an input, and the outputs can be created. Returns the driving video's
    :class:`VideoInfo`."""
    if Path(output).suffix.lower() not in OUTPUT_EXTENSIONS:
        raise DaganError(f"output '{output}' must end in {', '.join(OUTPUT_EXTENSIONS)} (H.264 video)")
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
