"""What an evaluation runs over: its units, and how they are chosen.

A unit is one resumable piece of work (:mod:`dagan.eval.parts`): a whole video, the frame pairs of one video
listed in a CSV, or a source → driving pair of videos of two identities (listed in a CSV, or drawn).
"""

from __future__ import annotations

import csv
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagan.data.datasets import VideoEntry
from dagan.errors import InputError

__all__ = ["DEFAULT_CROSS_ID_PAIRS", "Unit", "cross_id_units", "pair_units", "video_units"]

#: Cross-identity pairs drawn when no CSV is given (``--max-pairs``; 0 = all pairs).
DEFAULT_CROSS_ID_PAIRS = 100


@dataclass(frozen=True)
class Unit:
    """One resumable piece of work: a video (``video``, ``pairs``) or a source → driving pair
    (``cross-id``).

    ``key`` names it in ``per_video`` of the results; ``frame_pairs`` are the (source, driving) frame indices
    of the ``pairs`` protocol."""

    key: str
    video: VideoEntry
    source: VideoEntry | None = None
    frame_pairs: tuple[tuple[int, int], ...] = ()


def video_units(entries: Sequence[VideoEntry]) -> list[Unit]:
    """One unit per video (``video`` protocol)."""
    return [Unit(e.name, e) for e in entries]


def _lookup(entries: Sequence[VideoEntry]) -> dict[str, VideoEntry]:
    """Videos by name, by file name (with extension) and by the name without a ``.mp4``-like suffix (FOMM's
    VoxCeleb folders are called ``<name>.mp4``)."""
    table: dict[str, VideoEntry] = {}
    for e in entries:
        for key in (e.path.name, Path(e.name).stem, e.name):
            table.setdefault(key, e)
    return table


_PAIR_COLUMNS = {
    "video": ("video", "video_name", "name"),
    "source": ("source_frame", "source", "src", "source_index"),
    "driving": ("driving_frame", "driving", "drv", "driving_index"),
}


def _column(header: Sequence[str], kind: str, csv_path: Path, want: str) -> str:
    for name in _PAIR_COLUMNS[kind]:
        if name in header:
            return name
    raise InputError(
        f"pairs CSV {csv_path} has no {want} column (expected one of {', '.join(_PAIR_COLUMNS[kind])}; "
        f"found {', '.join(header) or 'none'})"
    )


def _read_csv(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not csv_path.is_file():
        raise InputError(f"pairs CSV not found: '{csv_path}'")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read pairs CSV '{csv_path}': {exc}") from None
    if not rows:
        raise InputError(f"pairs CSV '{csv_path}' has no rows")
    return header, rows


def pair_units(csv_path: Path, entries: Sequence[VideoEntry], max_pairs: int | None = None) -> list[Unit]:
    """Units of the ``pairs`` protocol from a CSV with columns ``video,source_frame,driving_frame`` (also
    accepted: ``video,source,driving``; 0-based frame indices; other columns are ignored), grouped by video
    in order of first appearance. ``max_pairs`` keeps the first N rows."""
    header, rows = _read_csv(csv_path)
    vcol = _column(header, "video", csv_path, "video")
    scol = _column(header, "source", csv_path, "source frame")
    dcol = _column(header, "driving", csv_path, "driving frame")
    videos = _lookup(entries)
    grouped: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
    chosen: dict[str, VideoEntry] = {}
    for line, row in enumerate(rows[: max_pairs or None], start=2):
        name = row.get(vcol, "")
        entry = videos.get(name)
        if entry is None:
            raise InputError(f"pairs CSV {csv_path} line {line}: video '{name}' is not in the split")
        try:
            pair = (int(row[scol]), int(row[dcol]))
        except (KeyError, ValueError):
            raise InputError(
                f"pairs CSV {csv_path} line {line}: frame indices must be integers, got "
                f"'{row.get(scol)}' and '{row.get(dcol)}'"
            ) from None
        if min(pair) < 0:
            raise InputError(f"pairs CSV {csv_path} line {line}: negative frame index")
        grouped.setdefault(entry.name, []).append(pair)
        chosen[entry.name] = entry
    return [Unit(name, chosen[name], frame_pairs=tuple(pairs)) for name, pairs in grouped.items()]


def cross_id_units(
    entries: Sequence[VideoEntry],
    csv_path: Path | None = None,
    max_pairs: int | None = DEFAULT_CROSS_ID_PAIRS,
    seed: int = 0,
) -> list[Unit]:
    """Units of the ``cross-id`` protocol: the rows ``source,driving`` (video names; FOMM's animation-pairs
    layout, other columns ignored) of ``csv_path``, or else every ordered pair of videos of different
    identities — ``max_pairs`` of them drawn with ``seed`` when there are more (0 or None: all)."""
    videos = _lookup(entries)
    pairs: list[tuple[VideoEntry, VideoEntry]] = []
    if csv_path is not None:
        header, rows = _read_csv(csv_path)
        for col in ("source", "driving"):
            if col not in header:
                raise InputError(
                    f"cross-id pairs CSV {csv_path} needs columns source,driving (found {', '.join(header)})"
                )
        for line, row in enumerate(rows, start=2):
            found = [videos.get(row[col]) for col in ("source", "driving")]
            for col, entry in zip(("source", "driving"), found):
                if entry is None:
                    raise InputError(
                        f"pairs CSV {csv_path} line {line}: {col} video '{row[col]}' is not in the split"
                    )
            pairs.append((found[0], found[1]))  # type: ignore[arg-type]
        if max_pairs:
            pairs = pairs[:max_pairs]
    else:
        pairs = [(s, d) for s in entries for d in entries if s.identity != d.identity]
        if not pairs:
            raise InputError(
                "the cross-id protocol needs videos of at least two identities (the identity is the part of "
                "a video name before the first '#'); give pairs with --pairs"
            )
        if max_pairs and len(pairs) > max_pairs:
            keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
            pairs = [pairs[int(i)] for i in keep]
    units: OrderedDict[str, Unit] = OrderedDict()
    for source, driving in pairs:
        key = f"{source.name}__{driving.name}"
        units.setdefault(key, Unit(key, driving, source=source))
    return list(units.values())
