"""One raw video → face-cropped training clips: detect, track, cut, split, crop (``dagan prepare-data``).

Two streaming passes over the video, so memory does not depend on its length:

1. :func:`analyse_video` decodes every frame once. Per frame it computes the colour histogram (scene cuts,
   :func:`dagan.faces.frame_histogram`) and, on every ``detect_every``-th frame, runs the face detector. At a
   scene cut the frames on both sides are always detected (the previous frame is kept for that), and so is
   the last frame. The detections are linked into tubes by IoU (:func:`dagan.faces.link_tubes`, run on the
   detected frames only, so a gap counts detection intervals); a tube ends at a scene cut or when its face is
   missing for more than ``max_gap`` frames (lost track). Boxes of the frames in between detections are
   interpolated. Each tube is then split where its face box no longer overlaps the piece's first box by
   IoU ≥ ``min_iou`` (the VoxCeleb recipe: 0.25), pieces shorter than ``min_frames`` or with a face smaller
   than ``min_face`` are dropped, and each kept piece gets one fixed square crop (below).
2. :func:`write_segments` decodes the video again and writes every kept piece, cropped and resized to
   ``size``×``size``, as an MP4 or a PNG frame folder (both written under a temporary name and renamed).

The crop of a piece (:func:`segment_crop`): every face box is first enlarged about its centre by
``box_scale``, then the union U of these boxes over the piece is enlarged by ``increase`` on every side and
made square, side = (1 + 2·increase)·max(w_U, h_U) (:func:`dagan.faces.tube_crop_box`; the VoxCeleb recipe
uses increase = 0.1 on S3FD boxes). Our detectors return boxes in dlib's tighter convention (eyebrows to
chin), so ``box_scale`` = 1.5 makes a still face's crop 1.5·1.2 = 1.8 face boxes wide — the framing of
:data:`dagan.faces.DEFAULT_CROP_SCALE` that ``dagan animate`` uses for source and driving crops, about what a
face occupies in the VoxCeleb crops. A moving face gets a larger crop (the union grows), as in VoxCeleb. The
square is shifted inside the frame where it fits and padded (``pad``) where it does not, never squashed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from dagan.data.frame_folder_writer import FrameFolderWriter
from dagan.data.video import VideoInfo, VideoWriter, iter_frames, probe_video
from dagan.errors import DaganError, InputError
from dagan.faces import (
    FaceBox,
    FaceDetector,
    Tube,
    crop_and_resize,
    frame_histogram,
    histogram_distance,
    link_tubes,
    split_by_initial_iou,
    tube_crop_box,
)
from dagan.faces.boxes import PAD_MODES

#: Why a tube piece ends: the frame after it starts a new shot, the face was not found for more than
#: ``max_gap`` frames, the face moved out of the piece's first box (IoU < ``min_iou``), or the video ended.
END_CAUSES = ("scene cut", "lost track", "low IoU", "end of video")
#: Why a tube piece is not written.
DROP_REASONS = ("too short", "too small")
#: Output formats: an H.264 MP4 per clip, or a folder of PNG frames per clip.
FORMATS = ("mp4", "png")


@dataclass(frozen=True)
class TubeOptions:
    """Settings of the per-video pipeline (see the module docstring); the defaults follow VoxCeleb."""

    size: int = 256
    min_frames: int = 64
    increase: float = 0.1
    min_iou: float = 0.25
    box_scale: float = 1.5
    link_iou: float = 0.3
    max_gap: int = 5
    detect_every: int = 1
    detect_max_side: int = 640
    cut_threshold: float = 0.3
    min_face: float = 0.0
    pad: str = "zeros"

    def __post_init__(self) -> None:
        checks = [
            (self.size >= 8, f"the crop size must be at least 8 pixels, got {self.size}"),
            (self.min_frames >= 1, f"min_frames must be ≥ 1, got {self.min_frames}"),
            (self.increase >= 0, f"increase must be ≥ 0, got {self.increase}"),
            (0 <= self.min_iou <= 1, f"min_iou must be in [0, 1], got {self.min_iou}"),
            (self.box_scale >= 1, f"box_scale must be ≥ 1, got {self.box_scale}"),
            (0 < self.link_iou <= 1, f"link_iou must be in (0, 1], got {self.link_iou}"),
            (self.max_gap >= 0, f"max_gap must be ≥ 0, got {self.max_gap}"),
            (self.detect_every >= 1, f"detect_every must be ≥ 1, got {self.detect_every}"),
            (self.detect_max_side >= 0, f"detect_max_side must be ≥ 0, got {self.detect_max_side}"),
            (0 < self.cut_threshold <= 1, f"cut_threshold must be in (0, 1], got {self.cut_threshold}"),
            (self.min_face >= 0, f"min_face must be ≥ 0, got {self.min_face}"),
            (self.pad in PAD_MODES, f"pad must be one of {', '.join(PAD_MODES)}, got {self.pad!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DaganError(message)


@dataclass(frozen=True)
class Segment:
    """A piece of a face tube: frames ``[start, stop)`` of the video and the square ``crop`` (x0, y0, x1, y1,
    source pixels, may reach outside the frame) used for all of them. ``reason`` is None for a kept piece,
    else one of :data:`DROP_REASONS`; ``ended_by`` is one of :data:`END_CAUSES`."""

    start: int
    stop: int
    crop: tuple[float, float, float, float]
    face_size: float  # median of max(w, h) of the (interpolated) face boxes, source pixels
    ended_by: str
    reason: str | None = None

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class VideoAnalysis:
    """Result of :func:`analyse_video`. ``segments`` are the kept pieces, ordered by start frame then left
    edge; ``dropped`` the others. ``detected_frames`` counts the frames the detector ran on,
    ``face_frames`` those of them in which it found at least one face."""

    info: VideoInfo
    num_frames: int
    cuts: list[int] = field(default_factory=list)
    detected_frames: int = 0
    face_frames: int = 0
    segments: list[Segment] = field(default_factory=list)
    dropped: list[Segment] = field(default_factory=list)


# --------------------------------------------------------------------------- geometry


def scale_boxes(boxes: np.ndarray, scale: float) -> np.ndarray:
    """N×4 boxes resized by ``scale`` about their centres: c ± scale·(x1 − x0, y1 − y0)/2."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    half = 0.5 * scale * (boxes[:, 2:] - boxes[:, :2])
    return np.concatenate([centre - half, centre + half], axis=1)


def median_face_side(boxes: np.ndarray) -> float:
    """Median over frames of max(w, h) of N×4 boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))


def segment_crop(
    boxes: np.ndarray, image_size: tuple[int, int], box_scale: float = 1.5, increase: float = 0.1
) -> tuple[float, float, float, float]:
    """Square crop of a tube piece: :func:`dagan.faces.tube_crop_box` of the face boxes enlarged by
    ``box_scale``; side = (1 + 2·increase)·max side of the union of the enlarged boxes. ``image_size`` is
    (height, width)."""
    crop = tube_crop_box(scale_boxes(boxes, box_scale), image_size, increase=increase)
    return (crop.x0, crop.y0, crop.x1, crop.y1)


def detect_faces(detector: FaceDetector, frame: np.ndarray, max_side: int = 0) -> list[FaceBox]:
    """Faces in ``frame``; when its longer side exceeds ``max_side`` (> 0) the detector runs on a copy
    down-scaled to that side (much faster on HD video) and the boxes are scaled back."""
    h, w = frame.shape[:2]
    factor = max(h, w) / max_side if max_side > 0 else 1.0
    if factor <= 1.0:
        return list(detector.detect(frame))
    small_size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = np.asarray(Image.fromarray(frame).resize(small_size, Image.Resampling.BILINEAR))
    sx, sy = w / small.shape[1], h / small.shape[0]
    return [FaceBox(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy, b.score) for b in detector.detect(small)]


# --------------------------------------------------------------------------- pass 1: analysis


def _end_cause(last: int, cut_samples: Sequence[int], num_samples: int, gap: int) -> str:
    """Why a tube whose last detection is sample ``last`` ended, mirroring :func:`link_tubes`: a cut
    within the allowed gap ends it first; otherwise the video ends within the gap, or the face was lost."""
    later_cuts = [c for c in cut_samples if c > last]
    if later_cuts and later_cuts[0] - last - 1 <= gap:
        return "scene cut"
    if num_samples - last - 1 <= gap:
        return "end of video"
    return "lost track"


def analyse_video(
    path: str | os.PathLike[str], detector: FaceDetector, options: TubeOptions = TubeOptions()
) -> VideoAnalysis:
    """Pass 1 over a video: scene cuts, face detections, tubes, pieces and their crops (module docstring).

    Raises :class:`dagan.errors.InputError` when the video cannot be read."""
    path = Path(path)
    info = probe_video(path)
    k = options.detect_every
    sample_frames: list[int] = []  # frame index of each detection run, increasing
    sample_dets: list[list[FaceBox]] = []
    cuts: list[int] = []
    prev_hist: np.ndarray | None = None
    prev_frame: np.ndarray | None = None
    last_sampled = -(10**9)

    def sample(t: int, frame: np.ndarray) -> None:
        nonlocal last_sampled
        sample_frames.append(t)
        sample_dets.append(detect_faces(detector, frame, options.detect_max_side))
        last_sampled = t

    t = -1
    for t, frame in enumerate(iter_frames(path)):
        hist = frame_histogram(frame)
        is_cut = prev_hist is not None and histogram_distance(prev_hist, hist) > options.cut_threshold
        if is_cut:
            cuts.append(t)
            if last_sampled < t - 1 and prev_frame is not None:  # the last frame of the ending shot
                sample(t - 1, prev_frame)
        if is_cut or t - last_sampled >= k:
            sample(t, frame)
        prev_hist, prev_frame = hist, frame
    num_frames = t + 1
    if prev_frame is not None and last_sampled < t:
        sample(t, prev_frame)
    del prev_frame

    height, width = info.height, info.width
    analysis = VideoAnalysis(info=info, num_frames=num_frames, cuts=cuts, detected_frames=len(sample_frames))
    analysis.face_frames = sum(1 for d in sample_dets if d)
    if analysis.face_frames == 0:
        return analysis

    index_of = {f: s for s, f in enumerate(sample_frames)}
    cut_samples = [index_of[c] for c in cuts]
    gap = options.max_gap // k  # missed detections allowed, in detection intervals
    tubes = link_tubes(
        sample_dets, iou_threshold=options.link_iou, max_gap=gap, min_length=1, cuts=cut_samples
    )
    kept: list[Segment] = []
    for tube in tubes:
        real = Tube([sample_frames[s] for s in tube.frames], list(tube.boxes), list(tube.scores))
        dense = real.dense_boxes()  # one box per frame of [real.start, real.stop)
        end = _end_cause(tube.frames[-1], cut_samples, len(sample_frames), gap)
        pieces = split_by_initial_iou(dense, options.min_iou)
        for i, (a, b) in enumerate(pieces):
            boxes = dense[a:b]
            seg = Segment(
                start=real.start + a,
                stop=real.start + b,
                crop=segment_crop(boxes, (height, width), options.box_scale, options.increase),
                face_size=median_face_side(boxes),
                ended_by=end if i == len(pieces) - 1 else "low IoU",
            )
            if len(seg) < options.min_frames:
                analysis.dropped.append(_with_reason(seg, "too short"))
            elif seg.face_size < options.min_face:
                analysis.dropped.append(_with_reason(seg, "too small"))
            else:
                kept.append(seg)
    analysis.segments = sorted(kept, key=lambda s: (s.start, s.crop[0], s.crop[1]))
    return analysis


def _with_reason(seg: Segment, reason: str) -> Segment:
    return Segment(seg.start, seg.stop, seg.crop, seg.face_size, seg.ended_by, reason)


# --------------------------------------------------------------------------- pass 2: writing


ClipWriter = VideoWriter | FrameFolderWriter


def clip_path(folder: Path, name: str, fmt: str) -> Path:
    """Where a clip called ``name`` is written: ``folder/name.mp4`` or the frame folder ``folder/name``."""
    if fmt not in FORMATS:
        raise DaganError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return folder / f"{name}.mp4" if fmt == "mp4" else folder / name


def open_clip_writer(path: Path, fmt: str, fps: Fraction | float, crf: int = 18) -> ClipWriter:
    """A streaming writer for one clip (temporary name, renamed on close)."""
    if fmt == "mp4":
        return VideoWriter(path, fps, crf=crf)
    return FrameFolderWriter(path, replace=True)


@dataclass(frozen=True)
class CropJob:
    """Write frames ``[start, stop)`` of the source, cropped to ``box`` (x0, y0, x1, y1) and resized to
    ``size`` (int: square; or (height, width)), to ``path``."""

    start: int
    stop: int
    box: tuple[float, float, float, float]
    path: Path


def write_crops(
    source: str | os.PathLike[str],
    jobs: Sequence[CropJob],
    size: int,
    fmt: str,
    fps: Fraction | float,
    pad: str = "zeros",
    crf: int = 18,
) -> dict[Path, int]:
    """Pass 2: decode ``source`` once and write every job's clip (jobs may overlap in time, e.g. two faces).

    Decoding stops after the last job's last frame. Returns the number of frames written per output path;
    a job the video ends inside keeps the frames it got (a job past the end writes nothing and is absent).
    On any error every open writer is aborted (no partial outputs) and the error is raised."""
    todo = sorted((j for j in jobs if j.stop > j.start), key=lambda j: j.start)
    written: dict[Path, int] = {}
    if not todo:
        return written
    active: list[tuple[CropJob, ClipWriter]] = []
    nxt = 0
    try:
        for t, frame in enumerate(iter_frames(source)):
            while nxt < len(todo) and todo[nxt].start <= t:
                active.append((todo[nxt], open_clip_writer(todo[nxt].path, fmt, fps, crf)))
                nxt += 1
            still: list[tuple[CropJob, ClipWriter]] = []
            for job, writer in active:
                writer.write(crop_and_resize(frame, job.box, size, pad=pad))
                if t + 1 >= job.stop:
                    writer.close()
                    written[job.path] = writer.frames_written
                else:
                    still.append((job, writer))
            active = still
            if nxt == len(todo) and not active:
                break
        for job, writer in active:  # the video ended inside these clips: keep what they got
            writer.close()
            written[job.path] = writer.frames_written
        active = []
    finally:
        for _, writer in active:
            with contextlib.suppress(Exception):
                writer.abort()
    return written


def write_segments(
    source: str | os.PathLike[str],
    segments: Sequence[tuple[Segment, Path]],
    size: int,
    fmt: str,
    fps: Fraction | float,
    pad: str = "zeros",
    crf: int = 18,
) -> dict[Path, int]:
    """Pass 2 of the tube pipeline: write each (segment, output path) with :func:`write_crops`. Raises
    InputError when the video turns out shorter than in pass 1 (a clip would be incomplete)."""
    jobs = [CropJob(seg.start, seg.stop, seg.crop, out) for seg, out in segments]
    written = write_crops(source, jobs, size, fmt, fps, pad=pad, crf=crf)
    for job in jobs:
        if written.get(job.path, 0) != job.stop - job.start:
            with contextlib.suppress(OSError):
                if job.path.is_dir():
                    shutil.rmtree(job.path)
                elif job.path.exists():
                    job.path.unlink()
            raise InputError(
                f"video '{source}' ended early on the second pass: clip '{job.path.name}' got "
                f"{written.get(job.path, 0)} of {job.stop - job.start} frames"
            )
    return written
