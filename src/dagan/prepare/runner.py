"""Batch driver of ``dagan prepare-data``: plan the jobs, run them in parallel, resume, summarise.

* **Jobs.** Tube mode: one :class:`VideoJob` per input video (identity and split decided up front, see
  :func:`plan_video_jobs`). Metadata mode: one :class:`MetadataJob` per downloaded YouTube video with its
  metadata rows (:mod:`dagan.prepare.metadata`).
* **Parallel.** With ``workers`` > 1 the jobs run in a :class:`concurrent.futures.ProcessPoolExecutor`
  (``spawn`` start method: the face detectors' thread pools do not survive a fork); each worker process
  creates its own detector once. One worker runs everything in this process.
* **Resumable.** Every clip is written under a temporary name and renamed when complete, and a finished video
  leaves a marker ``ROOT/.dagan-prepare/<key>.json`` holding its result and a fingerprint of everything that
  determines its outputs (the source file's size and mtime, the options, identity and split). A rerun skips
  a video whose marker fingerprint matches and whose clips all exist; when the fingerprint differs the old
  clips listed in the marker are deleted and the video is redone. Clips that already exist (from an
  interrupted run) are not rewritten unless ``force``.
* **Never aborts the batch.** A video that cannot be read (or fails in any other way, or crashes its worker
  process) is recorded with its reason and skipped; the summary lists it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dagan.atomic_files import make_public
from dagan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, natural_key, probe_video
from dagan.errors import DaganError, InputError, MissingExtraError
from dagan.prepare.metadata import MetadataRow, frame_range, group_by_video, read_metadata, scaled_box
from dagan.prepare.tubes import (
    FORMATS,
    CropJob,
    TubeOptions,
    analyse_video,
    clip_path,
    write_crops,
    write_segments,
)

MARKER_DIR = ".dagan-prepare"
SPLITS = ("train", "test")
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


@dataclass(frozen=True)
class VideoJob:
    """Tube mode: find the faces of ``path`` and write ``ROOT/<split>/<person>#<name>#<tube>``."""

    path: Path
    name: str
    person: str
    split: str

    @property
    def key(self) -> str:
        return f"video-{self.name}"


@dataclass(frozen=True)
class MetadataJob:
    """Metadata mode: write the clips ``rows`` of the downloaded video ``path``."""

    path: Path
    video_id: str
    rows: tuple[MetadataRow, ...]

    @property
    def key(self) -> str:
        return f"vox-{sanitize_name(self.video_id)}"

    @property
    def name(self) -> str:
        return self.video_id


Job = VideoJob | MetadataJob


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
        ends = Counter()
        dropped = Counter()
        dropped_after = Counter()
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


# --------------------------------------------------------------------------- planning


def sanitize_name(text: str) -> str:
    """A name usable in the ``<person>#<video>#<tube>`` layout: characters other than letters, digits, ``.``,
    ``_`` and ``-`` (``#`` and path separators included) become ``_``; no leading dot (hidden files are
    ignored by the datasets)."""
    name = re.sub(r"[^\w.\-]", "_", text.strip()).lstrip(".")
    return name or "video"


def _walk(folder: Path) -> list[Path]:
    """Videos under ``folder``: a folder holding images is one frame-folder video; otherwise its video files
    and, recursively, its sub-folders. Hidden entries are skipped."""
    entries = sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name)
    )
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in entries):
        return [folder]
    found: list[Path] = []
    for p in entries:
        if p.is_dir():
            found.extend(_walk(p))
        elif p.suffix.lower() in VIDEO_EXTENSIONS:
            found.append(p)
    return found


def collect_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """Input videos and a unique name for each, in input order.

    An input is a video file, a frame folder (a folder with images), or a folder searched recursively for
    both. The name is the file stem (a frame folder's name); names that collide are replaced by the path
    relative to the input folder with ``_`` between the parts, and numbered if they still collide. Names are
    passed through :func:`sanitize_name`. Raises InputError for a missing input or one holding no video."""
    items: list[tuple[Path, str]] = []  # (path, long name)
    seen: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"input not found: '{p}'")
        if p.is_dir():
            videos = _walk(p)
            if not videos:
                raise InputError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) or frames found in folder '{p}'")
            for v in videos:
                rel = v.relative_to(p).with_suffix("") if v != p else Path(p.name)
                items.append((v, "_".join(rel.parts)))
        else:
            items.append((p, f"{p.parent.name}_{p.stem}" if p.parent.name else p.stem))
    unique: list[tuple[Path, str]] = []
    for path, long in items:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        unique.append((path, long))
    stems = Counter(sanitize_name(path.stem if path.is_file() else path.name) for path, _ in unique)
    names: list[str] = []
    used: Counter[str] = Counter()
    for path, long in unique:
        short = sanitize_name(path.stem if path.is_file() else path.name)
        name = short if stems[short] == 1 else sanitize_name(long)
        used[name] += 1
        names.append(name if used[name] == 1 else f"{name}_{used[name]}")
    return [(path, name) for (path, _), name in zip(unique, names)]


def read_video_table(path: str | os.PathLike[str], columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """A CSV with a ``video`` column and the given optional ``columns`` (at least one present), as
    {video: {column: value}}. Raises InputError for a missing file, column or duplicate video."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CSV file not found: '{path}'")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in (reader.fieldnames or [])]
        present = [c for c in columns if c in header]
        if "video" not in header or not present:
            raise InputError(
                f"CSV '{path}' needs a header with a 'video' column and "
                f"{' or '.join(repr(c) for c in columns)}, got {','.join(header) or 'none'}"
            )
        table: dict[str, dict[str, str]] = {}
        for record in reader:
            record = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            video = record.get("video", "")
            if not video:
                continue
            if video in table:
                raise InputError(f"{path}:{reader.line_num}: video {video!r} is listed twice")
            table[video] = {c: record[c] for c in present if record.get(c)}
    return table


def _lookup(table: dict[str, dict[str, str]], path: Path, name: str) -> dict[str, str] | None:
    """A video's row: keyed by its output name, file name, stem, path as given, or absolute path."""
    for key in (name, path.name, path.stem, str(path), str(path.resolve())):
        if key in table:
            return table[key]
    return None


def held_out_identities(persons: Sequence[str], fraction: float) -> set[str]:
    """Identities held out for ``test``: the first round(fraction·n) in the order of their SHA-1 hash
    (deterministic, independent of input order), at least 1 and at most n − 1 when fraction > 0 and n ≥ 2.
    Whole identities go to one split, so test faces are unseen in training (as in VoxCeleb)."""
    unique = sorted(set(persons))
    if fraction <= 0 or len(unique) < 2:
        return set()
    n_test = min(max(round(fraction * len(unique)), 1), len(unique) - 1)
    ranked = sorted(unique, key=lambda p: hashlib.sha1(p.encode("utf-8")).hexdigest())
    return set(ranked[:n_test])


def plan_video_jobs(
    inputs: Sequence[str | os.PathLike[str]],
    test_fraction: float = 0.0,
    split_csv: str | os.PathLike[str] | None = None,
    identities_csv: str | os.PathLike[str] | None = None,
    notes: list[str] | None = None,
) -> list[VideoJob]:
    """One job per input video. Identity: the ``person`` column of ``identities_csv`` or ``split_csv`` (CSV
    columns ``video,person`` / ``video,split[,person]``), else the video's own name. Split: from
    ``split_csv`` (every video must be listed), else :func:`held_out_identities` with ``test_fraction``."""
    if not 0 <= test_fraction < 1:
        raise DaganError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    videos = collect_videos(inputs)
    persons_table = read_video_table(identities_csv, ["person"]) if identities_csv else {}
    split_table = read_video_table(split_csv, ["split", "person"]) if split_csv else None
    planned: list[tuple[Path, str, str, str | None]] = []
    for path, name in videos:
        person = name
        row = _lookup(persons_table, path, name)
        if row and row.get("person"):
            person = row["person"]
        split: str | None = None
        if split_table is not None:
            srow = _lookup(split_table, path, name)
            if srow is None or "split" not in srow:
                raise InputError(
                    f"video '{path}' has no split in '{split_csv}' (columns video,split[,person])"
                )
            split = srow["split"]
            if split not in SPLITS:
                raise InputError(
                    f"'{split_csv}': split of {path.name!r} must be train or test, got {split!r}"
                )
            if srow.get("person") and not (row and row.get("person")):
                person = srow["person"]
        planned.append((path, name, sanitize_name(person), split))
    held_out = (
        held_out_identities([p for _, _, p, _ in planned], test_fraction) if split_table is None else set()
    )
    if test_fraction > 0 and split_table is None and not held_out and notes is not None:
        notes.append("only one identity: every clip goes to train (use --split-csv to choose)")
    return [
        VideoJob(path, name, person, split or ("test" if person in held_out else "train"))
        for path, name, person, split in planned
    ]


def plan_metadata_jobs(
    inputs: Sequence[str | os.PathLike[str]], metadata: str | os.PathLike[str], notes: list[str] | None = None
) -> list[MetadataJob]:
    """One job per metadata video id whose video is among the inputs (file stem = video id). Ids without a
    video and videos without rows are counted in ``notes``."""
    groups = group_by_video(read_metadata(metadata))
    by_stem: dict[str, Path] = {}
    for path, _ in collect_videos(inputs):
        by_stem.setdefault(path.stem if path.is_file() else path.name, path)
    jobs = []
    for video_id, rows in groups.items():
        if video_id in by_stem:
            unique = {r.clip_name: r for r in reversed(rows)}  # duplicate rows: keep the first
            ordered = tuple(r for r in rows if unique.get(r.clip_name) is r)
            jobs.append(MetadataJob(by_stem[video_id], video_id, ordered))
    missing = [v for v in groups if v not in by_stem]
    unused = [s for s in by_stem if s not in groups]
    if notes is not None:
        if missing:
            notes.append(
                f"{len(missing)} metadata video(s) not among the inputs (e.g. {', '.join(missing[:3])})"
            )
        if unused:
            notes.append(f"{len(unused)} input video(s) have no metadata rows (e.g. {', '.join(unused[:3])})")
    if not jobs:
        raise InputError(
            f"none of the input videos is named after a video_id of '{metadata}' (<video_id>.mp4)"
        )
    return jobs


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


def marker_path(root: Path, job: Job) -> Path:
    return root / MARKER_DIR / f"{job.key}.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    make_public(fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_output(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def check_marker(job: Job, options: PrepareOptions) -> VideoResult | None:
    """The recorded result when the job is already done with the same fingerprint and all its clips exist
    (status ``skipped``); otherwise None. A marker with a different fingerprint is stale: its clips are
    deleted (they were made from other settings or another version of the video) and it is removed."""
    path = marker_path(options.root, job)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recorded = VideoResult.from_dict(data["result"])
        same = data.get("fingerprint") == fingerprint(job, options)
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if same and not options.force:
        if all((options.root / c.path).exists() for c in recorded.clips):
            recorded.status = "skipped"
            return recorded
        return None
    for clip in recorded.clips:
        _remove_output(options.root / clip.path)
    path.unlink(missing_ok=True)
    return None


def write_marker(job: Job, options: PrepareOptions, result: VideoResult) -> None:
    _write_json_atomic(
        marker_path(options.root, job), {"fingerprint": fingerprint(job, options), "result": asdict(result)}
    )


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
                if _run_pool([jobs[i]], options, 1, lambda _, r, i=i: on_result(i, r)):
                    on_result(i, _crashed(jobs[i]))
    finally:
        bar.close()
        if detector is not None and hasattr(detector, "close"):
            with contextlib.suppress(Exception):  # closing twice (before the pool) is harmless
                detector.close()
    return PrepareSummary(options.root, [r for r in results if r is not None], list(notes))
