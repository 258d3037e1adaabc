"""What every evaluation protocol is: :class:`Protocol`, and the :class:`UnitContext` its units run in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dagan.data.datasets import VideoEntry
from dagan.data.frame_folder_writer import FrameFolderWriter
from dagan.eval.ground_truth import GroundTruthFrames
from dagan.eval.parts import UnitRecord
from dagan.eval.scoring import FrameScorer
from dagan.eval.units import Unit

if TYPE_CHECKING:  # only annotations: dagan.eval.evaluation imports the protocols
    from dagan.eval.evaluation import EvaluationOptions

__all__ = ["Protocol", "UnitContext", "limited"]


@dataclass
class UnitContext:
    """What a protocol evaluates one unit with: the model, the scorer, where the unit's values go
    (``record``, and ``faces``: its face-metric pipeline or None) and where its generated frames go
    (``frames``: the ``--save-frames`` folder writer, or None)."""

    animator: Any
    scorer: FrameScorer
    record: UnitRecord
    faces: Any
    frames: FrameFolderWriter | None
    batch_size: int
    max_frames: int | None

    @property
    def resolution(self) -> int:
        """The model resolution R: every frame is resized to R×R before it is used or scored."""
        return int(self.animator.resolution)

    def ground_truth(self, entry: VideoEntry) -> GroundTruthFrames | None:
        """The ground-truth depth of a video when the depth metrics run and it has one, else None."""
        if not self.scorer.depth or entry.ground_truth is None:
            return None
        return GroundTruthFrames(entry.ground_truth)

    def generate(
        self, driving: np.ndarray, state: Any, transfer: Any, anchor_rows: Sequence[int] = ()
    ) -> np.ndarray:
        """Generated frames (N×R×R×3 uint8) for driving frames N×R×R×3, without smoothing."""
        out = self.animator.generate_frames(driving, state, transfer, None, anchor_rows)
        return self.animator.to_uint8(out)

    def save(self, frame: np.ndarray, name: str | None = None) -> None:
        """Keep a generated frame (``--save-frames``): the next ``NNNNNNN.png``, or ``name``."""
        if self.frames is not None:
            self.frames.write(frame, name)


class Protocol:
    """One evaluation protocol: the units it evaluates and how one unit is generated and scored.

    A protocol is a subclass in its own module, registered in :data:`dagan.eval.protocols.PROTOCOLS`.
    """

    name: ClassVar[str]
    #: One sentence for the results file (``notes.protocol_description``).
    description: ClassVar[str]
    #: ``dagan evaluate --help`` text; continuation lines are indented by the help.
    help: ClassVar[str]
    #: "absolute" or "relative" driving motion.
    motion: ClassVar[str]
    #: The ``--metrics`` groups that apply (also the default), in report order.
    metrics: ClassVar[tuple[str, ...]]
    #: Whether the protocol runs on a dataset split (``--data``); False when it brings its own test set.
    needs_data: ClassVar[bool] = True

    def check_options(self, opts: EvaluationOptions) -> None:
        """Raise InputError for options this protocol cannot work with."""

    def units(self, opts: EvaluationOptions, entries: Sequence[VideoEntry]) -> list[Unit]:
        """The units to evaluate among the split's videos ``entries``."""
        raise NotImplementedError

    def run(self, unit: Unit, ctx: UnitContext) -> None:
        """Generate and score one unit into ``ctx.record`` (and ``ctx.faces``), saving frames with
        ``ctx.save``."""
        raise NotImplementedError

    def notes(self, opts: EvaluationOptions, units: Sequence[Unit]) -> dict[str, Any]:
        """Protocol-specific entries of the results file's ``notes``."""
        return {}


def limited(frames: Iterator[np.ndarray], count: int | None) -> Iterator[np.ndarray]:
    """The first ``count`` frames (all when None)."""
    for i, frame in enumerate(frames):
        if count is not None and i >= count:
            return
        yield frame
