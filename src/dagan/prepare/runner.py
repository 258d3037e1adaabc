"""Batch driver of ``dagan prepare-data``: run the planned jobs (:mod:`dagan.prepare.planning`) in parallel,
resume, summarise.

* **Parallel.** With ``workers`` > 1 the jobs run in a :class:`concurrent.futures.ProcessPoolExecutor`
  (``spawn`` start method: the face detectors' thread pools do not survive a fork); each worker process
  creates its own detector once. One worker runs everything in this process.
* **Resumable.** Every clip is written under a temporary name and renamed when complete, and a finished video
  leaves a marker ``ROOT/.dagan-prepare/<key>.json`` (a :class:`dagan.resumable.ResumableUnits` record)
  holding its result and, as the signature, a fingerprint of everything that determines its outputs (the
  source file's size and mtime, the options, identity and split). A rerun skips
  a video whose marker fingerprint matches and whose clips all exist; when the fingerprint differs the old
  clips listed in the marker are deleted and the video is redone. Clips that already exist (from an
  interrupted run) are not rewritten unless ``force``.
* **Never aborts the batch.** A video that cannot be read (or fails in any other way, or crashes its worker
  process) is recorded with its reason and skipped; the summary lists it.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dagan.data.video import probe_video
from dagan.errors import DaganError, InputError, MissingExtraError
from dagan.prepare.metadata import MetadataRow, frame_range, scaled_box
from dagan.prepare.planning import SPLITS, Job, MetadataJob, VideoJob, sanitize_name
from dagan.prepare.tubes import (
    FORMATS,
    CropJob,
    TubeOptions,
    analyse_video,
    clip_path,
    write_crops,
    write_segments,
)
from dagan.resumable import ResumableUnits

MARKER_DIR = ".dagan-prepare"
#: Record format of the markers of finished videos (:class:`dagan.resumable.ResumableUnits`).
MARKER_FORMAT = "dagan-prepare-marker"
#: Final states of a video: written now, already done by an earlier run, no face anywhere, or failed.
STATUSES = ("done", "skipped", "no face", "unreadable", "failed", "crashed")
FAILED = ("unreadable", "failed", "crashed")


# --------------------------------------------------------------------------- options, jobs, results


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that decides the outputs besides the job itself."""

    root: Path
    fmt: str = "mp4"
    detector: str = "auto"
    crf: int = 18
    tube: TubeOptions = field(default_factory=TubeOptions)
    force: bool = False

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise DaganError(f"output format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.fmt == "mp4" and self.tube.size % 2:
            raise DaganError(f"MP4 clips need an even crop size (H.264 4:2:0), got {self.tube.size}")
        if not 0 <= self.crf <= 51:
            raise DaganError(f"crf must be in [0, 51], got {self.crf}")

    @property
    def size(self) -> int:
        return self.tube.size


@dataclass
class ClipRecord:
    """A written clip: frames ``[start, stop)`` of the source cropped to ``crop`` (x0, y0, x1, y1)."""

    name: str
    split: str
    path: str  # relative to ROOT, with forward slashes
    start: int
    stop: int
    crop: list[float]
    ended_by: str = ""


@dataclass
class DropRecord:
    """A tube piece (or metadata row) that was not written, and why."""

    start: int
    stop: int
    reason: str
    ended_by: str = ""


@dataclass
class VideoResult:
    """What happened to one input video."""

    source: str
    name: str
    status: str = "done"
    message: str = ""
    person: str = ""
    split: str = ""
    frames: int = 0
    clips: list[ClipRecord] = field(default_factory=list)
    dropped: list[DropRecord] = field(default_factory=list)
    ends: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoResult:
        data = dict(data)
        data["clips"] = [ClipRecord(**c) for c in data.get("clips", [])]
        data["dropped"] = [DropRecord(**d) for d in data.get("dropped", [])]
        return cls(**data)


@dataclass
class PrepareSummary:
    """All results of a run plus planning notes; :meth:`format` is the report printed by the command."""

    root: Path
    results: list[VideoResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clips(self) -> list[ClipRecord]:
        return [c for r in self.results for c in r.clips]

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.results if r.status in FAILED]

    @property
    def ok(self) -> bool:
        """True when no video failed and at least one clip exists."""
        return not self.failed and bool(self.clips)

    def format(self) -> str:
        status = Counter(r.status for r in self.results)
        clips = self.clips
        frames = sum(c.stop - c.start for c in clips)
        per_split = Counter(c.split for c in clips)
        lines = [
            f"prepared {len(self.results)} video(s) into {self.root}: {len(clips)} clip(s), {frames} frames "
            f"({', '.join(f'{s} {per_split[s]}' for s in SPLITS)})",
            "  videos: " + ", ".join(f"{s} {status[s]}" for s in STATUSES if status[s]),
        ]
        ends: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        dropped_after: Counter[str] = Counter()
        for r in self.results:
            ends.update(r.ends)
            for d in r.dropped:
                dropped[d.reason] += 1
                if d.ended_by:
                    dropped_after[d.ended_by] += 1
        if ends:
            lines.append("  tube pieces ended by: " + ", ".join(f"{k} {v}" for k, v in ends.most_common()))
        if dropped:
            text = ", ".join(f"{k} {v}" for k, v in dropped.most_common())
            if dropped_after:
                text += (
                    " (pieces ended by " + ", ".join(f"{k} {v}" for k, v in dropped_after.most_common()) + ")"
                )
            lines.append(f"  dropped: {text}")
        no_face = [r for r in self.results if r.status == "no face"]
        if no_face:
            lines.append(
                "  no face found in: "
                + ", ".join(r.source for r in no_face[:10])
                + (f" and {len(no_face) - 10} more" if len(no_face) > 10 else "")
            )
        for r in self.failed:
            lines.append(f"  {r.status}: {r.source}: {r.message}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- markers (resume)


def _source_stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"source_bytes": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def fingerprint(job: Job, options: PrepareOptions) -> dict[str, Any]:
    """Everything that determines a job's outputs (JSON-compatible)."""
    common = {
        "source": str(job.path.resolve()),
        **_source_stat(job.path),
        "format": options.fmt,
        "size": options.size,
        "crf": options.crf,
    }
    if isinstance(job, VideoJob):
        return {
            "mode": "tubes",
            **common,
            "name": job.name,
            "person": job.person,
            "split": job.split,
            "detector": options.detector,
            "tube": asdict(options.tube),
        }
    rows = [[r.clip_name, r.partition, list(r.bbox), str(r.fps), r.width, r.height] for r in job.rows]
    return {"mode": "metadata", **common, "rows": rows}


def markers(root: Path) -> ResumableUnits:
    """The markers of the videos finished in ``root``: ``root/.dagan-prepare/<job key>.json``."""
    return ResumableUnits(root / MARKER_DIR, MARKER_FORMAT)


def _remove_output(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def check_marker(job: Job, options: PrepareOptions) -> VideoResult | None:
    """The recorded result when the job is already done with the same fingerprint and all its clips exist
    (status ``skipped``); otherwise None. A marker with a different fingerprint is stale: its clips are
    deleted (they were made from other settings or another version of the video) and it is removed."""
    store = markers(options.root)
    marker = store.recorded(job.key)
    if marker is None:
        store.forget(job.key)  # an unreadable file is no marker
        return None
    try:
        recorded = VideoResult.from_dict(marker.payload["result"])
        same = marker.signature == fingerprint(job, options)
    except (OSError, KeyError, TypeError):
        store.forget(job.key)
        return None
    if same and not options.force:
        if all((options.root / c.path).exists() for c in recorded.clips):
            recorded.status = "skipped"
            return recorded
        return None
    for clip in recorded.clips:
        _remove_output(options.root / clip.path)
    store.forget(job.key)
    return None


def write_marker(job: Job, options: PrepareOptions, result: VideoResult) -> None:
    """Record the job as finished, with its result and fingerprint."""
    markers(options.root).record(job.key, fingerprint(job, options), {"result": asdict(result)})


# --------------------------------------------------------------------------- processing one job


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def process_video_job(job: VideoJob, options: PrepareOptions, detector: Any) -> VideoResult:
    """Tube mode for one video (both passes). Raises InputError for an unreadable video."""
    result = VideoResult(source=str(job.path), name=job.name, person=job.person, split=job.split)
    analysis = analyse_video(job.path, detector, options.tube)
    result.frames = analysis.num_frames
    if analysis.face_frames == 0:
        result.status = "no face"
        return result
    folder = options.root / job.split
    todo = []
    for i, seg in enumerate(analysis.segments):
        name = f"{job.person}#{job.name}#{i:03d}"
        out = clip_path(folder, name, options.fmt)
        result.clips.append(
            ClipRecord(
                name,
                job.split,
                _rel(options.root, out),
                seg.start,
                seg.stop,
                [round(v, 3) for v in seg.crop],
                seg.ended_by,
            )
        )
        if options.force or not out.exists():
            todo.append((seg, out))
    write_segments(
        job.path, todo, options.size, options.fmt, analysis.info.rate, pad=options.tube.pad, crf=options.crf
    )
    result.dropped = [DropRecord(s.start, s.stop, s.reason or "", s.ended_by) for s in analysis.dropped]
    result.ends = dict(Counter(s.ended_by for s in [*analysis.segments, *analysis.dropped]))
    return result


def process_metadata_job(job: MetadataJob, options: PrepareOptions) -> VideoResult:
    """Metadata mode for one downloaded video: crop each row's box for its frame range (one decoding pass).
    Rows whose box lies outside the frame or whose span starts after the video's end are dropped."""
    info = probe_video(job.path)
    result = VideoResult(
        source=str(job.path),
        name=job.video_id,
        person=job.rows[0].person_id,
        split=job.rows[0].partition,
        frames=info.num_frames,
    )
    todo: list[CropJob] = []
    planned: list[tuple[MetadataRow, CropJob]] = []
    for row in job.rows:
        first, stop = frame_range(row, info.rate)
        box = scaled_box(row, info.width, info.height)
        if box is None:
            result.dropped.append(DropRecord(first, stop, "box outside the frame"))
            continue
        if first >= info.num_frames:
            result.dropped.append(DropRecord(first, stop, "after the video's end"))
            continue
        out = clip_path(
            options.root / row.partition,
            sanitize_name(row.person_id)
            + "#"
            + sanitize_name(row.video_id)
            + f"#{row.start:06d}#{row.end:06d}",
            options.fmt,
        )
        crop = CropJob(first, stop, tuple(float(v) for v in box), out)  # type: ignore[arg-type]
        planned.append((row, crop))
        if options.force or not out.exists():
            todo.append(crop)
    written = write_crops(job.path, todo, options.size, options.fmt, info.rate, pad="zeros", crf=options.crf)
    fresh = {c.path for c in todo}
    for row, crop in planned:
        n = written.get(crop.path, 0) if crop.path in fresh else crop.stop - crop.start
        if n == 0:
            result.dropped.append(DropRecord(crop.start, crop.stop, "after the video's end"))
            continue
        result.clips.append(
            ClipRecord(
                crop.path.name if options.fmt == "png" else crop.path.stem,
                row.partition,
                _rel(options.root, crop.path),
                crop.start,
                crop.start + n,
                list(crop.box),
            )
        )
    return result


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_job(job: Job, options: PrepareOptions, detector: Any = None) -> VideoResult:
    """Run one job to a result, never raising for a bad video: a resumed job returns its recorded result
    (``skipped``); an unreadable one ``unreadable``; any other exception ``failed`` with its message. A
    finished job (``done``/``no face``) leaves its marker. ``detector`` is created on first need when None."""
    try:
        previous = check_marker(job, options)
        if previous is not None:
            return previous
        if isinstance(job, VideoJob):
            result = process_video_job(
                job, options, detector if detector is not None else _worker_detector(options)
            )
        else:
            result = process_metadata_job(job, options)
        write_marker(job, options, result)
        return result
    except MissingExtraError:
        raise
    except InputError as exc:
        return VideoResult(source=str(job.path), name=job.name, status="unreadable", message=_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - one bad video must not stop the batch
        return VideoResult(
            source=str(job.path),
            name=job.name,
            status="failed",
            message=f"{type(exc).__name__}: {_one_line(exc)}",
        )


# --------------------------------------------------------------------------- running many jobs

_DETECTORS: dict[str, Any] = {}  # per worker process


def _worker_detector(options: PrepareOptions) -> Any:
    from dagan.faces import create_detector

    if options.detector not in _DETECTORS:
        _DETECTORS[options.detector] = create_detector(options.detector)
    return _DETECTORS[options.detector]


def _crashed(job: Job) -> VideoResult:
    return VideoResult(
        source=str(job.path),
        name=job.name,
        status="crashed",
        message="the worker process died while processing it (out of memory, or a crash in a "
        "decoder or detector)",
    )


def _run_pool(
    jobs: Sequence[Job], options: PrepareOptions, workers: int, on_result: Callable[[int, VideoResult], None]
) -> list[int]:
    """Run ``jobs`` in a spawn process pool; returns the indices of jobs lost to a dead worker process."""
    lost: list[int] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future[VideoResult], int] = {
            pool.submit(run_job, job, options): i for i, job in enumerate(jobs)
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = futures[fut]
                try:
                    on_result(i, fut.result())
                except BrokenProcessPool:
                    lost.append(i)
    return lost


def _as_job(on_result: Callable[[int, VideoResult], None], i: int, _: int, result: VideoResult) -> None:
    """Report a one-job pool's result (its index 0) as that of job ``i``."""
    on_result(i, result)


def prepare(
    jobs: Sequence[Job],
    options: PrepareOptions,
    workers: int = 1,
    progress: bool = False,
    notes: Sequence[str] = (),
) -> PrepareSummary:
    """Run all jobs (in parallel when ``workers`` > 1) and return the summary (results in job order).

    The face detector is created here first, so a missing detector package is reported once (as
    MissingExtraError) before any work starts; worker processes then create the same backend."""
    if workers < 1:
        raise DaganError(f"--workers must be ≥ 1, got {workers}")
    options.root.mkdir(parents=True, exist_ok=True)
    detector = None
    if any(isinstance(j, VideoJob) for j in jobs):
        from dagan.faces import create_detector

        detector = create_detector(options.detector)
        options = replace(options, detector=detector.name)  # workers use the backend "auto" chose here
    results: list[VideoResult | None] = [None] * len(jobs)
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="prepare-data", unit="video", disable=not progress, file=sys.stderr)
    clips = 0

    def on_result(i: int, result: VideoResult) -> None:
        nonlocal clips
        results[i] = result
        clips += len(result.clips)
        bar.set_postfix(clips=clips, failed=sum(1 for r in results if r is not None and r.status in FAILED))
        bar.update(1)

    try:
        if workers == 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                on_result(i, run_job(job, options, detector))
        else:
            lost = _run_pool(jobs, options, min(workers, len(jobs)), on_result)
            # a dead worker takes the pool's other pending jobs with it: retry those one pool per job, so
            # only the video that kills its process is lost
            for i in lost:
                if _run_pool([jobs[i]], options, 1, functools.partial(_as_job, on_result, i)):
                    on_result(i, _crashed(jobs[i]))
    finally:
        bar.close()
        if detector is not None and hasattr(detector, "close"):
            with contextlib.suppress(Exception):  # closing twice (before the pool) is harmless
                detector.close()
    return PrepareSummary(options.root, [r for r in results if r is not None], list(notes))
