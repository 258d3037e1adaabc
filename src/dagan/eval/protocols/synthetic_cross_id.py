"""The ``synthetic-cross-id`` protocol: cross-identity reenactment scored against its exact ground truth.

Real cross-identity benchmarks have no ground truth (nobody filmed person A making person B's motion), so
they score identity similarity and landmark proxies only. Synthetic identities can do better: for each of
the fixed pairs :data:`dagan.data.cross_identity.TEST_PAIRS` (held-out test identities A ≠ B wearing photos
of two different real people, and a performance seed), identity B performing the performance is the
driving video, and identity A performing the same performance is the exact target
(:func:`dagan.data.cross_identity.cross_identity_triplet`). The source image is the target's frame 0 (A in
the pose and expression of driving frame 0), and motion is transferred relative to driving frame 0 with
adapt scale — as ``dagan animate`` does by default — so the correct output is unambiguous.

Scores: L1, PSNR, SSIM and LPIPS of every generated frame against the target frame, the depth error of
the generated frames (the model's own depth net on each generated frame against A's ground-truth depth,
head pixels), and motion transfer from B's video to the generated one (head yaw/pitch/roll and mouth
opening: amplitude ratio and correlation, :mod:`dagan.eval.motion_transfer`). The test set is rendered
once at :data:`RENDER_SIZE` into ``<output>.parts/synthetic-test-v1/`` (deterministic; later runs reuse
it) and resized to the model resolution like any dataset, so results of models of any resolution are
comparable. No ``--data`` is needed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dagan.data.datasets import VideoEntry
from dagan.data.video import iter_frames, list_frame_files
from dagan.errors import InputError
from dagan.eval.ground_truth import GroundTruthFrames
from dagan.eval.protocols.base import Protocol, UnitContext, limited
from dagan.eval.units import Unit
from dagan.infer.engine import batched

if TYPE_CHECKING:
    from dagan.eval.evaluation import EvaluationOptions

#: Rendered frame size of the test set (frames are resized to the model resolution when read).
RENDER_SIZE = 256
#: Frames per test performance (4 s at 25 fps).
RENDER_FRAMES = 100
#: Name of the rendered test set's folder; a new version of the renderer gets a new name.
TEST_SET_NAME = "synthetic-test-v1"


def test_set_folder(output: Path) -> Path:
    """Where the rendered test set of the results file ``output`` lives (inside its ``.parts`` folder)."""
    return output.with_name(output.name + ".parts") / TEST_SET_NAME


def render_test_set(folder: Path, pairs: Sequence[tuple[int, int, int]] | None = None,
                    size: int = RENDER_SIZE, frames: int = RENDER_FRAMES) -> list[tuple[VideoEntry, VideoEntry]]:
    """Render the (driving, target) frame folders of each test pair into ``folder`` (skipping those already
    complete: a frame folder appears only when all its frames are written) and return their entries.
    The target's ``<name>.npz`` holds its ground truth (depth, head mask, pose, …)."""
    from dagan.data.cross_identity import TEST_PAIRS, cross_identity_triplet
    from dagan.data.frame_folder_writer import write_png_frames
    from dagan.data.identities import sample_identity
    from dagan.data.performances import sample_performance
    from dagan.data.synthetic import FPS, save_ground_truth

    entries = []
    for seed_a, seed_b, seed_performance in pairs if pairs is not None else TEST_PAIRS:
        a, b = sample_identity(seed_a), sample_identity(seed_b)
        stem = f"{a.name}-by-{b.name}-p{seed_performance}"
        driving, target = folder / f"{stem}.driving", folder / f"{stem}.target"
        gt = folder / f"{stem}.target.npz"
        if not (_complete(driving, frames) and _complete(target, frames) and gt.is_file()):
            performance = sample_performance(seed_performance, frames, FPS)
            triplet = cross_identity_triplet(a, b, performance, size)
            save_ground_truth(gt, triplet.target, {"identity": a.to_json()})
            write_png_frames(driving, triplet.driving.frames)
            write_png_frames(target, triplet.target.frames)
        entries.append((VideoEntry(driving, driving.name, b.name, "test"),
                        VideoEntry(target, target.name, a.name, "test")))
    return entries


def _complete(folder: Path, frames: int) -> bool:
    return folder.is_dir() and len(list_frame_files(folder)) == frames


class SyntheticCrossIdProtocol(Protocol):
    """Held-out synthetic identity A animated by identity B's performance and scored against A performing
    it (the exact target); relative motion anchored at driving frame 0 with adapt scale."""

    name = "synthetic-cross-id"
    description = (
        "synthetic cross identity with ground truth: held-out synthetic identity A (source: A at the "
        "performance's frame 0) driven by identity B performing it, relative motion anchored at driving "
        "frame 0 with adapt scale, scored against A performing it (rendered exactly); fixed pairs and seeds"
    )
    help = (
        "held-out synthetic identity A driven by identity B, scored against A rendered with B's\n"
        "pose and expression sequence (exact cross-identity ground truth); fixed pairs and seeds,\n"
        f"rendered once into OUTPUT.parts/{TEST_SET_NAME}/ (no --data needed)"
    )
    motion = "relative"
    metrics = ("l1", "psnr", "ssim", "lpips", "lpips-vgg", "depth", "motion")
    needs_data = False

    def check_options(self, opts: EvaluationOptions) -> None:
        if opts.pairs is not None:
            raise InputError("--pairs is not for the synthetic-cross-id protocol: its pairs are fixed")

    def units(self, opts: EvaluationOptions, entries: Sequence[VideoEntry]) -> list[Unit]:
        from dagan.data.cross_identity import TEST_PAIRS

        pairs = TEST_PAIRS[: opts.max_pairs] if opts.max_pairs else TEST_PAIRS
        rendered = render_test_set(test_set_folder(Path(opts.output)), pairs)
        return [Unit(f"{target.identity}-by-{driving.identity}", driving, target) for driving, target in rendered]

    def run(self, unit: Unit, ctx: UnitContext) -> None:
        a, record = ctx.animator, ctx.record
        assert unit.source is not None and unit.source.ground_truth is not None
        targets = iter_frames(unit.source.path, size=ctx.resolution)
        drivings = iter_frames(unit.video.path, size=ctx.resolution)
        gt = GroundTruthFrames(unit.source.ground_truth) if ctx.scorer.depth else None
        motion = ctx.scorer.motion_stream()
        try:
            source = next(targets)
            state = a.prepare_source(source, crop=False)
            transfer = None
            index = 0
            pairs = zip(limited(drivings, ctx.max_frames), itertools.chain([source], targets))
            for batch in batched(pairs, ctx.batch_size):
                driving = np.stack([d for d, _ in batch])
                target = np.stack([t for _, t in batch])
                rows: list[int] = []
                if transfer is None:  # relative motion anchored at driving frame 0
                    transfer = a.motion_transfer(state, driving[:1], relative=True, adapt_scale=True)
                    rows = [0]
                generated = ctx.generate(driving, state, transfer, rows)
                indices = list(range(index, index + len(batch)))
                ctx.scorer.same_identity(record, generated, target, None, gt, indices)
                if motion is not None:
                    motion.update(driving, generated)
                for frame in generated:
                    ctx.save(frame)
                index += len(batch)
                record.frames += len(batch)
            if motion is not None:
                motion.finish(record)
        finally:
            drivings.close()
            targets.close()
            if gt is not None:
                gt.close()

    def notes(self, opts: EvaluationOptions, units: Sequence[Unit]) -> dict[str, Any]:
        return {
            "synthetic_test_set": f"{len(units)} fixed pairs, {RENDER_FRAMES} frames each, rendered at "
            f"{RENDER_SIZE}² ({TEST_SET_NAME}); targets are exact renderings of identity A performing "
            "identity B's pose and expression sequence",
        }
