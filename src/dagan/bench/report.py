"""The report of ``dagan bench``: a first line naming the machine, one Markdown table, and the JSON record.

Table: one row per case — arch, size, device, precision, batch, ``once`` (ms per video), one column per stage
(ms per frame; ``warp`` and ``attention`` give their total and, in brackets, each encoder level, L i being at
size/2^i), end to end (ms per frame) and frames per second with their range over the repeats, and peak
memory (MB). Stage and once figures are medians over the repeats.

JSON (:func:`as_json`)::

    {"machine":  {"cpu", "cpu_cores", "torch", "threads", "cuda", "python", "dagan"},
     "settings": {"frames", "warmup", "repeats", "detector", "source", "driving"},
     "results":  [{"arch", "size", "config", "device", "precision", "batch_size", "frames",
                   "once_ms", "stages_ms_per_frame": {STAGE: …}, "end_to_end_ms_per_frame",
                   "frames_per_second", "peak_memory_mb", "memory"}, …],
     "order":    [[repeat, result index], …],
     "ratios":   [{"arch", "reference", "size", "device", "precision", "batch_size", "end_to_end"}, …],
     "skipped":  [{"config", "arch", "size", "device", "precision", "reason"}, …]}

Every figure is ``{"median", "min", "max", "values"}`` over the repeats; ``frames`` is the number of timed
frames (rounded up to whole batches); ``memory`` says what ``peak_memory_mb`` measures
(:class:`dagan.bench.memory.PeakMemory`); ``cuda`` is the GPU's name or null.

Ratios (:func:`ratios_to_reference`): each arch's end-to-end time per frame over DaGAN's in the same setting
(size, device, precision, batch), repeat by repeat: each ratio compares two runs of the same pass over the
cases (a few minutes apart at most), so slow drifts of the machine largely cancel out of it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import dagan
from dagan.assets import DEMO_DRIVING, DEMO_SOURCE

from .suite import CaseResult, Skipped, Spread

#: the arch every other one is compared with (the official CVPR-2022 DaGAN)
REFERENCE_ARCH = "dagan"

__all__ = ["REFERENCE_ARCH", "STAGE_COLUMNS", "Ratio", "as_json", "machine", "machine_line", "markdown",
           "ratios_to_reference"]

#: the table's stage columns, in pipeline order; a stage's column is the first word of its name
STAGE_COLUMNS = (
    "decode", "detect", "crop", "depth", "keypoints", "motion", "warp", "attention", "decoder", "convert", "paste",
    "encode",
)  # fmt: skip


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict[str, Any]:
    """What the benchmark runs on: CPU and the cores this process may use, torch and its threads, the GPU."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(),
        "cpu_cores": cores,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "dagan": dagan.__version__,
    }


def machine_line(info: dict[str, Any], frames: int, warmup: int, repeats: int) -> str:
    gpu = f", GPU {info['cuda']}" if info["cuda"] else ", no GPU"
    return (
        f"dagan bench on {info['cpu']} ({info['cpu_cores']} cores{gpu}), torch {info['torch']}, "
        f"{info['threads']} threads; {frames} timed frames after {warmup} warm-up (whole batches), "
        f"{repeats} repeat(s)"
    )


@dataclass(frozen=True)
class Ratio:
    """``result``'s end-to-end time per frame over ``reference``'s, per repeat."""

    result: CaseResult
    reference: CaseResult
    end_to_end: Spread

    def as_dict(self) -> dict[str, Any]:
        case = self.result.case
        return {"arch": case.config.arch, "reference": self.reference.case.config.arch,
                "size": case.config.resolution, "device": str(case.device), "precision": case.precision,
                "batch_size": case.batch_size, "end_to_end": self.end_to_end.as_dict()}  # fmt: skip


def _setting(result: CaseResult) -> tuple[int, str, str, int]:
    case = result.case
    return case.config.resolution, str(case.device), case.precision, case.batch_size


def ratios_to_reference(results: Sequence[CaseResult], reference: str = REFERENCE_ARCH) -> list[Ratio]:
    """Every other arch's end-to-end time over ``reference``'s in the same setting, repeat by repeat."""
    refs = {_setting(r): r for r in results if r.case.config.arch == reference}
    ratios = []
    for r in results:
        ref = refs.get(_setting(r))
        if ref is None or ref is r or r.case.config.arch == reference:
            continue
        pairs = zip(r.samples, ref.samples, strict=True)  # one sample per repeat in every case
        values = tuple(a.times.end_to_end_ms / b.times.end_to_end_ms for a, b in pairs if b.times.end_to_end_ms > 0)
        if values:
            ratios.append(Ratio(r, ref, Spread(values)))
    return ratios


def _ratio_line(ratio: Ratio) -> str:
    size, device, precision, batch = _setting(ratio.result)
    values = ratio.end_to_end.values
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    return (
        f"- {ratio.result.case.config.arch} / {ratio.reference.case.config.arch}, {size} {device} {precision} "
        f"batch {batch}: {ratio.end_to_end.median:.2f}×{spread}"
    )


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _with_range(spread: Spread) -> str:
    values = spread.values
    if len(values) == 1:
        return _ms(values[0])
    return f"{_ms(spread.median)} ({_ms(min(values))}–{_ms(max(values))})"


def _stage_cell(result: CaseResult, column: str) -> str:
    """The column's median total; for a column of several parts (levels), each part in brackets."""
    parts = [name for name in result.stage_names if name.split(" ")[0] == column]
    if not parts:
        return "–"
    total = result.spread(lambda s: sum(s.times.stages_ms.get(name, 0.0) for name in parts)).median
    labels = [name.partition(" ")[2] for name in parts]
    if not any(labels):
        return _ms(total)
    if len(parts) == 1:
        return f"{_ms(total)} ({labels[0]})"
    return f"{_ms(total)} ({', '.join(f'{label} {_ms(result.stage(n).median)}' for label, n in zip(labels, parts))})"


def _columns(results: Sequence[CaseResult]) -> list[str]:
    found = {name.split(" ")[0] for r in results for name in r.stage_names}
    return [*STAGE_COLUMNS, *sorted(found - set(STAGE_COLUMNS))]


def markdown(
    results: Sequence[CaseResult], skipped: Sequence[Skipped], info: dict[str, Any], frames: int, warmup: int,
    repeats: int,
) -> str:
    """The machine line, the table and its legend, as Markdown."""
    columns = _columns(results)
    header = ["arch", "size", "device", "precision", "batch", "once (ms)", *columns,
              "end to end (ms/frame)", "frames/s", "peak memory (MB)"]  # fmt: skip
    lines = [machine_line(info, frames, warmup, repeats), "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]  # fmt: skip
    for r in results:
        case = r.case
        e2e = r.spread(lambda s: s.times.end_to_end_ms)
        fps = r.spread(lambda s: s.frames_per_second)
        row = [
            case.config.arch, str(case.config.resolution), str(case.device), case.precision, str(case.batch_size),
            _ms(r.spread(lambda s: s.times.once_ms).median), *(_stage_cell(r, c) for c in columns),
            _with_range(e2e), _with_range(fps), f"{r.spread(lambda s: s.peak_memory_mb).median:.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"Medians over {repeats} repeat(s), in ms per frame unless marked; end to end and frames/s with their "
        "range. once: per video (source face, crop tube, anchor keypoints, paste-back mask). warp, attention: "
        "total (each encoder level; L i is at size/2^i). Peak memory: CPU rows, the resident set's high-water "
        "mark during the run; CUDA rows, torch.cuda.max_memory_allocated.",
    ]
    ratios = ratios_to_reference(results)
    if ratios:
        lines += ["", f"End-to-end time per frame relative to {REFERENCE_ARCH} (median of the per-repeat ratios, "
                  "with their range):", *(_ratio_line(r) for r in ratios)]  # fmt: skip
    if skipped:
        what = [f"{s.arch} {s.size} {s.device} {s.precision} ({s.reason})" for s in skipped]
        lines.append(f"Skipped: {'; '.join(what)}.")
    return "\n".join(lines) + "\n"


def as_json(
    results: Sequence[CaseResult], order: Sequence[tuple[int, int]], skipped: Sequence[Skipped],
    info: dict[str, Any], frames: int, warmup: int, repeats: int, detector: str,
) -> dict[str, Any]:
    """The JSON record (see the module docstring)."""
    rows = []
    for r in results:
        case = r.case
        rows.append({
            "arch": case.config.arch,
            "size": case.config.resolution,
            "config": case.config_name,
            "device": str(case.device),
            "precision": case.precision,
            "batch_size": case.batch_size,
            "frames": r.samples[0].times.frames,
            "once_ms": r.spread(lambda s: s.times.once_ms).as_dict(),
            "stages_ms_per_frame": {name: r.stage(name).as_dict() for name in r.stage_names},
            "end_to_end_ms_per_frame": r.spread(lambda s: s.times.end_to_end_ms).as_dict(),
            "frames_per_second": r.spread(lambda s: s.frames_per_second).as_dict(),
            "peak_memory_mb": r.spread(lambda s: s.peak_memory_mb).as_dict(),
            "memory": r.samples[-1].memory,
        })  # fmt: skip
    return {
        "machine": info,
        "settings": {"frames": frames, "warmup": warmup, "repeats": repeats, "detector": detector,
                     "source": DEMO_SOURCE.name, "driving": DEMO_DRIVING.name},  # fmt: skip
        "results": rows,
        "order": [list(pair) for pair in order],
        "ratios": [r.as_dict() for r in ratios_to_reference(results)],
        "skipped": [
            {"config": s.config_name, "arch": s.arch, "size": s.size, "device": s.device, "precision": s.precision,
             "reason": s.reason}
            for s in skipped
        ],  # fmt: skip
    }
