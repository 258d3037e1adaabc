"""The one training loop of both trainers (reenactment and depth): step-indexed and exactly resumable.

A trainer (:class:`Trainer`) owns its networks, optimisers and objective; this loop owns everything around
them, with one policy for both::

    for step in start+1 .. end:                     (``step`` = optimisation steps done after this one)
        metrics = trainer.step(next batch)           the batch is a pure function of (seed, step)
        every log_every steps, the first and the last:  metrics → metrics.jsonl, log.txt, TensorBoard
        every visual_every steps and the last:          trainer.visuals() → visuals/, TensorBoard
        every checkpoint_every steps, the last, or when stopping early:
                                                     trainer.state_dict() → checkpoints/step-N.pt + latest.pt
        stop early after max_seconds (checked after each step) or on Ctrl-C

Ctrl-C lets the step in progress finish, writes a checkpoint and raises :class:`KeyboardInterrupt` again (a
second Ctrl-C quits at once, without one). A checkpoint therefore always holds whole steps, and a run resumed
from it (``trainer.load_state_dict``) continues exactly as if it had not stopped. Under ``torchrun`` every
process runs the loop; they stop together (:func:`~dagan.train.distributed.any_rank`) and rank 0 alone writes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from dagan.atomic_files import atomic_torch_save
from dagan.errors import InputError
from dagan.train.distributed import DistEnv, any_rank, barrier
from dagan.train.run import TrainingRun

__all__ = ["LoopPlan", "TrainResult", "Trainer", "check_not_finished", "end_step", "train_loop"]


class Trainer(Protocol):
    """What the loop drives: one optimisation step at a time, and the whole state as a checkpoint dict."""

    #: optimisation steps done so far (0 for a fresh trainer; restored by :meth:`load_state_dict`)
    steps_done: int
    #: keys of the step's metrics shown beside the progress bar
    progress_keys: tuple[str, ...]

    def step(self, batch: Any) -> dict[str, float]:
        """Train on one batch; the step's scalars to log (averaged over processes)."""
        ...

    def visuals(self) -> dict[str, Tensor]:
        """Columns of the image grid of the last step (see :func:`dagan.train.run.image_grid`)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint of everything the next step depends on (weights, optimisers, step, random state)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], source: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`state_dict` (``source`` names it in errors)."""
        ...


@dataclass(frozen=True)
class LoopPlan:
    """Where a run ends and what it writes on the way; all counts are optimisation steps."""

    #: the step to train to (counted from 0, also when resuming)
    end: int
    #: where ``end`` comes from, for messages (e.g. ``--max-steps 500``)
    end_source: str
    log_every: int
    visual_every: int
    checkpoint_every: int
    #: stop (with a checkpoint) once this many seconds have passed since the run started
    max_seconds: float | None = None


@dataclass
class TrainResult:
    """Where a training call got to."""

    run_dir: Path
    step: int
    #: the step the run was asked to reach
    end: int
    end_source: str
    #: the last checkpoint written by this call (None on ranks > 0)
    checkpoint: Path | None = None
    #: the scalars of the last logged step
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: why the run stopped before ``end`` (None when it completed)
    stopped_by: str | None = None

    @property
    def stopped_early(self) -> bool:
        return self.stopped_by is not None

    def summary(self) -> str:
        """One line for the command line."""
        if self.stopped_by is None:
            head = f"finished: {_reached(self)}"
        else:
            head = f"stopped at step {self.step} of {self.end} ({self.stopped_by})"
        return f"{head}, in {self.seconds:.0f} s; checkpoint {self.checkpoint}"


def end_step(max_steps: int | None, default: int, default_source: str) -> tuple[int, str]:
    """The step a run trains to and where that comes from: ``max_steps`` when given, else the config's
    ``default``. A run needs at least one step (one-line :class:`InputError`)."""
    end, source = (default, default_source) if max_steps is None else (max_steps, f"--max-steps {max_steps}")
    if end < 1:
        raise InputError(f"nothing to train: {source} asks for {end} steps; pass --max-steps N (N >= 1)")
    return int(end), source


def check_not_finished(resume: str | Path, step: int, end: int, end_source: str) -> None:
    """One-line :class:`InputError` when the checkpoint ``resume`` (at ``step``) already reached ``end``."""
    if step >= end:
        raise InputError(
            f"{resume} is already at step {step}, the end of training ({end_source}): pass a larger "
            "--max-steps to train on"
        )


def train_loop(
    trainer: Trainer,
    batches: Iterable[Any],
    run: TrainingRun,
    plan: LoopPlan,
    *,
    env: DistEnv | None = None,
    resumed_from: str | Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    started: float | None = None,
    show_progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``trainer`` from its ``steps_done`` to ``plan.end`` on ``batches`` (the batches of exactly those
    steps), following the policy of the module docstring. ``started`` is the ``clock`` time the run began
    (default: now) for ``plan.max_seconds``."""
    env = env or DistEnv()
    start = trainer.steps_done
    t0 = clock() if started is None else started
    result = TrainResult(run.dir, start, plan.end, plan.end_source)
    if resumed_from is not None:
        run.log(f"resumed from {resumed_from} at step {start}")
    bar = run.progress(plan.end, initial=start, desc=desc, show=show_progress)

    def save(step: int, final: bool) -> None:
        if env.is_main and result.checkpoint != run.checkpoint_path(step):
            obj = trainer.state_dict()
            result.checkpoint = atomic_torch_save(obj, run.checkpoint_path(step))
            _link_latest(result.checkpoint, run.latest_checkpoint, obj)
            run.log(f"{'final checkpoint' if final else 'checkpoint'} at step {step}: {result.checkpoint}")

    with _ctrl_c_after_the_step() as interrupted:
        batch_iter: Iterator[Any] = iter(batches)
        for step in range(start + 1, plan.end + 1):
            try:
                batch = next(batch_iter)
            except Exception:
                if interrupted():  # a DataLoader worker quit on the Ctrl-C: stop as between two steps
                    break
                raise
            metrics = trainer.step(batch)
            result.step = step
            bar.update(1, {k.rsplit("/", 1)[-1]: metrics[k] for k in trainer.progress_keys if k in metrics})
            if step % plan.log_every == 0 or step in (start + 1, plan.end):
                result.metrics = metrics
                run.scalars(step, metrics)
            if env.is_main and (step % plan.visual_every == 0 or step == plan.end):
                run.images(step, "train", trainer.visuals())
            now = clock()  # read after every step, also without a time limit (for the result's seconds)
            out_of_time = plan.max_seconds is not None and now - t0 >= plan.max_seconds
            stop = any_rank(out_of_time or interrupted(), env) and step < plan.end
            if stop:
                result.stopped_by = (
                    "Ctrl-C" if interrupted()
                    else f"time limit of {plan.max_seconds:g} s" if out_of_time
                    else "another process stopped"
                )
            if step % plan.checkpoint_every == 0 or step == plan.end or stop:
                save(step, final=step == plan.end or stop)
            if stop:
                break
        if interrupted() and result.step < plan.end and result.stopped_by is None:  # Ctrl-C while loading
            result.stopped_by = "Ctrl-C"
            if result.step > start:
                save(result.step, final=True)
    bar.close()
    barrier(env)
    result.seconds = clock() - t0
    if result.stopped_by is None:
        run.log(f"finished: {_reached(result)}")
        return result
    run.log(f"stopped at step {result.step} of {plan.end} ({result.stopped_by}); resume with --resume "
            f"{run.latest_checkpoint}")
    if result.stopped_by == "Ctrl-C":
        raise KeyboardInterrupt
    return result


def _reached(result: TrainResult) -> str:
    return f"reached step {result.step}, the requested end of training ({result.end_source})"


@contextmanager
def _ctrl_c_after_the_step() -> Iterator[Callable[[], bool]]:
    """Within the block, a first Ctrl-C (SIGINT) only sets a flag (read by the yielded function) so the loop
    can finish its step and save; the handler then reverts to the previous one, so a second Ctrl-C raises
    at once. Signal handlers can only be set in the main thread: elsewhere Ctrl-C behaves as usual."""
    hit = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield hit.is_set  # (None: a handler installed outside Python, which cannot be put back)
        return

    def handler(signum: int, frame: Any) -> None:
        hit.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield hit.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _link_latest(path: Path, latest: Path, obj: Mapping[str, Any]) -> None:
    """Point ``latest`` at the checkpoint ``path`` atomically: a hard link renamed over ``latest`` (no second
    copy of a file of several hundred MB); where hard links are unsupported, an atomic second save."""
    tmp = latest.with_name(f".{latest.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, latest)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_torch_save(obj, latest)
