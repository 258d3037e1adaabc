"""The ``pairs`` protocol (DaGAN/MCNet style): (source frame, driving frame) pairs of one video from a CSV."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dagan.data.datasets import VideoEntry
from dagan.data.video import probe_video, read_frames
from dagan.errors import InputError
from dagan.eval.protocols.base import Protocol, UnitContext
from dagan.eval.scoring import SAME_IDENTITY_METRICS
from dagan.eval.units import Unit, pair_units
from dagan.infer.engine import batched

if TYPE_CHECKING:
    from dagan.eval.evaluation import EvaluationOptions


class PairsProtocol(Protocol):
    """Each CSV row names a video, a source frame and a driving frame; the driving frame is the ground
    truth; absolute motion. A video's pairs are grouped by source frame (one source preparation each);
    saved frames are named ``<source>-<driving>.png``."""

    name = "pairs"
    description = (
        "same identity, frame pairs from a CSV (video, source frame, driving frame): the driving frame "
        "is the ground truth; absolute motion; metrics pooled over pairs"
    )
    help = (
        "(source frame, driving frame) pairs of one video from --pairs CSV with columns\n"
        "video,source_frame,driving_frame (or video,source,driving); 0-based frame indices"
    )
    motion = "absolute"
    metrics = (*SAME_IDENTITY_METRICS, "aucon", "depth")

    def check_options(self, opts: EvaluationOptions) -> None:
        if opts.pairs is None:
            raise InputError("the pairs protocol needs --pairs CSV (columns video,source_frame,driving_frame)")

    def units(self, opts: EvaluationOptions, entries: Sequence[VideoEntry]) -> list[Unit]:
        assert opts.pairs is not None
        return pair_units(Path(opts.pairs), entries, opts.max_pairs)

    def run(self, unit: Unit, ctx: UnitContext) -> None:
        a, record = ctx.animator, ctx.record
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
        gt = ctx.ground_truth(unit.video)
        try:
            for s, drivers in by_source.items():
                source = read_frames(unit.video.path, [s], size=ctx.resolution)[0]
                state = a.prepare_source(source, crop=False)
                transfer = a.motion_transfer(state, None, relative=False)
                for chunk in batched(drivers, ctx.batch_size):
                    driving = read_frames(unit.video.path, chunk, size=ctx.resolution)
                    generated = ctx.generate(driving, state, transfer)
                    ctx.scorer.same_identity(record, generated, driving, ctx.faces, gt, chunk)
                    for d, frame in zip(chunk, generated):
                        ctx.save(frame, f"{s:07d}-{d:07d}.png")
                    record.frames += len(chunk)
        finally:
            if gt is not None:
                gt.close()
