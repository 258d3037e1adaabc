"""The published VoxCeleb crop metadata (``vox-metadata.csv``): reproduce the standard crops from downloaded
YouTube videos (``dagan prepare-data --metadata``).

Format — a CSV with the header ``video_id,start,end,bbox,fps,width,height,partition,person_id``, one row per
clip (the format of the ``vox-metadata.csv`` that accompanies the First Order Motion Model's VoxCeleb
preprocessing):

* ``video_id`` — the YouTube id; the downloaded video is the input file named ``<video_id>.<ext>``.
* ``start``, ``end`` — the clip's first frame and the frame after its last, as frame indices at the rate
  ``fps`` of the video the metadata was made from. Frame ``i`` of the downloaded video (rate r, frames
  counted from 0 in display order) belongs to the clip iff start/fps ≤ i/r < end/fps, i.e.
  ⌈start·r/fps⌉ ≤ i < ⌈end·r/fps⌉ (exact rational arithmetic). When r = fps this is start ≤ i < end.
* ``bbox`` — ``left-top-right-bottom`` in integer pixels of that original video of size ``width``×``height``.
  For a downloaded video of size W×H it becomes (⌊left·W/width⌋, ⌊top·H/height⌋, ⌊right·W/width⌋,
  ⌊bottom·H/height⌋), clipped to the frame. The published boxes are close to square but are clipped at the
  frame border, so some are not; the crop is resized to ``size``×``size`` regardless (as the standard
  crops are), i.e. a clipped box is slightly squashed. No padding is added.
* ``partition`` — ``train`` or ``test``: the output split.
* ``person_id`` — the VoxCeleb identity (e.g. ``id10001``); optional (the video id is used without it).

The clip is written to ``ROOT/<partition>/<person_id>#<video_id>#<start:06d>#<end:06d>.mp4`` (or a PNG frame
folder), the standard names, whose part before the first ``#`` is the identity the datasets group by.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from dagan.errors import InputError

METADATA_COLUMNS = ("video_id", "start", "end", "bbox", "fps", "width", "height", "partition", "person_id")
REQUIRED_COLUMNS = METADATA_COLUMNS[:-1]
PARTITIONS = ("train", "test")


@dataclass(frozen=True)
class MetadataRow:
    """One clip of the metadata (see the module docstring for the meaning of each field)."""

    video_id: str
    start: int
    end: int
    bbox: tuple[int, int, int, int]  # left, top, right, bottom in pixels of the width×height original
    fps: Fraction
    width: int
    height: int
    partition: str
    person_id: str
    line: int = 0  # line in the CSV file, for messages

    @property
    def clip_name(self) -> str:
        """``<person_id>#<video_id>#<start:06d>#<end:06d>`` (the standard VoxCeleb crop name)."""
        return f"{self.person_id}#{self.video_id}#{self.start:06d}#{self.end:06d}"


def _int(value: str, what: str, where: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InputError(f"{where}: {what} must be an integer, got {value!r}") from None


def read_metadata(path: str | os.PathLike[str]) -> list[MetadataRow]:
    """Parse and validate a metadata CSV. Raises InputError naming the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"metadata file not found: '{path}'")
    rows: list[MetadataRow] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(
                f"metadata '{path}' lacks the column(s) {', '.join(missing)} "
                f"(expected the header {','.join(METADATA_COLUMNS)})"
            )
        for record in reader:
            record = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            where = f"{path}:{reader.line_num}"
            parts = record["bbox"].split("-")
            if len(parts) != 4:
                raise InputError(f"{where}: bbox must be left-top-right-bottom, got {record['bbox']!r}")
            bbox = tuple(_int(p, "each bbox value", where) for p in parts)
            start, end = _int(record["start"], "start", where), _int(record["end"], "end", where)
            width, height = _int(record["width"], "width", where), _int(record["height"], "height", where)
            try:
                fps = Fraction(record["fps"])
            except (ValueError, ZeroDivisionError):
                raise InputError(f"{where}: fps must be a number, got {record['fps']!r}") from None
            if not record["video_id"]:
                raise InputError(f"{where}: empty video_id")
            if not 0 <= start < end:
                raise InputError(f"{where}: need 0 ≤ start < end, got start={start} end={end}")
            if fps <= 0 or width <= 0 or height <= 0:
                raise InputError(f"{where}: fps, width and height must be positive")
            if not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
                raise InputError(
                    f"{where}: bbox {record['bbox']!r} has no area (need left < right, top < bottom)"
                )
            if record["partition"] not in PARTITIONS:
                raise InputError(f"{where}: partition must be train or test, got {record['partition']!r}")
            rows.append(
                MetadataRow(
                    video_id=record["video_id"],
                    start=start,
                    end=end,
                    bbox=bbox,  # type: ignore[arg-type]
                    fps=fps,
                    width=width,
                    height=height,
                    partition=record["partition"],
                    person_id=record.get("person_id") or record["video_id"],
                    line=reader.line_num,
                )
            )
    if not rows:
        raise InputError(f"metadata '{path}' has no rows")
    return rows


def frame_range(row: MetadataRow, rate: Fraction | float) -> tuple[int, int]:
    """Frames ``[first, stop)`` of a video at ``rate`` frames/s that fall in the row's time span:
    first = ⌈start·rate/fps⌉, stop = ⌈end·rate/fps⌉ (frame i is in iff start/fps ≤ i/rate < end/fps)."""
    rate = rate if isinstance(rate, Fraction) else Fraction(rate).limit_denominator(1001)
    return math.ceil(row.start * rate / row.fps), math.ceil(row.end * rate / row.fps)


def scaled_box(row: MetadataRow, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The row's bbox in pixels of a width×height video: each coordinate scaled by width/row.width (x) or
    height/row.height (y), rounded down, then clipped to the frame. None when nothing of it is inside."""
    sx, sy = Fraction(width, row.width), Fraction(height, row.height)
    left, top, right, bottom = row.bbox
    x0 = min(max(math.floor(left * sx), 0), width)
    y0 = min(max(math.floor(top * sy), 0), height)
    x1 = min(max(math.floor(right * sx), 0), width)
    y1 = min(max(math.floor(bottom * sy), 0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def group_by_video(rows: list[MetadataRow]) -> dict[str, list[MetadataRow]]:
    """Rows per video id, in file order."""
    groups: dict[str, list[MetadataRow]] = {}
    for row in rows:
        groups.setdefault(row.video_id, []).append(row)
    return groups
