"""The ``cross-id`` protocol: the first frame of a source video animated by a video of another identity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dagan.data.datasets import VideoEntry
from dagan.data.video import iter_frames
from dagan.eval.protocols.base import Protocol, UnitContext, limited
from dagan.eval.units import DEFAULT_CROSS_ID_PAIRS, Unit, cross_id_units
from dagan.infer.engine import batched

if TYPE_CHECKING:
    from dagan.eval.evaluation import EvaluationOptions


class CrossIdProtocol(Protocol):
    """Relative motion anchored at driving frame 0 with adapt scale, as the literature's cross-identity
    animation. There is no ground truth: CSIM compares the source with the output, PRMSE the driving frame
    with the output. Pairs come from ``--pairs`` (columns ``source,driving``) or are drawn with ``--seed``."""

    name = "cross-id"
    description = (
        "cross identity: the first frame of a source video driven by a video of another identity, "
        "relative motion anchored at driving frame 0 with adapt scale; CSIM source vs generated, PRMSE driving "
        "vs generated"
    )
    help = (
        "first frame of a source video driven by a video of another identity (relative motion);\n"
        "pairs from --pairs CSV with columns source,driving (video names), else all pairs of\n"
        f"different identities, at most --max-pairs (default {DEFAULT_CROSS_ID_PAIRS}) drawn with --seed"
    )
    motion = "relative"
    metrics = ("csim", "prmse", "aucon", "motion")

    def units(self, opts: EvaluationOptions, entries: Sequence[VideoEntry]) -> list[Unit]:
        max_pairs = DEFAULT_CROSS_ID_PAIRS if opts.max_pairs is None and opts.pairs is None else opts.max_pairs
        return cross_id_units(entries, opts.pairs, max_pairs, opts.seed)

    def run(self, unit: Unit, ctx: UnitContext) -> None:
        a = ctx.animator
        assert unit.source is not None
        source_frames = iter_frames(unit.source.path, size=ctx.resolution)
        try:
            source = next(source_frames)
        finally:
            source_frames.close()
        state = a.prepare_source(source, crop=False)
        frames = iter_frames(unit.video.path, size=ctx.resolution)
        motion = ctx.scorer.motion_stream()
        try:
            transfer = None
            for batch in batched(limited(frames, ctx.max_frames), ctx.batch_size):
                driving = np.stack(batch)
                rows: list[int] = []
                if transfer is None:  # relative motion anchored at driving frame 0
                    transfer = a.motion_transfer(state, driving[:1], relative=True, adapt_scale=True)
                    rows = [0]
                generated = ctx.generate(driving, state, transfer, rows)
                ctx.scorer.cross_identity(ctx.record, generated, source, driving, ctx.faces)
                if motion is not None:
                    motion.update(driving, generated)
                for frame in generated:
                    ctx.save(frame)
                ctx.record.frames += len(batch)
            if motion is not None:
                motion.finish(ctx.record)
        finally:
            frames.close()

    def notes(self, opts: EvaluationOptions, units: Sequence[Unit]) -> dict[str, Any]:
        if opts.pairs is not None:
            return {}
        cap = DEFAULT_CROSS_ID_PAIRS if opts.max_pairs is None else opts.max_pairs
        return {
            "cross_id_pairs": f"ordered pairs of videos of different identities: {len(units)} drawn "
            f"(cap {cap or 'none'})",
            "seed": opts.seed,
        }
