"""Evaluation results: the metric registry, a streaming accumulator, the results JSON file and its Markdown.

Every metric is reported under its exact variant label — e.g. ``SSIM[standard,L=1]``,
``SSIM[paper,7x7-uniform,L=2]``, ``LPIPS[alex,v0.1]``, ``AKD[dlib68]`` — and proxies name the network that
stands in for the paper's (see :data:`METRICS`).

Results file (JSON, ``"format": "dagan-results"``, ``"format_version": 1``)::

    {
      "format": "dagan-results", "format_version": 1,
      "dagan_version": "0.1.0", "created": "2025-01-01T12:00:00+00:00",
      "checkpoint": "runs/vox/ckpt.pt", "data": "vox/test", "protocol": "reconstruction", "notes": {...},
      "metrics": {
        "SSIM[standard,L=1]": {"available": true, "name": "SSIM", "better": "higher", "pooling": "frames",
                               "proxy_for": null, "description": "...",
                               "value": 0.81, "frame_mean": 0.81, "video_mean": 0.80,
                               "frames": 1234, "skipped": 0, "videos": 10},
        "AUCON": {"available": false, "name": "AUCON", "better": "higher", "reason": "..."}
      },
      "per_video": {"id10280#...": {"SSIM[standard,L=1]": {"value": 0.79, "frames": 120, "skipped": 0}}}
    }

``value`` is the number a paper reports: the frame-pooled mean (``frame_mean``) for per-frame metrics, the
mean of per-video means (``video_mean``) for per-video ones (TCM). Non-finite numbers (PSNR of identical
frames is +inf) are written as the strings ``"inf"``, ``"-inf"``, ``"nan"`` so the file stays strict JSON.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from dagan import __version__
from dagan.atomic_files import write_json_atomic
from dagan.errors import InputError

RESULTS_FORMAT = "dagan-results"
RESULTS_FORMAT_VERSION = 1

AUCON_UNAVAILABLE_REASON = (
    "no facial action-unit detector is available offline (the literature uses OpenFace 2.0 AU intensities); "
    "AUCON is not computed rather than approximated"
)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric label means: display name, direction, pooling and — for proxies — the paper's metric."""

    label: str
    name: str
    better: Literal["higher", "lower"]
    pooling: Literal["frames", "videos"] = "frames"
    proxy_for: str | None = None
    description: str = ""


def _info(*args: Any, **kwargs: Any) -> tuple[str, MetricInfo]:
    info = MetricInfo(*args, **kwargs)
    return info.label, info


#: Known metric labels in report order. Labels not listed here are still accepted (direction unknown).
METRICS: dict[str, MetricInfo] = dict(
    [
        _info("L1", "L1", "lower", description="mean |G−D| over pixels and channels, images in [0,1]"),
        _info(
            "PSNR[L=1]", "PSNR", "higher", description="10·log10(1/MSE) dB, data range 1, mean of per-frame"
        ),
        _info(
            "SSIM[standard,L=1]",
            "SSIM",
            "higher",
            description="7×7 uniform window, sample covariance, valid region, channel mean, data range 1",
        ),
        _info(
            "SSIM[paper,7x7-uniform,L=2]",
            "SSIM",
            "higher",
            description="as SSIM[standard] but data range 2 (old scikit-image float default used by "
            "FOMM/DaGAN evaluation scripts); comparable to published numbers, inflated",
        ),
        _info("LPIPS[alex,v0.1]", "LPIPS", "lower", description="LPIPS v0.1, AlexNet, inputs in [-1,1]"),
        _info("LPIPS[vgg,v0.1]", "LPIPS", "lower", description="LPIPS v0.1, VGG-16, inputs in [-1,1]"),
        _info(
            "AKD[FAN]",
            "AKD",
            "lower",
            description="face-alignment 2D-FAN 68 landmarks on 256² frames, per-coordinate L1 in pixels",
        ),
        _info(
            "AKD[dlib68]",
            "AKD",
            "lower",
            proxy_for="AKD (2D-FAN)",
            description="dlib 68 landmarks, per-coordinate L1 in pixels of a 256² frame; frames without a "
            "face skipped",
        ),
        _info(
            "AED[dlib]",
            "AED",
            "lower",
            proxy_for="AED (OpenFace nn4.small2)",
            description="squared L2 between unit-normalised dlib 128-d identity embeddings",
        ),
        _info(
            "CSIM[dlib]",
            "CSIM",
            "higher",
            proxy_for="CSIM (ArcFace / facenet)",
            description="cosine similarity of dlib 128-d embeddings, source vs generated",
        ),
        _info(
            "PRMSE[dlib68+SQPNP]",
            "PRMSE",
            "lower",
            proxy_for="PRMSE (head-pose estimator)",
            description="RMSE of (yaw, pitch, roll) in degrees from dlib 68 landmarks + solvePnP SQPNP on a "
            "generic 6-point 3-D face",
        ),
        _info("AUCON", "AUCON", "higher", description="action-unit agreement (needs an AU detector)"),
        _info(
            "TCM[Farneback]",
            "TCM",
            "higher",
            pooling="videos",
            description="Yao et al. temporal consistency, Farneback flow on the ground truth; per-video mean",
        ),
        _info(
            "Depth-RelStruct",
            "relative-structure error",
            "lower",
            description="depth error after an affine fit to the ground truth, face pixels",
        ),
        _info("AbsRel[median]", "AbsRel", "lower", description="|d̂−d|/d after median scaling, face pixels"),
        _info("delta<1.25[median]", "δ<1.25", "higher", description="share of face pixels within 1.25×"),
        _info("SILog-RMSE", "scale-invariant log RMSE", "lower", description="face pixels"),
    ]
)

#: Labels of the motion-transfer measures (:mod:`dagan.eval.motion_transfer`): (signal, measure) → label.
MOTION_LABELS = {
    (signal, measure): f"Motion-{signal}-{measure}"
    for signal in ("yaw", "pitch", "roll", "mouth")
    for measure in ("ratio", "corr")
}
for (_signal, _measure), _label in MOTION_LABELS.items():
    METRICS[_label] = MetricInfo(
        _label,
        f"{_signal} {'amplitude ratio' if _measure == 'ratio' else 'correlation'}",
        "higher",
        pooling="videos",
        description=(
            f"σ of the generated {_signal} series over σ of the driving one (1 = all the motion comes through; "
            "dlib 68 landmarks, one face followed per video); per-video mean"
            if _measure == "ratio"
            else f"Pearson correlation of the generated and driving {_signal} series; per-video mean"
        ),
    )


#: Labels for the keys of :func:`dagan.eval.depth_metrics.depth_metrics`.
DEPTH_LABELS = {
    "rel_structure": "Depth-RelStruct",
    "abs_rel": "AbsRel[median]",
    "delta_1.25": "delta<1.25[median]",
    "si_log_rmse": "SILog-RMSE",
}


def metric_info(label: str) -> MetricInfo | None:
    """The registry entry of ``label`` or None for a label this version does not know."""
    return METRICS.get(label)


# ------------------------------------------------------------------------------------------- accumulator


class _Stats:
    """Running count and float64 sum (no per-frame storage)."""

    __slots__ = ("count", "skipped", "total")

    def __init__(self) -> None:
        self.count = 0
        self.skipped = 0
        self.total = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


def _as_values(values: float | Iterable[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError("metric values contain NaN")
    return arr


class MetricAccumulator:
    """Streams per-frame metric values and pools them per video and overall with O(videos × metrics) memory.

    ``add(video, label, values)`` takes one value or a batch (list, array, tensor); ``skip(video, label, n)``
    counts frames a metric could not score (e.g. no face found); ``unavailable(label, reason)`` marks a
    metric that cannot be computed at all. ``summary()`` gives the ``metrics`` and ``per_video`` parts of the
    results file.
    """

    def __init__(self) -> None:
        self._videos: dict[str, dict[str, _Stats]] = {}
        self._labels: list[str] = []
        self._unavailable: dict[str, str] = {}

    def _stats(self, video: str, label: str) -> _Stats:
        if label in self._unavailable:
            raise ValueError(f"metric {label} was marked unavailable")
        if label not in self._labels:
            self._labels.append(label)
        return self._videos.setdefault(str(video), {}).setdefault(label, _Stats())

    def add(
        self, video: str, label: str, values: float | Iterable[float] | np.ndarray | torch.Tensor
    ) -> None:
        arr = _as_values(values)
        stats = self._stats(video, label)
        stats.count += arr.size
        stats.total += float(arr.sum())

    def skip(self, video: str, label: str, count: int = 1) -> None:
        if count < 0:
            raise ValueError("skipped frame count must be non-negative")
        self._stats(video, label).skipped += count

    def unavailable(self, label: str, reason: str) -> None:
        if label in self._labels:
            raise ValueError(f"metric {label} already has values")
        self._unavailable[label] = reason

    @property
    def labels(self) -> list[str]:
        """Labels with values, in registry order first, then in order of first use."""
        known = [lab for lab in METRICS if lab in self._labels]
        return known + [lab for lab in self._labels if lab not in METRICS]

    def video_mean(self, video: str, label: str) -> float:
        return self._videos[str(video)][label].mean

    def summary(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
        """``(metrics, per_video)`` dicts as stored in the results file."""
        per_video: dict[str, dict[str, dict[str, Any]]] = {}
        for video, stats in self._videos.items():
            per_video[video] = {
                lab: {"value": s.mean, "frames": s.count, "skipped": s.skipped} for lab, s in stats.items()
            }
        metrics: dict[str, dict[str, Any]] = {}
        for label in self.labels:
            entries = [v[label] for v in self._videos.values() if label in v]
            frames = sum(s.count for s in entries)
            total = sum(s.total for s in entries)
            scored = [s.mean for s in entries if s.count]
            frame_mean = total / frames if frames else math.nan
            video_mean = float(np.mean(scored)) if scored else math.nan
            info = metric_info(label)
            pooling = info.pooling if info else "frames"
            metrics[label] = {
                **_info_fields(label),
                "available": True,
                "value": video_mean if pooling == "videos" else frame_mean,
                "frame_mean": frame_mean,
                "video_mean": video_mean,
                "frames": frames,
                "skipped": sum(s.skipped for s in entries),
                "videos": len(scored),
            }
        for label, reason in self._unavailable.items():
            metrics[label] = {**_info_fields(label), "available": False, "reason": reason}
        return metrics, per_video


def _info_fields(label: str) -> dict[str, Any]:
    info = metric_info(label)
    if info is None:
        return {
            "name": label.split("[", 1)[0],
            "better": None,
            "pooling": "frames",
            "proxy_for": None,
            "description": "",
        }
    return {
        "name": info.name,
        "better": info.better,
        "pooling": info.pooling,
        "proxy_for": info.proxy_for,
        "description": info.description,
    }


# ------------------------------------------------------------------------------------------ results file


def build_results(
    accumulator: MetricAccumulator,
    checkpoint: str | None = None,
    data: str | None = None,
    protocol: str | None = None,
    notes: Mapping[str, Any] | None = None,
    aucon_reason: str | None = AUCON_UNAVAILABLE_REASON,
) -> dict[str, Any]:
    """The results document. AUCON is listed as unavailable with ``aucon_reason`` unless the accumulator
    holds AUCON values (pass ``aucon_reason=None`` to leave it out entirely)."""
    metrics, per_video = accumulator.summary()
    if aucon_reason is not None and "AUCON" not in metrics:
        metrics["AUCON"] = {**_info_fields("AUCON"), "available": False, "reason": aucon_reason}
    return {
        "format": RESULTS_FORMAT,
        "format_version": RESULTS_FORMAT_VERSION,
        "dagan_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": checkpoint,
        "data": data,
        "protocol": protocol,
        "notes": dict(notes or {}),
        "metrics": metrics,
        "per_video": per_video,
    }


def _encode(obj: Any) -> Any:
    """Replace non-finite floats by strings so that the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_NUMBER_FIELDS = ("value", "frame_mean", "video_mean")


def _decode_numbers(doc: dict[str, Any]) -> None:
    for entry in doc["metrics"].values():
        for key in _NUMBER_FIELDS:
            if isinstance(entry.get(key), str) and entry[key] in _NONFINITE:
                entry[key] = _NONFINITE[entry[key]]
    for video in doc.get("per_video", {}).values():
        for entry in video.values():
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("value"), str)
                and entry["value"] in _NONFINITE
            ):
                entry["value"] = _NONFINITE[entry["value"]]


def write_results(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write the results JSON atomically (temporary file in the same folder, then rename)."""
    return write_json_atomic(path, _encode(dict(doc)), indent=2)


class ResultsFileError(InputError):
    """A file given as a results file is missing, not JSON, or not a dagan results file."""


def validate_results(doc: Any, where: str = "results") -> dict[str, Any]:
    """Check the structure of a parsed results document; raise :class:`ResultsFileError` naming it."""
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        raise ResultsFileError(f'{where} is not a dagan results file (no "format": "{RESULTS_FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or version > RESULTS_FORMAT_VERSION:
        raise ResultsFileError(
            f"{where} has results format version {version!r}; this dagan reads up to {RESULTS_FORMAT_VERSION}"
        )
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise ResultsFileError(f'{where} is not a dagan results file (no "metrics" object)')
    for label, entry in metrics.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("available"), bool):
            raise ResultsFileError(f'{where}: metric {label!r} has no "available" flag')
        if entry["available"] and not isinstance(entry.get("value"), (int, float, str)):
            raise ResultsFileError(f"{where}: metric {label!r} has no value")
    if not isinstance(doc.get("per_video", {}), dict):
        raise ResultsFileError(f'{where}: "per_video" is not an object')
    return doc


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results file; non-finite number strings become floats again."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ResultsFileError(f"results file {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsFileError(f"cannot read results file {path}: {err}") from err
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsFileError(
            f"{path} is not a dagan results file (not JSON: {err.msg} at line {err.lineno})"
        ) from err
    validate_results(doc, str(path))
    _decode_numbers(doc)
    return doc


# ------------------------------------------------------------------------------------------------ Markdown


def format_value(value: Any, label: str = "") -> str:
    """A metric value for a table: 4 significant decimals (PSNR 2 decimals), ∞ for infinity."""
    if isinstance(value, str):
        value = _NONFINITE.get(value, value)
    if not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if label.startswith("PSNR") or label.startswith("PRMSE"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _arrow(label: str) -> str:
    info = metric_info(label)
    return {"higher": "↑", "lower": "↓"}.get(info.better, "") if info else ""


def _ordered_labels(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for doc in docs:
        for label in doc["metrics"]:
            if label not in seen:
                seen.append(label)
    known = [lab for lab in METRICS if lab in seen]
    return known + [lab for lab in seen if lab not in METRICS]


def _cell(entry: Mapping[str, Any] | None, label: str) -> str:
    if entry is None:
        return "not run"
    if not entry.get("available", False):
        return "n/a"
    text = format_value(entry.get("value"), label)
    if entry.get("skipped"):
        text += f" ({entry['skipped']} skipped)"
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(doc: Mapping[str, Any], title: str | None = None) -> str:
    """One results file as a Markdown table (metric, value, frames, skipped) plus notes on unavailable
    metrics and proxies."""
    return compare_markdown([doc], [title or str(doc.get("checkpoint") or "results")])


def compare_markdown(docs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Side-by-side Markdown table of several results documents (one column each; with exactly two, a
    Δ column = second − first). Unavailable metrics show "n/a" with their reasons listed below the table."""
    if len(docs) != len(names):
        raise ValueError("need one name per results document")
    labels = _ordered_labels(docs)
    two = len(docs) == 2
    header = ["metric", ""] + [_escape(n) for n in names] + (["Δ"] if two else [])
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", ":-:"] + ["--:"] * (len(header) - 2)) + "|",
    ]
    for label in labels:
        entries = [doc["metrics"].get(label) for doc in docs]
        row = [f"`{label}`", _arrow(label)] + [_cell(e, label) for e in entries]
        if two:
            a, b = entries
            if a and b and a.get("available") and b.get("available"):
                va, vb = (_NONFINITE[x] if isinstance(x, str) and x in _NONFINITE else x
                          for x in (a["value"], b["value"]))
                row.append(format_value(vb - va, label) if not (math.isinf(va) or math.isinf(vb)) else "–")
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("| | " + " | ".join(_escape(n) for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for key in ("checkpoint", "data", "protocol", "dagan_version", "created"):
        lines.append(f"| {key} | " + " | ".join(_escape(str(doc.get(key) or "–")) for doc in docs) + " |")
    notes: list[str] = []
    for label in labels:
        reasons = {
            doc["metrics"][label].get("reason")
            for doc in docs
            if label in doc["metrics"] and not doc["metrics"][label].get("available", False)
        }
        for reason in sorted(r for r in reasons if r):
            notes.append(f"- `{label}` unavailable: {reason}")
        info = metric_info(label)
        if info and info.proxy_for:
            notes.append(f"- `{label}` is a proxy for {info.proxy_for}, not the paper's metric")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
