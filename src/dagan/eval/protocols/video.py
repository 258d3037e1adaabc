"""The ``video`` protocol (FOMM's reconstruction): each test video animates its own first frame."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dagan.data.datasets import VideoEntry
from dagan.data.video import iter_frames
from dagan.errors import InputError
from dagan.eval.metrics import TCM_LABEL
from dagan.eval.protocols.base import Protocol, UnitContext, limited
from dagan.eval.scoring import SAME_IDENTITY_METRICS, TemporalStream
from dagan.eval.units import Unit, video_units
from dagan.infer.engine import batched

if TYPE_CHECKING:
    from dagan.eval.evaluation import EvaluationOptions


class VideoProtocol(Protocol):
    """Frame 0 of each video is the source; every frame (frame 0 included) is driven with absolute motion
    and compared with itself. Frames are streamed batch by batch; TCM carries the last frame pair over."""

    name = "video"
    description = (
        "same identity, whole video: frame 0 is the source, every frame (frame 0 included) is driven "
        "with absolute motion and is its own ground truth; metrics pooled over frames"
    )
    help = (
        "frame 0 of each test video is the source; every frame is driven (absolute motion) and is\n"
        "its own ground truth (FOMM reconstruction)"
    )
    motion = "absolute"
    metrics = (*SAME_IDENTITY_METRICS, "tcm", "aucon", "depth")

    def check_options(self, opts: EvaluationOptions) -> None:
        if opts.pairs is not None:
            raise InputError("--pairs is for the pairs and cross-id protocols, not video")

    def units(self, opts: EvaluationOptions, entries: Sequence[VideoEntry]) -> list[Unit]:
        return video_units(entries)

    def run(self, unit: Unit, ctx: UnitContext) -> None:
        a, record = ctx.animator, ctx.record
        frames = iter_frames(unit.video.path, size=ctx.resolution)
        gt = ctx.ground_truth(unit.video)
        tcm = TemporalStream() if ctx.scorer.tcm else None
        try:
            first = next(frames)
            state = a.prepare_source(first, crop=False)
            transfer = a.motion_transfer(state, None, relative=False)
            stream = limited(itertools.chain([first], frames), ctx.max_frames)
            index = 0
            for batch in batched(stream, ctx.batch_size):
                driving = np.stack(batch)
                generated = ctx.generate(driving, state, transfer)
                indices = list(range(index, index + len(batch)))
                ctx.scorer.same_identity(record, generated, driving, ctx.faces, gt, indices)
                if tcm is not None:
                    record.add(unit.key, TCM_LABEL, tcm.update(generated, driving))
                for frame in generated:
                    ctx.save(frame)
                index += len(batch)
                record.frames += len(batch)
        finally:
            frames.close()
            if gt is not None:
                gt.close()
