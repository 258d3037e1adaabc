"""The evaluation protocols of the talking-head literature, run with a trained model (``dagan evaluate``).

Protocols (the test split ``ROOT/<split>`` of a dataset; videos are already face crops, so frames are only
resized to the model resolution R, never detected or cropped):

* ``video`` — same identity, whole video (FOMM): frame 0 of each video is the source, every frame (frame 0
  included) is driven with *absolute* motion and compared with itself.
* ``pairs`` — same identity, frame pairs from a CSV (DaGAN/MCNet style): each row names a video, a source
  frame and a driving frame; the driving frame is the ground truth; absolute motion.
* ``cross-id`` — the first frame of a source video animated by the driving video of another identity with
  *relative* motion (anchor: driving frame 0, adapt scale on), as the literature's cross-identity
  animation. There is no ground truth: CSIM compares the source with the output, PRMSE the driving frame
  with the output.

Scoring conventions: generated frames are rounded to 8 bits (what ``--save-frames`` writes) and compared
with the driving frames resized to R; face metrics see both upscaled to at least 256×256
(:data:`FACE_METRIC_SIZE`, the size the literature evaluates AKD at; dlib's detector misses small faces);
depth metrics compare the depth the model's frozen depth net sees in the *generated* frame with the ground
truth depth of the driving frame (head pixels of its mask), for videos with a ``<name>.npz`` beside them
(synthetic heads).

Streaming and resuming: frames are decoded, generated and scored batch by batch, so memory does not grow
with the video length or the dataset size. Each finished unit (a video, or a source → driving pair for
``cross-id``) writes its per-frame metric values to ``<output>.parts/<unit>.json`` (atomically); a rerun
with the same settings reuses those files, so an interrupted evaluation continues where it stopped. The
final results file is assembled from the part files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dagan import __version__
from dagan.atomic_files import write_text_atomic
from dagan.data.datasets import VideoEntry, scan_videos
from dagan.data.video import iter_frames, probe_video, read_frames, resize_rgb, staging_folder
from dagan.errors import DaganError, InputError
from dagan.eval.depth_metrics import depth_metrics
from dagan.eval.face_metrics import AED_DLIB, AKD_DLIB, AKD_FAN, CSIM_DLIB, PRMSE_DLIB
from dagan.eval.lpips import LPIPS_LABELS
from dagan.eval.metrics import L1_LABEL, PSNR_LABEL, SSIM_PAPER, SSIM_STANDARD, TCM_LABEL, l1, psnr, ssim
from dagan.eval.results import (
    AUCON_UNAVAILABLE_REASON,
    DEPTH_LABELS,
    MetricAccumulator,
    build_results,
    render_markdown,
    write_results,
)

__all__ = [
    "DEFAULT_CROSS_ID_PAIRS",
    "FACE_METRIC_SIZE",
    "METRIC_GROUPS",
    "PROTOCOLS",
    "PROTOCOL_METRICS",
    "EvaluationOptions",
    "EvaluationResult",
    "FrameScorer",
    "GroundTruthFrames",
    "Unit",
    "UnitRecord",
    "cross_id_units",
    "evaluate",
    "pair_units",
    "resolve_metrics",
    "video_units",
]

PROTOCOLS = ("video", "pairs", "cross-id")
PROTOCOL_DESCRIPTIONS = {
    "video": "same identity, whole video: frame 0 is the source, every frame (frame 0 included) is driven "
    "with absolute motion and is its own ground truth; metrics pooled over frames",
    "pairs": "same identity, frame pairs from a CSV (video, source frame, driving frame): the driving frame "
    "is the ground truth; absolute motion; metrics pooled over pairs",
    "cross-id": "cross identity: the first frame of a source video driven by a video of another identity, "
    "relative motion anchored at driving frame 0 with adapt scale; CSIM source vs generated, PRMSE driving "
    "vs generated",
}
PROTOCOL_MOTION = {"video": "absolute", "pairs": "absolute", "cross-id": "relative"}

#: ``--metrics`` names and the result labels each one produces.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "l1": (L1_LABEL,),
    "psnr": (PSNR_LABEL,),
    "ssim": (SSIM_STANDARD.label, SSIM_PAPER.label),
    "lpips": (LPIPS_LABELS["alex"],),
    "lpips-vgg": (LPIPS_LABELS["vgg"],),
    "akd": (AKD_DLIB,),
    "akd-fan": (AKD_FAN,),
    "aed": (AED_DLIB,),
    "prmse": (PRMSE_DLIB,),
    "csim": (CSIM_DLIB,),
    "tcm": (TCM_LABEL,),
    "aucon": ("AUCON",),
    "depth": tuple(DEPTH_LABELS.values()),
}
_SAME_ID = ("l1", "psnr", "ssim", "lpips", "lpips-vgg", "akd", "akd-fan", "aed", "prmse")
#: The metrics that apply to each protocol (also the default of ``--metrics``), in report order.
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {
    "video": (*_SAME_ID, "tcm", "aucon", "depth"),
    "pairs": (*_SAME_ID, "aucon", "depth"),
    "cross-id": ("csim", "prmse", "aucon"),
}
#: Face metrics analyse frames upscaled to at least this size (AKD is defined on 256² frames).
FACE_METRIC_SIZE = 256
#: Cross-identity pairs drawn when no CSV is given (``--max-pairs``; 0 = all pairs).
DEFAULT_CROSS_ID_PAIRS = 100
PART_FORMAT = "dagan-eval-part"
PART_VERSION = 1


# --------------------------------------------------------------------------- options and units


@dataclass
class EvaluationOptions:
    """What ``dagan evaluate`` was asked to do (see its ``--help``)."""

    checkpoint: Path
    data: Path
    protocol: str
    output: Path = Path("results.json")
    split: str = "test"
    pairs: Path | None = None
    metrics: Sequence[str] | None = None
    max_frames: int | None = None
    max_pairs: int | None = None
    batch_size: int = 8
    device: str | None = None
    depth_checkpoint: Path | None = None
    save_frames: Path | None = None
    seed: int = 0
    resume: bool = True
    progress: bool = True


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


@dataclass
class EvaluationResult:
    """What :func:`evaluate` wrote and did."""

    output: Path
    markdown_path: Path
    markdown: str
    document: dict[str, Any]
    computed: list[str] = field(default_factory=list)  # unit keys evaluated in this call
    reused: list[str] = field(default_factory=list)  # unit keys taken from earlier part files


def resolve_metrics(protocol: str, names: Sequence[str] | None) -> list[str]:
    """The ``--metrics`` group names to run (default and ``all``: every metric of the protocol, in report
    order). Names may be comma separated and are case-insensitive. InputError for unknown names and for
    metrics that do not apply to the protocol (e.g. TCM needs consecutive ground-truth frames)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    allowed = PROTOCOL_METRICS[protocol]
    wanted = [n.strip().lower() for item in (names or ["all"]) for n in str(item).split(",") if n.strip()]
    if not wanted or "all" in wanted:
        return list(allowed)
    for name in wanted:
        if name not in METRIC_GROUPS:
            raise InputError(f"unknown metric {name!r}; known: {', '.join(METRIC_GROUPS)}, all")
        if name not in allowed:
            raise InputError(
                f"metric {name!r} does not apply to the {protocol} protocol (it has: {', '.join(allowed)})"
            )
    return [name for name in allowed if name in wanted]


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


# --------------------------------------------------------------------------- ground truth


class GroundTruthFrames:
    """Per-frame reader of ``depth`` (T×H×W) and ``mask`` (T×H×W) in a ground-truth ``.npz``
    (:func:`dagan.data.synthetic.save_ground_truth`) that decompresses only up to the frame asked for, so a
    clip's depth maps are never all in memory. Sequential reads are cheapest; no pickles are loaded."""

    ARRAYS = ("depth", "mask")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"cannot read ground truth '{self.path}': {exc}") from None
        self._arrays: dict[str, tuple[Any, int, np.dtype, tuple[int, ...]]] = {}
        try:
            for name in self.ARRAYS:
                self._arrays[name] = self._open(name)
        except BaseException:
            self.close()
            raise

    def _open(self, name: str) -> tuple[Any, int, np.dtype, tuple[int, ...]]:
        member = f"{name}.npy"
        if member not in self._zip.namelist():
            raise InputError(f"ground truth '{self.path}' has no '{name}' array")
        fh = self._zip.open(member)
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(fh)
        if fortran or dtype.hasobject or len(shape) != 3:
            raise InputError(f"ground truth '{self.path}': '{name}' is not a C-ordered T×H×W array")
        return fh, fh.tell(), dtype, tuple(shape)

    @property
    def num_frames(self) -> int:
        return self._arrays["depth"][3][0]

    def frame(self, name: str, index: int) -> np.ndarray:
        """Frame ``index`` of array ``name`` ("depth" or "mask")."""
        fh, offset, dtype, shape = self._arrays[name]
        if not 0 <= index < shape[0]:
            raise InputError(f"ground truth '{self.path}' has {shape[0]} frames, frame {index} was asked for")
        size = int(np.prod(shape[1:])) * dtype.itemsize
        fh.seek(offset + index * size)
        return np.frombuffer(fh.read(size), dtype=dtype).reshape(shape[1:])

    def close(self) -> None:
        for fh, *_ in self._arrays.values():
            fh.close()
        self._zip.close()

    def __enter__(self) -> GroundTruthFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- per-unit values


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


def _decode_value(x: float | str) -> float:
    return float(x)  # float("inf") / float("-inf") read the strings back


_SAFE = re.compile(r"[^A-Za-z0-9._#@+=-]")


def part_file_name(key: str) -> str:
    """The part file of a unit: ``<key>.json``, or a sanitised name plus a hash for unusual keys."""
    safe = _SAFE.sub("_", key)
    if safe != key or safe.startswith(".") or len(safe) > 150:
        safe = f"{safe[:120].lstrip('.')}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    return f"{safe}.json"


def write_part(path: Path, record: UnitRecord, signature: dict[str, Any], unit: dict[str, Any]) -> None:
    doc = {
        "format": PART_FORMAT,
        "format_version": PART_VERSION,
        "key": record.key,
        "signature": signature,
        "unit": unit,
        "frames": record.frames,
        "values": {k: [_encode_value(v) for v in vals] for k, vals in record.values.items()},
        "skipped": record.skipped,
    }
    write_text_atomic(path, json.dumps(doc, allow_nan=False) + "\n")


def read_part(path: Path, key: str, signature: dict[str, Any]) -> dict[str, Any] | None:
    """A finished unit's part file when it exists, is intact and was made with ``signature``, else None."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != PART_FORMAT
        or doc.get("key") != key
        or doc.get("signature") != signature
        or not isinstance(doc.get("values"), dict)
    ):
        return None
    return doc


def _fingerprint(path: Path | None) -> str | None:
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


# --------------------------------------------------------------------------- scoring


def _to_float(frames: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W float64 in [0, 1] (CPU; exact, skimage-comparable metric inputs)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).double() / 255.0


def _face_size(frame: np.ndarray) -> np.ndarray:
    if min(frame.shape[:2]) >= FACE_METRIC_SIZE:
        return frame
    return resize_rgb(frame, FACE_METRIC_SIZE)


class _TemporalStream:
    """TCM over a video that arrives batch by batch: keeps the last frame pair between batches."""

    def __init__(self) -> None:
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
        from dagan.eval.metrics import tcm_values

        g = generated.astype(np.float64) / 255.0
        r = reference.astype(np.float64) / 255.0
        if self._last is not None:
            g, r = np.concatenate([self._last[0], g]), np.concatenate([self._last[1], r])
        self._last = (g[-1:], r[-1:])
        return tcm_values(g, r) if len(g) >= 2 else np.empty(0)


class _FrameSink:
    """Generated frames of one unit as PNGs in a hidden folder that becomes ``folder`` on commit."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.tmp: Path | None = None
        self.count = 0
        if folder is not None:
            self.tmp = staging_folder(folder)  # the usual permissions, unlike mkdtemp's 0700

    def write(self, frame: np.ndarray, name: str | None = None) -> None:
        if self.tmp is None:
            return
        from PIL import Image

        Image.fromarray(frame).save(self.tmp / (name or f"{self.count:07d}.png"), compress_level=1)
        self.count += 1

    def commit(self) -> None:
        if self.tmp is None or self.folder is None:
            return
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(self.tmp, self.folder)
        self.tmp = None

    def abort(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _limited(frames: Iterator[np.ndarray], count: int | None) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if count is not None and i >= count:
            return
        yield frame


class FrameScorer:
    """The metrics of one run: sets up what is requested and available, and scores batches into a
    :class:`UnitRecord`. ``unavailable`` maps labels that cannot be computed to the reason."""

    def __init__(self, animator: Any, groups: Sequence[str], device: torch.device) -> None:
        self.animator = animator
        self.device = device
        self.labels = [label for g in groups for label in METRIC_GROUPS[g]]
        self.unavailable: dict[str, str] = {}
        self.lpips: dict[str, torch.nn.Module] = {}
        self.face: Any = None
        self.face_labels: list[str] = []
        self.fan: Any = None
        self.face_error = ""
        self.tcm = False
        self.depth = False
        self._setup(set(groups))

    def _mark(self, labels: Iterable[str], reason: str) -> None:
        for label in labels:
            self.unavailable[label] = reason

    def _setup(self, groups: set[str]) -> None:
        from dagan.eval.lpips import load_lpips

        for net, group in (("alex", "lpips"), ("vgg", "lpips-vgg")):
            if group in groups:
                try:
                    self.lpips[LPIPS_LABELS[net]] = load_lpips(net).to(self.device)
                except (DaganError, OSError, ImportError, ValueError) as exc:
                    self._mark(METRIC_GROUPS[group], f"LPIPS weights could not be loaded: {_line(exc)}")
        dlib_groups = [g for g in ("akd", "aed", "prmse", "csim") if g in groups]
        if dlib_groups or "akd-fan" in groups:  # FAN frames go through the same pipeline
            from dagan.eval.face_metrics import DlibFaceAnalyzer

            try:
                from dagan.faces import DlibHogDetector

                # frames are face crops of >= 256 px: no slow 2× re-search for tiny faces when none is found
                analyzer = DlibFaceAnalyzer(
                    detector=DlibHogDetector(upsample=1, retry_upsample=1),
                    landmarks=bool({"akd", "prmse"} & groups),
                    identity=bool({"aed", "csim"} & groups),
                )
                self.face_labels = [METRIC_GROUPS[g][0] for g in dlib_groups]
                self.face = analyzer
            except (DaganError, ImportError, OSError, RuntimeError) as exc:
                self._mark([METRIC_GROUPS[g][0] for g in dlib_groups], _line(exc))
                self.face_error = _line(exc)
        if "akd-fan" in groups:
            from dagan.eval.face_metrics import FANLandmarks, fan_available

            if self.face is None:
                self._mark([AKD_FAN], f"AKD[FAN] runs in the dlib face-metric pipeline: {self.face_error}")
            elif not fan_available():
                self._mark(
                    [AKD_FAN],
                    "face-alignment (2D-FAN, the literature's AKD network) is not installed: "
                    "pip install 'dagan[fan]'; AKD[dlib68] is the offline proxy",
                )
            else:
                try:
                    self.fan = FANLandmarks(device=str(self.device))
                except (DaganError, ImportError, OSError, RuntimeError) as exc:
                    self._mark([AKD_FAN], _line(exc))
        if "tcm" in groups:
            try:
                import cv2  # noqa: F401

                self.tcm = True
            except ImportError:
                self._mark([TCM_LABEL], "TCM needs OpenCV (opencv-python-headless) for Farneback flow")
        if "aucon" in groups:
            self._mark(["AUCON"], AUCON_UNAVAILABLE_REASON)
        if "depth" in groups:
            if self.animator.models.depth_net is None:
                self._mark(
                    METRIC_GROUPS["depth"], "the model has no depth network (a depth-free architecture)"
                )
            else:
                self.depth = True

    @property
    def computed_labels(self) -> list[str]:
        return [label for label in self.labels if label not in self.unavailable]

    def wants(self, label: str) -> bool:
        return label in self.labels and label not in self.unavailable

    def face_metrics(self, record: UnitRecord) -> Any:
        from dagan.eval.face_metrics import FaceMetrics

        if self.face is None:
            return None
        return FaceMetrics(record, analyzer=self.face, fan=self.fan, metrics=self.face_labels)

    @torch.inference_mode()
    def same_identity(
        self,
        record: UnitRecord,
        generated: np.ndarray,
        reference: np.ndarray,
        faces: Any,
        gt: GroundTruthFrames | None,
        gt_indices: Sequence[int],
    ) -> None:
        """Score generated frames against their ground truth (both N×R×R×3 uint8)."""
        key = record.key
        g, d = _to_float(generated), _to_float(reference)
        if self.wants(L1_LABEL):
            record.add(key, L1_LABEL, l1(g, d))
        if self.wants(PSNR_LABEL):
            record.add(key, PSNR_LABEL, psnr(g, d))
        for variant in (SSIM_STANDARD, SSIM_PAPER):
            if self.wants(variant.label):
                record.add(key, variant.label, ssim(g, d, variant))
        for label, net in self.lpips.items():
            x, y = g.float().to(self.device), d.float().to(self.device)
            record.add(key, label, net(x, y))
        if faces is not None:
            for gen, ref in zip(generated, reference):
                faces.add_pair(key, _face_size(gen), _face_size(ref))
        if self.depth and gt is not None:
            self._depth(record, g.float(), gt, gt_indices)

    def _depth(
        self, record: UnitRecord, images: torch.Tensor, gt: GroundTruthFrames, indices: Sequence[int]
    ) -> None:
        from dagan.geometry.camera import disparity_to_depth

        dp = self.animator.config.model_params.depth_params
        disp = self.animator.models.disparity(images.to(self.device)).float()
        for i, index in enumerate(indices):
            depth_gt = gt.frame("depth", index).astype(np.float64)
            mask = gt.frame("mask", index).astype(bool)
            d = disp[i : i + 1]
            if d.shape[-2:] != depth_gt.shape:
                d = F.interpolate(d, size=depth_gt.shape, mode="bilinear", align_corners=False)
            pred = disparity_to_depth(d, dp.min_depth, dp.max_depth)[0, 0].double().cpu().numpy()
            try:
                values = depth_metrics(pred, depth_gt, mask)
            except ValueError:  # too few head pixels in this frame
                for label in DEPTH_LABELS.values():
                    record.skip(record.key, label)
                continue
            for name, label in DEPTH_LABELS.items():
                record.add(record.key, label, values[name])

    def cross_identity(
        self, record: UnitRecord, generated: np.ndarray, source: np.ndarray, driving: np.ndarray, faces: Any
    ) -> None:
        if faces is None:
            return
        src = _face_size(source)
        for gen, drv in zip(generated, driving):
            faces.add_cross(
                record.key, _face_size(gen), src, _face_size(drv) if self.wants(PRMSE_DLIB) else None
            )


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- the runners


class _Runner:
    def __init__(self, animator: Any, scorer: FrameScorer, options: EvaluationOptions) -> None:
        self.animator = animator
        self.scorer = scorer
        self.options = options
        self.resolution = animator.resolution

    def _ground_truth(self, entry: VideoEntry) -> GroundTruthFrames | None:
        if not self.scorer.depth or entry.ground_truth is None:
            return None
        return GroundTruthFrames(entry.ground_truth)

    def run(self, unit: Unit, sink: _FrameSink) -> UnitRecord:
        record = UnitRecord(unit.key)
        faces = self.scorer.face_metrics(record)
        protocol = self.options.protocol
        if protocol == "video":
            self._video(unit, record, faces, sink)
        elif protocol == "pairs":
            self._pairs(unit, record, faces, sink)
        else:
            self._cross(unit, record, faces, sink)
        return record

    def _generate(
        self, driving: np.ndarray, state: Any, transfer: Any, anchor_rows: Sequence[int] = ()
    ) -> np.ndarray:
        out = self.animator.generate_frames(driving, state, transfer, None, anchor_rows)
        return self.animator.to_uint8(out)

    def _video(self, unit: Unit, record: UnitRecord, faces: Any, sink: _FrameSink) -> None:
        a, opts = self.animator, self.options
        frames = iter_frames(unit.video.path, size=self.resolution)
        gt = self._ground_truth(unit.video)
        tcm = _TemporalStream() if self.scorer.tcm else None
        try:
            first = next(frames)
            state = a.prepare_source(first, crop=False)
            transfer = a.motion_transfer(state, None, relative=False)
            stream = _limited(_chain_first(first, frames), opts.max_frames)
            index = 0
            for batch in _batched(stream, opts.batch_size):
                driving = np.stack(batch)
                generated = self._generate(driving, state, transfer)
                indices = list(range(index, index + len(batch)))
                self.scorer.same_identity(record, generated, driving, faces, gt, indices)
                if tcm is not None:
                    record.add(unit.key, TCM_LABEL, tcm.update(generated, driving))
                for frame in generated:
                    sink.write(frame)
                index += len(batch)
                record.frames += len(batch)
        finally:
            frames.close()
            if gt is not None:
                gt.close()

    def _pairs(self, unit: Unit, record: UnitRecord, faces: Any, sink: _FrameSink) -> None:
        a, opts = self.animator, self.options
        n = probe_video(unit.video.path).num_frames
        for s, d in unit.frame_pairs:
            if max(s, d) >= n:
                raise InputError(
                    f"pairs CSV: frame {max(s, d)} of video '{unit.video.name}' does not exist "
                    f"(it has {n} frames, indices start at 0)"
                )
        by_source: OrderedDict[int, list[int]] = OrderedDict()
        for s, d in unit.frame_pairs:
            by_source.setdefault(s, []).append(d)
        gt = self._ground_truth(unit.video)
        try:
            for s, drivers in by_source.items():
                source = read_frames(unit.video.path, [s], size=self.resolution)[0]
                state = a.prepare_source(source, crop=False)
                transfer = a.motion_transfer(state, None, relative=False)
                for chunk in _batched(drivers, opts.batch_size):
                    driving = read_frames(unit.video.path, chunk, size=self.resolution)
                    generated = self._generate(driving, state, transfer)
                    self.scorer.same_identity(record, generated, driving, faces, gt, chunk)
                    for d, frame in zip(chunk, generated):
                        sink.write(frame, f"{s:07d}-{d:07d}.png")
                    record.frames += len(chunk)
        finally:
            if gt is not None:
                gt.close()

    def _cross(self, unit: Unit, record: UnitRecord, faces: Any, sink: _FrameSink) -> None:
        a, opts = self.animator, self.options
        assert unit.source is not None
        source_frames = iter_frames(unit.source.path, size=self.resolution)
        try:
            source = next(source_frames)
        finally:
            source_frames.close()
        state = a.prepare_source(source, crop=False)
        frames = iter_frames(unit.video.path, size=self.resolution)
        try:
            transfer = None
            for batch in _batched(_limited(frames, opts.max_frames), opts.batch_size):
                driving = np.stack(batch)
                rows: list[int] = []
                if transfer is None:  # relative motion anchored at driving frame 0
                    transfer = a.motion_transfer(state, driving[:1], relative=True, adapt_scale=True)
                    rows = [0]
                generated = self._generate(driving, state, transfer, rows)
                self.scorer.cross_identity(record, generated, source, driving, faces)
                for frame in generated:
                    sink.write(frame)
                record.frames += len(batch)
        finally:
            frames.close()


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


# --------------------------------------------------------------------------- the whole evaluation


def _check_options(opts: EvaluationOptions) -> None:
    if opts.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {opts.protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if opts.max_frames is not None and opts.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {opts.max_frames}")
    if opts.max_pairs is not None and opts.max_pairs < 0:
        raise InputError(f"--max-pairs must be >= 0, got {opts.max_pairs}")
    if opts.protocol == "pairs" and opts.pairs is None:
        raise InputError("the pairs protocol needs --pairs CSV (columns video,source_frame,driving_frame)")
    if opts.protocol == "video" and opts.pairs is not None:
        raise InputError("--pairs is for the pairs and cross-id protocols, not video")
    if Path(opts.output).suffix.lower() != ".json":
        raise InputError(f"output '{opts.output}' must end in .json (the Markdown table goes beside it)")
    if Path(opts.output).is_dir():
        raise InputError(f"output '{opts.output}' is a folder, expected a file name")


def _units(opts: EvaluationOptions, entries: list[VideoEntry]) -> list[Unit]:
    if opts.protocol == "video":
        return video_units(entries)
    if opts.protocol == "pairs":
        assert opts.pairs is not None
        return pair_units(Path(opts.pairs), entries, opts.max_pairs)
    max_pairs = DEFAULT_CROSS_ID_PAIRS if opts.max_pairs is None and opts.pairs is None else opts.max_pairs
    return cross_id_units(entries, opts.pairs, max_pairs, opts.seed)


def _unit_description(unit: Unit) -> dict[str, Any]:
    out: dict[str, Any] = {"video": _video_fingerprint(unit.video)}
    if unit.source is not None:
        out["source"] = _video_fingerprint(unit.source)
    if unit.frame_pairs:
        out["pairs"] = [list(p) for p in unit.frame_pairs]
    return out


def evaluate(opts: EvaluationOptions) -> EvaluationResult:
    """Run a protocol over a dataset split and write the results JSON and its Markdown table (see the module
    docstring). Finished units found in ``<output>.parts`` (same settings) are reused unless
    ``opts.resume`` is False."""
    from tqdm import tqdm

    from dagan.infer.animator import Animator

    _check_options(opts)
    groups = resolve_metrics(opts.protocol, opts.metrics)
    output = Path(opts.output)
    entries = scan_videos(opts.data, opts.split)
    units = _units(opts, entries)
    animator = Animator.from_checkpoint(
        opts.checkpoint, device=opts.device, depth_checkpoint=opts.depth_checkpoint
    )
    scorer = FrameScorer(animator, groups, animator.device)
    runner = _Runner(animator, scorer, opts)

    base_signature = {
        "dagan_version": __version__,
        "protocol": opts.protocol,
        "checkpoint_sha256": _fingerprint(Path(opts.checkpoint)),
        "depth_checkpoint_sha256": _fingerprint(
            Path(opts.depth_checkpoint) if opts.depth_checkpoint else None
        ),
        "labels": scorer.computed_labels,
        "max_frames": opts.max_frames,
        "face_metric_size": FACE_METRIC_SIZE,
    }
    parts_dir = output.with_name(output.name + ".parts")
    if not opts.resume and parts_dir.is_dir():
        for old in parts_dir.glob("*.json"):  # only our part files; anything else there is left alone
            old.unlink()
    parts_dir.mkdir(parents=True, exist_ok=True)

    accumulator = MetricAccumulator()
    result = EvaluationResult(output, output.with_suffix(".md"), "", {})
    frames_total = 0
    with tqdm(
        total=len(units), desc=f"evaluate {opts.protocol}", unit="video", disable=not opts.progress
    ) as bar:
        for unit in units:
            description = _unit_description(unit)
            signature = {**base_signature, "unit": description}
            part_path = parts_dir / part_file_name(unit.key)
            doc = read_part(part_path, unit.key, signature) if opts.resume else None
            if doc is None:
                folder = opts.save_frames / part_file_name(unit.key)[:-5] if opts.save_frames else None
                sink = _FrameSink(folder)
                try:
                    record = runner.run(unit, sink)
                    sink.commit()
                except BaseException:
                    sink.abort()
                    raise
                unit_info = {"video": unit.video.name, "identity": unit.video.identity}
                if unit.source is not None:
                    unit_info.update(source=unit.source.name, source_identity=unit.source.identity)
                if unit.frame_pairs:
                    unit_info["pairs"] = len(unit.frame_pairs)
                write_part(part_path, record, signature, unit_info)
                doc = read_part(part_path, unit.key, signature)
                assert doc is not None
                result.computed.append(unit.key)
            else:
                result.reused.append(unit.key)
            _restore(accumulator, unit.key, doc)
            frames_total += int(doc.get("frames", 0))
            bar.set_postfix_str(unit.key[-40:], refresh=False)
            bar.update(1)

    _mark_unavailable(accumulator, scorer, groups)
    notes = {
        "protocol_description": PROTOCOL_DESCRIPTIONS[opts.protocol],
        "motion": PROTOCOL_MOTION[opts.protocol],
        "split": opts.split,
        "units": len(units),
        "generated_frames": frames_total,
        "resolution": animator.resolution,
        "arch": animator.config.model_params.arch,
        "checkpoint_sha256": base_signature["checkpoint_sha256"],
        "depth_checkpoint": str(opts.depth_checkpoint) if opts.depth_checkpoint else None,
        "max_frames": opts.max_frames,
        "metric_groups": groups,
        "scoring": "generated frames rounded to 8 bits vs driving frames resized to the model resolution "
        f"(antialiased bilinear); face metrics on frames upscaled to >= {FACE_METRIC_SIZE}², dlib HOG "
        "face detector at 1 upsampling",
    }
    if opts.pairs is not None:
        notes["pairs_csv"] = str(opts.pairs)
        notes["pairs_csv_sha256"] = _fingerprint(Path(opts.pairs))
    if "depth" in groups:
        notes["depth"] = (
            "model's frozen depth net on the generated frame (disparity → depth with the config's min/max "
            "depth, resized to the ground truth) vs the driving frame's ground-truth depth, head-mask pixels"
        )
    if opts.protocol == "cross-id" and opts.pairs is None:
        cap = DEFAULT_CROSS_ID_PAIRS if opts.max_pairs is None else opts.max_pairs
        notes["cross_id_pairs"] = (
            f"ordered pairs of videos of different identities: {len(units)} drawn (cap {cap or 'none'})"
        )
        notes["seed"] = opts.seed
    document = build_results(
        accumulator,
        checkpoint=str(opts.checkpoint),
        data=str(Path(opts.data) / opts.split),
        protocol=opts.protocol,
        notes=notes,
        aucon_reason=AUCON_UNAVAILABLE_REASON if "aucon" in groups else None,
    )
    write_results(output, document)
    markdown = render_markdown(document, title=Path(opts.checkpoint).name)
    write_text_atomic(result.markdown_path, markdown)
    result.document, result.markdown = document, markdown
    return result


def _restore(accumulator: MetricAccumulator, key: str, doc: dict[str, Any]) -> None:
    """Pool a unit's per-frame values (from its part file) into the run's accumulator."""
    skipped = doc.get("skipped", {})
    for label, values in doc["values"].items():
        accumulator.add(key, label, [_decode_value(v) for v in values])
        if skipped.get(label):
            accumulator.skip(key, label, int(skipped[label]))


def _mark_unavailable(accumulator: MetricAccumulator, scorer: FrameScorer, groups: Sequence[str]) -> None:
    """Requested metrics that produced nothing are listed as unavailable, with the reason."""
    have = set(accumulator.labels)
    for label in scorer.labels:
        if label in have or label == "AUCON":
            continue  # AUCON's reason is added by build_results
        reason = scorer.unavailable.get(label)
        if reason is None and label in DEPTH_LABELS.values():
            reason = (
                "no evaluated video has ground-truth depth (a <name>.npz beside it, e.g. from dagan synth)"
            )
        if reason is None:
            reason = "no frame could be scored"
        accumulator.unavailable(label, reason)
