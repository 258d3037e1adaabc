"""``dagan evaluate``: run a protocol (:mod:`dagan.eval.protocols`) over a dataset split with a trained model
and write the results JSON (:mod:`dagan.eval.results`) and its Markdown table.

Streaming and resuming: frames are decoded, generated and scored batch by batch, so memory does not grow
with the video length or the dataset size. Each finished unit (a video, or a source → driving pair for
``cross-id``) writes its per-frame metric values to a part file (:mod:`dagan.eval.parts`); a rerun with the
same settings reuses those files, so an interrupted evaluation continues where it stopped. The final results
file is assembled from the part files. With ``--save-frames DIR`` each unit's generated frames go to the
frame folder ``DIR/<unit>``, which appears only once the unit is complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagan import __version__
from dagan.atomic_files import write_text_atomic
from dagan.data.datasets import scan_videos
from dagan.data.frame_folder_writer import FrameFolderWriter
from dagan.errors import InputError
from dagan.eval.parts import UnitRecord, file_fingerprint, open_parts, part_payload, restore_part, unit_description
from dagan.eval.protocols import get_protocol, resolve_metrics
from dagan.eval.protocols.base import UnitContext
from dagan.eval.results import (
    AUCON_UNAVAILABLE_REASON,
    DEPTH_LABELS,
    MetricAccumulator,
    build_results,
    render_markdown,
    write_results,
)
from dagan.eval.scoring import FACE_METRIC_SIZE, FrameScorer
from dagan.resumable import unit_file_stem

__all__ = ["EvaluationOptions", "EvaluationResult", "evaluate"]

#: Compression of ``--save-frames`` PNGs: fast, the frames are for inspection.
SAVED_FRAMES_COMPRESSION = 1


@dataclass
class EvaluationOptions:
    """What ``dagan evaluate`` was asked to do (see its ``--help``)."""

    checkpoint: Path
    data: Path | None
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


@dataclass
class EvaluationResult:
    """What :func:`evaluate` wrote and did."""

    output: Path
    markdown_path: Path
    markdown: str
    document: dict[str, Any]
    computed: list[str] = field(default_factory=list)  # unit keys evaluated in this call
    reused: list[str] = field(default_factory=list)  # unit keys taken from earlier part files


def _check_options(opts: EvaluationOptions) -> None:
    protocol = get_protocol(opts.protocol)
    if opts.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if opts.max_frames is not None and opts.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {opts.max_frames}")
    if opts.max_pairs is not None and opts.max_pairs < 0:
        raise InputError(f"--max-pairs must be >= 0, got {opts.max_pairs}")
    protocol.check_options(opts)
    if protocol.needs_data and opts.data is None:
        raise InputError(f"the {opts.protocol} protocol needs --data ROOT (a dataset with ROOT/{opts.split}/)")
    if not protocol.needs_data and opts.data is not None:
        raise InputError(f"the {opts.protocol} protocol brings its own test set; leave out --data")
    if Path(opts.output).suffix.lower() != ".json":
        raise InputError(f"output '{opts.output}' must end in .json (the Markdown table goes beside it)")
    if Path(opts.output).is_dir():
        raise InputError(f"output '{opts.output}' is a folder, expected a file name")


def evaluate(opts: EvaluationOptions) -> EvaluationResult:
    """Run a protocol over a dataset split and write the results JSON and its Markdown table (see the module
    docstring). Finished units found in ``<output>.parts`` (same settings) are reused unless
    ``opts.resume`` is False."""
    from tqdm import tqdm

    from dagan.infer.animator import Animator

    _check_options(opts)
    protocol = get_protocol(opts.protocol)
    groups = resolve_metrics(opts.protocol, opts.metrics)
    output = Path(opts.output)
    entries = scan_videos(opts.data, opts.split) if opts.data is not None else []
    units = protocol.units(opts, entries)
    animator = Animator.from_checkpoint(
        opts.checkpoint, device=opts.device, depth_checkpoint=opts.depth_checkpoint
    )
    scorer = FrameScorer(animator, groups, animator.device)

    base_signature = {
        "dagan_version": __version__,
        "protocol": opts.protocol,
        "checkpoint_sha256": file_fingerprint(Path(opts.checkpoint)),
        "depth_checkpoint_sha256": file_fingerprint(
            Path(opts.depth_checkpoint) if opts.depth_checkpoint else None
        ),
        "labels": scorer.computed_labels,
        "max_frames": opts.max_frames,
        "face_metric_size": FACE_METRIC_SIZE,
    }
    parts = open_parts(output)
    if not opts.resume:
        parts.forget_all()
    parts.folder.mkdir(parents=True, exist_ok=True)

    accumulator = MetricAccumulator()
    result = EvaluationResult(output, output.with_suffix(".md"), "", {})
    frames_total = 0
    with tqdm(
        total=len(units), desc=f"evaluate {opts.protocol}", unit="video", disable=not opts.progress
    ) as bar:
        for unit in units:
            signature = {**base_signature, "unit": unit_description(unit)}
            payload = _finished(parts.finished(unit.key, signature)) if opts.resume else None
            if payload is None:
                record = UnitRecord(unit.key)
                with _saved_frames(opts.save_frames, unit.key) as frames:
                    ctx = UnitContext(animator, scorer, record, scorer.face_metrics(record), frames,
                                      opts.batch_size, opts.max_frames)
                    protocol.run(unit, ctx)
                parts.record(unit.key, signature, part_payload(record, unit))
                payload = _finished(parts.finished(unit.key, signature))
                assert payload is not None
                result.computed.append(unit.key)
            else:
                result.reused.append(unit.key)
            restore_part(accumulator, unit.key, payload)
            frames_total += int(payload.get("frames", 0))
            bar.set_postfix_str(unit.key[-40:], refresh=False)
            bar.update(1)

    _mark_unavailable(accumulator, scorer)
    notes = {
        "protocol_description": protocol.description,
        "motion": protocol.motion,
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
        notes["pairs_csv_sha256"] = file_fingerprint(Path(opts.pairs))
    if "depth" in groups:
        notes["depth"] = (
            "model's frozen depth net on the generated frame (disparity → depth with the config's min/max "
            "depth, resized to the ground truth) vs the driving frame's ground-truth depth, head-mask pixels"
        )
    notes.update(protocol.notes(opts, units))
    document = build_results(
        accumulator,
        checkpoint=str(opts.checkpoint),
        data=str(Path(opts.data) / opts.split) if opts.data is not None else f"({opts.protocol} test set)",
        protocol=opts.protocol,
        notes=notes,
        aucon_reason=AUCON_UNAVAILABLE_REASON if "aucon" in groups else None,
    )
    write_results(output, document)
    markdown = render_markdown(document, title=Path(opts.checkpoint).name)
    write_text_atomic(result.markdown_path, markdown)
    result.document, result.markdown = document, markdown
    return result


def _finished(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """A part file's payload when it holds per-frame values (anything else is redone)."""
    return payload if payload is not None and isinstance(payload.get("values"), dict) else None


def _saved_frames(folder: Path | None, key: str) -> contextlib.AbstractContextManager[FrameFolderWriter | None]:
    """The ``--save-frames`` writer of a unit (``folder/<unit>``, replacing an earlier run's), or None."""
    if folder is None:
        return contextlib.nullcontext()
    return FrameFolderWriter(folder / unit_file_stem(key), replace=True, compress_level=SAVED_FRAMES_COMPRESSION)


def _mark_unavailable(accumulator: MetricAccumulator, scorer: FrameScorer) -> None:
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
