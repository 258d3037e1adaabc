"""One web animation job, without any Gradio: checks on what the browser uploaded, the server's limits, a
per-job folder that is always removed, progress reporting and cancellation.

The animation itself is a :class:`dagan.infer.video_job.VideoJob` — what ``dagan animate`` runs — with one
more output sink, the page's side-by-side video (source | driving | result | source depth); then the source's
depth map and its 3-D point cloud are written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dagan.errors import DaganError, InputError

if TYPE_CHECKING:
    from dagan.infer.animator import Animator
    from dagan.infer.options import AnimateOptions

__all__ = [
    "JobCancelled",
    "JobOutputs",
    "Limits",
    "ProgressMeter",
    "check_upload",
    "describe_error",
    "job_folder",
    "run_job",
]

#: ``report(fraction, text)``: where a job's progress goes (the page's progress bar).
Report = Callable[[float, str], None]
#: Grid size of the 3-D view of the source (the disparity is up-sampled to it; the model's own
#: resolution can be as small as 64).
POINT_GRID = 128


class JobCancelled(Exception):  # noqa: N818 — a signal, not an error
    """Raised inside a job (from its progress callback) when the user pressed Cancel."""


@dataclass(frozen=True)
class Limits:
    """What one job may ask of the server (set by ``dagan webui`` options)."""

    max_upload_mb: float = 200.0  # any uploaded file (enforced by the web server on upload)
    max_video_seconds: float = 120.0  # the part of the driving video to animate
    max_image_megapixels: float = 50.0  # the source picture, checked from its header before decoding


@dataclass
class JobOutputs:
    """Files a job produced (all inside its job folder) and a one-line summary."""

    result: Path
    side_by_side: Path
    depth_png: Path | None
    points_ply: Path | None
    points_glb: Path | None
    summary: str
    num_frames: int = 0
    downloads: list[Path] = field(default_factory=list)


def check_upload(path: str | os.PathLike[str] | None, allowed_root: Path, what: str) -> Path | None:
    """The real path of an uploaded file, refusing anything outside ``allowed_root`` (the web server's
    upload folder): a browser can only name files it uploaded, never other files of the server."""
    if path is None or str(path) == "":
        return None
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(allowed_root))
    if not real.is_relative_to(root):
        raise InputError(f"{what}: only files uploaded through this page can be used")
    return real


def _check_image_size(path: Path, limits: Limits) -> None:
    """Refuse an over-large source picture from its header, before it is decoded (which would take the
    memory); anything that is not an image is left to the normal reader and its message."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception:  # not an image (a video, or a corrupt file): the reader says what is wrong
        return
    megapixels = width * height / 1e6
    if megapixels > limits.max_image_megapixels:
        raise InputError(
            f"source image is {width}×{height} ({megapixels:.0f} megapixels); this server accepts at most "
            f"{limits.max_image_megapixels:g} megapixels"
        )


@contextmanager
def job_folder(root: Path) -> Iterator[Path]:
    """A fresh folder under ``root`` for one job's files, removed when the job is over (also on errors
    and cancellation)."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="job-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class ProgressMeter:
    """Turns the animator's ``(stage, done, total)`` callbacks into ``report(fraction, text)`` calls with
    frames done, frames per second and the time left, and stops the job once ``cancel`` is set."""

    STAGES = {"faces": "finding faces", "animate": "animating"}

    def __init__(self, report: Report | None = None, cancel: threading.Event | None = None) -> None:
        self.report = report
        self.cancel = cancel if cancel is not None else threading.Event()
        self._stage = ""
        # a stage's clock starts when the previous stage reported last (or at creation): its first report
        # comes only after a first batch is done
        self._start = self._last = time.perf_counter()

    def check(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled("cancelled")

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.check()
        now = time.perf_counter()
        if stage != self._stage:
            self._stage, self._start = stage, self._last
        self._last = now
        if self.report is None:
            return
        elapsed = now - self._start
        text = f"{self.STAGES.get(stage, stage)}: {done}/{total} frames"
        if done > 0 and elapsed > 0:
            fps = done / elapsed
            text += f", {fps:.1f} fps, ETA {max(total - done, 0) / fps:.0f} s"
        self.report(done / total if total else 0.0, text)


def run_job(
    animator: Animator,
    source: Path,
    driving: Path,
    options: AnimateOptions,
    folder: Path,
    limits: Limits = Limits(),  # noqa: B008 — frozen, never mutated
    meter: ProgressMeter | None = None,
) -> JobOutputs:
    """Animate ``source`` with ``driving`` into ``folder``: ``result.mp4`` (the video job of ``dagan
    animate``), ``side_by_side.mp4`` (source | driving | result | source depth, with the driving audio),
    ``source_depth.png``, ``source_points.ply`` and ``source_points.glb`` (the last three only for
    depth-aware models). User mistakes raise :class:`dagan.errors.DaganError` with the CLI's one-line
    messages; Cancel raises :class:`JobCancelled`."""
    import torch.nn.functional as F

    from dagan.data.video import probe_video, resize_rgb
    from dagan.infer.sinks import PANEL_HEIGHT, SideBySideSink, VideoFileSink, depth_preview

    meter = meter if meter is not None else ProgressMeter()
    result = folder / "result.mp4"
    options.check()
    _check_image_size(source, limits)
    info = probe_video(driving)
    frames = info.num_frames if options.max_frames is None else min(info.num_frames, options.max_frames)
    seconds = frames / info.fps
    if seconds > limits.max_video_seconds:
        raise InputError(
            f"driving video: {frames} frames at {info.fps:g} fps is {seconds:.1f} s; this server animates "
            f"at most {limits.max_video_seconds:g} s (set 'max frames' to animate the beginning)"
        )

    start = time.perf_counter()
    job = animator.video_job(source, driving, result, options)
    state = job.state
    # the source's depth: what makes DaGAN++ depth-aware
    depth = depth_preview(state.disparity, PANEL_HEIGHT) if state.disparity is not None else None
    side = folder / "side_by_side.mp4"
    audio = driving if options.audio and info.has_audio else None
    side_by_side = SideBySideSink(
        [VideoFileSink(side, info.rate, audio_from=audio)],
        job.source_panel,
        whole_driving=True,
        extra=[depth] if depth is not None else [],
    )
    animated = job.run([side_by_side], progress=False, on_progress=meter)
    meter.check()

    depth_png = ply = glb = None
    if depth is not None:
        assert state.disparity is not None
        from dagan.infer.depth_export import write_ply, write_png
        from dagan.web.pointcloud import grid_triangles, source_geometry, write_glb

        depth_png = write_png(folder / "source_depth.png", depth)
        disp = F.interpolate(state.disparity.float(), size=(POINT_GRID, POINT_GRID), mode="bilinear",
                             align_corners=False)[0, 0].cpu().numpy()
        colours = np.asarray(resize_rgb(state.crop, POINT_GRID))
        dp = animator.config.model_params.depth_params
        points, cols = source_geometry(disp, colours, dp.min_depth, dp.max_depth)
        ply = write_ply(folder / "source_points.ply", points, cols)
        glb = write_glb(folder / "source_points.glb", points, cols, grid_triangles(POINT_GRID, POINT_GRID))

    took = time.perf_counter() - start
    summary = (
        f"{animated.num_frames} frames, {animated.width}×{animated.height}, {animated.fps:g} fps"
        f"{' with audio' if animated.has_audio else ''}"
        f"{'' if animated.anchor_index is None else f', anchor frame {animated.anchor_index}'}"
        f" in {took:.1f} s ({animated.num_frames / took:.1f} frames/s)"
    )
    downloads = [p for p in (result, side, depth_png, ply, glb) if p is not None]
    return JobOutputs(result, side, depth_png, ply, glb, summary, animated.num_frames, downloads)


#: how the page names what an error message calls by its command-line option
PAGE_CONTROLS = {
    "use --no-crop": "untick 'crop the faces'",
    "--find-best-frame": "the anchor 'best-matching frame (landmarks)'",
    "--best-frame": "the 'chosen anchor frame'",
}


def describe_error(exc: BaseException) -> str:
    """The one line ``dagan <command>`` prints for a user mistake (without the ``dagan: error:`` prefix)."""
    from dagan.cli import describe_os_error

    if isinstance(exc, DaganError):
        message = str(exc)
        for option, control in PAGE_CONTROLS.items():
            message = message.replace(option, control)
        return message
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"expected a text file, found binary data ({exc.reason} at byte {exc.start})"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error ({type(exc).__name__}{': ' + first if first else ''}); see the server's log"
