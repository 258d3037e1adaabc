"""Planning ``dagan prepare-data``: the input videos, their names, identities and splits, as jobs.

* Tube mode: one :class:`VideoJob` per input video; its identity and split are decided up front
  (:func:`plan_video_jobs`): from CSV files, or whole identities held out for ``test`` by hash.
* Metadata mode: one :class:`MetadataJob` per downloaded YouTube video with its VoxCeleb metadata rows
  (:func:`plan_metadata_jobs`, :mod:`dagan.prepare.metadata`).

Running the jobs is :mod:`dagan.prepare.runner`'s business.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dagan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, natural_key
from dagan.errors import DaganError, InputError
from dagan.prepare.metadata import MetadataRow, group_by_video, read_metadata

__all__ = [
    "SPLITS",
    "Job",
    "MetadataJob",
    "VideoJob",
    "collect_videos",
    "held_out_identities",
    "plan_metadata_jobs",
    "plan_video_jobs",
    "read_video_table",
    "sanitize_name",
]

SPLITS = ("train", "test")


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
