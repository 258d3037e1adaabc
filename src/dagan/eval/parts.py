"""Part files: the per-frame metric values of each finished unit of ``dagan evaluate``.

Each finished unit (:mod:`dagan.eval.units`) is recorded in ``<output>.parts/<unit>.json`` by the
resumable-units store (:mod:`dagan.resumable`) with a signature of everything that determined its values
(dagan version, protocol, checkpoint and depth checkpoint hashes, metric labels, ``--max-frames``, the face
metric size, the unit's videos and frame pairs). A rerun with the same settings reuses those files, so an
interrupted evaluation continues where it stopped; the results file is always assembled from the part
files. Non-finite values are stored as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (strict JSON).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dagan.data.datasets import VideoEntry
from dagan.eval.results import MetricAccumulator
from dagan.eval.units import Unit
from dagan.resumable import ResumableUnits

__all__ = [
    "PART_FORMAT",
    "PART_VERSION",
    "UnitRecord",
    "file_fingerprint",
    "open_parts",
    "part_payload",
    "restore_part",
    "unit_description",
]

PART_FORMAT = "dagan-eval-part"
PART_VERSION = 1


def open_parts(output: Path) -> ResumableUnits:
    """The part files of the results file ``output``: the folder ``<output>.parts``."""
    return ResumableUnits(output.with_name(output.name + ".parts"), PART_FORMAT, PART_VERSION)


class UnitRecord(MetricAccumulator):
    """A :class:`MetricAccumulator` for one unit that also keeps its per-frame values (for the part file)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.values: dict[str, list[float]] = {}
        self.skipped: dict[str, int] = {}
        self.frames = 0

    def add(self, video: str, label: str, values: Any) -> None:
        super().add(video, label, values)
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().double().numpy()
        self.values.setdefault(label, []).extend(np.asarray(values, dtype=np.float64).reshape(-1).tolist())

    def skip(self, video: str, label: str, count: int = 1) -> None:
        super().skip(video, label, count)
        self.values.setdefault(label, [])
        self.skipped[label] = self.skipped.get(label, 0) + count


def _encode_value(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def part_payload(record: UnitRecord, unit: Unit) -> dict[str, Any]:
    """What a finished unit's part file holds besides its key and signature."""
    info: dict[str, Any] = {"video": unit.video.name, "identity": unit.video.identity}
    if unit.source is not None:
        info.update(source=unit.source.name, source_identity=unit.source.identity)
    if unit.frame_pairs:
        info["pairs"] = len(unit.frame_pairs)
    return {
        "unit": info,
        "frames": record.frames,
        "values": {k: [_encode_value(v) for v in vals] for k, vals in record.values.items()},
        "skipped": record.skipped,
    }


def restore_part(accumulator: MetricAccumulator, key: str, payload: dict[str, Any]) -> None:
    """Pool a unit's per-frame values (from its part file) into the run's accumulator."""
    skipped = payload.get("skipped", {})
    for label, values in payload["values"].items():
        accumulator.add(key, label, [float(v) for v in values])  # float() reads "nan"/"inf"/"-inf" back
        if skipped.get(label):
            accumulator.skip(key, label, int(skipped[label]))


def file_fingerprint(path: Path | None) -> str | None:
    """SHA-256 of a file, or of every file of a folder (official checkpoints come as folders)."""
    if path is None:
        return None
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        h.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _video_fingerprint(entry: VideoEntry) -> dict[str, Any]:
    if entry.path.is_dir():
        return {"name": entry.name, "files": sum(1 for p in entry.path.iterdir() if p.is_file())}
    return {"name": entry.name, "bytes": entry.path.stat().st_size}


def unit_description(unit: Unit) -> dict[str, Any]:
    """The unit's part of the signature: its videos (name and size) and frame pairs."""
    out: dict[str, Any] = {"video": _video_fingerprint(unit.video)}
    if unit.source is not None:
        out["source"] = _video_fingerprint(unit.source)
    if unit.frame_pairs:
        out["pairs"] = [list(p) for p in unit.frame_pairs]
    return out
