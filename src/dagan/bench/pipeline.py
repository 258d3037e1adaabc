"""One benchmark run: the ``dagan animate`` pipeline on one engine, timed per stage, per frame and end to end.

A *pass* animates the source photo with the first N frames of the driving clip (looped when N is longer)
exactly as :class:`dagan.infer.video_job.VideoJob` does, from the same pieces, with a stage around each:

* once per video (the ``once`` figure): the source is read, its face detected and cropped, and its disparity,
  keypoints and generator encodings computed (:func:`~dagan.infer.source.prepare_source`); after the
  analysis pass, the smoothed crop tube, the anchor frame's keypoints (relative motion from frame 0) and the
  paste-back mask;
* per frame — analysis pass: ``decode``, ``detect`` (largest face); generation pass, batch by batch:
  ``decode`` (the frame is decoded again, as the real pipeline does), ``crop``, then
  :func:`~dagan.infer.engine.generate_frames` with the model stages of :mod:`dagan.bench.stages`
  (``depth``, ``keypoints``, ``motion``, ``warp L<i>``, ``attention L<i>``, ``warp image``, ``decoder``; what is
  left of the call, plus :func:`~dagan.infer.engine.to_uint8`, is ``convert``), ``paste`` (back into the
  source photo) and ``encode`` (H.264 at ``dagan animate``'s quality, including the encoder's start and final
  flush, into a temporary file; no audio).

A run is: an untimed warm-up pass (if any), the instrumented pass (per-stage times; on CPU also the end-to-end
and once times) and, on a GPU only, an uninstrumented pass for the end-to-end and once times (there the
stage synchronisations would slow the pipeline down). Frame counts are rounded up to whole batches.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dagan.data.video import VideoWriter, iter_frames, probe_video
from dagan.errors import InputError
from dagan.infer.engine import TorchEngine, generate_frames, motion_transfer, to_uint8
from dagan.infer.options import AnimateOptions, default_batch_size
from dagan.infer.source import FaceModels, prepare_source

from .stages import StageClock, instrument

__all__ = ["PassTimes", "RunTimes", "animate_pass", "time_run"]


@dataclass(frozen=True)
class PassTimes:
    """What one pass took: seconds once per video, seconds of per-frame work in all (wall), exclusive
    seconds per stage (empty for an uninstrumented pass), and the number of frames."""

    once: float
    per_frame: float
    stages: dict[str, float]
    frames: int


@dataclass(frozen=True)
class RunTimes:
    """One run's results in milliseconds: ``once`` per video, ``stages`` and ``end_to_end`` per frame."""

    once_ms: float
    stages_ms: dict[str, float]
    end_to_end_ms: float
    frames: int


def driving_frames(path: Path, count: int) -> Iterator[np.ndarray]:
    """The first ``count`` frames of the video at ``path``, starting over at its end as often as needed."""
    produced = 0
    while produced < count:
        before = produced
        for frame in islice(iter_frames(path), count - produced):
            produced += 1
            yield frame
        if produced == before:
            raise InputError(f"no frames in '{path}'")


def _decoded(frames: Iterator[np.ndarray], clock: StageClock) -> Iterator[np.ndarray]:
    while True:
        with clock.stage("decode"):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


class _Wall:
    """Sums the synchronised wall time of the ``with`` blocks it is used for."""

    def __init__(self, clock: StageClock) -> None:
        self.clock, self.seconds = clock, 0.0

    def __enter__(self) -> None:
        self.clock.sync()
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.clock.sync()
        self.seconds += time.perf_counter() - self._start


def animate_pass(
    engine: TorchEngine,
    faces: FaceModels,
    source: Path,
    driving: Path,
    num_frames: int,
    options: AnimateOptions,
    clock: StageClock,
    workdir: Path,
) -> PassTimes:
    """Animate ``source`` with the first ``num_frames`` frames of ``driving`` (see the module docstring),
    writing the video into ``workdir``; ``clock`` receives the per-frame stages."""
    from dagan.faces import PasteBack, crop_and_resize, largest_face
    from dagan.faces.cropping import crop_tube

    res = engine.resolution
    once, per_frame = _Wall(clock), _Wall(clock)
    with instrument(engine.models, clock, res):
        clock.recording = False
        with once:
            state = prepare_source(engine, faces, source, True, options.crop_scale, options.detector)
            detector = faces.detector(options.detector)
        clock.recording = True

        boxes: list[Any] = []
        first = None
        with per_frame:  # analysis pass
            for frame in _decoded(driving_frames(driving, num_frames), clock):
                with clock.stage("detect"):
                    face = largest_face(detector.detect(frame))
                boxes.append(None if face is None else face.as_array())
                first = frame if first is None else first
        if first is None or all(b is None for b in boxes):
            raise InputError(f"no face found in the driving video '{driving}'")

        clock.recording = False
        with once:
            tube = crop_tube(boxes, first.shape[:2], options.crop_scale)
            anchor = crop_and_resize(first, tube[0], res, pad="edge")[None]
            transfer = motion_transfer(engine, state, anchor, True, options.adapt_scale)
            paster = PasteBack(state.full_image, state.crop_box, res)
        clock.recording = True

        writer = VideoWriter(workdir / "bench.mp4", probe_video(driving).rate, crf=options.crf)
        try:
            with per_frame:  # generation pass
                frames = enumerate(_decoded(driving_frames(driving, num_frames), clock))
                while batch := list(islice(frames, options.batch_size)):
                    with clock.stage("crop"):
                        crops = np.stack([crop_and_resize(f, tube[i], res, pad="edge") for i, f in batch])
                    rows = [r for r, (i, _) in enumerate(batch) if i == 0]  # the anchor: zero relative motion
                    with clock.stage("convert"):
                        generated = to_uint8(generate_frames(engine, crops, state, transfer, None, rows))
                    for crop in generated:
                        with clock.stage("paste"):
                            result = paster(crop)
                        with clock.stage("encode"):
                            writer.write(result)
                with clock.stage("encode"):
                    writer.close()
        except BaseException:
            writer.abort()
            raise
    return PassTimes(once.seconds, per_frame.seconds, dict(clock.totals), num_frames)


def time_run(
    engine: TorchEngine, faces: FaceModels, source: Path, driving: Path, frames: int, warmup: int,
    options: AnimateOptions,
) -> RunTimes:
    """Warm up on ``warmup`` frames, then time ``frames`` frames (both rounded up to whole batches; see the
    module docstring)."""
    batch = options.batch_size or default_batch_size(engine.device.type)
    options = dataclasses.replace(options, batch_size=batch)  # the islice in animate_pass needs a number
    timed = math.ceil(frames / batch) * batch
    with tempfile.TemporaryDirectory(prefix="dagan-bench-") as tmp:
        work = Path(tmp)
        if warmup > 0:
            animate_pass(engine, faces, source, driving, math.ceil(warmup / batch) * batch, options,
                         StageClock(engine.device, enabled=False), work)  # fmt: skip
        staged = animate_pass(engine, faces, source, driving, timed, options, StageClock(engine.device), work)
        whole = staged
        if engine.device.type != "cpu":  # synchronised stages would slow a GPU pipeline down
            clock = StageClock(engine.device, enabled=False)
            whole = animate_pass(engine, faces, source, driving, timed, options, clock, work)
    ms = 1000.0 / timed
    return RunTimes(
        once_ms=1000.0 * whole.once,
        stages_ms={name: seconds * ms for name, seconds in staged.stages.items()},
        end_to_end_ms=whole.per_frame * ms,
        frames=timed,
    )
