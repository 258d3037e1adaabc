"""Which samples each training step sees: a pure function of (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would.

A :class:`StepBatchSampler` yields the batches of steps ``start .. end−1`` of a run; ``batch(step)`` depends
on nothing else than the seed and the step. Each trainer keeps the order it has always used, so a checkpoint
written mid-epoch by an earlier version resumes onto the same data:

* :class:`EpochBatchSampler` (reenactment): epoch e is ``torch.randperm(N)`` seeded by ``seed + e`` (the
  permutation of ``torch.utils.data.DistributedSampler``) cut into ⌊N/B⌋ whole global batches of B samples
  (the rest is dropped), so step n lies in epoch ⌊n / steps_per_epoch⌋. With W processes, process r takes
  positions r, r+W, r+2W, … of each global batch: global step n sees the same samples whatever W. Its keys are
  ``(epoch, index)`` pairs for :class:`EpochItems`.
* :class:`StreamBatchSampler` (depth): the epochs' permutations (seeded by a hash of (seed, epoch)) laid end
  to end, batch n being samples nB … (n+1)B−1 of that stream; keys ``(index, hflip, tflip)`` with the flips
  seeded per (epoch, position).

:func:`step_loader` wraps a sampler in the :class:`~torch.utils.data.DataLoader` of a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["EpochBatchSampler", "EpochItems", "StepBatchSampler", "StreamBatchSampler", "step_loader"]


class StepBatchSampler(Sampler[list[Any]]):
    """The batches (lists of dataset keys) of steps ``start .. end−1``; subclasses define :meth:`batch`."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = int(start), int(end)
        self._perms: dict[int, Tensor] = {}  # the current epoch's permutation (one kept: epochs only advance)

    def batch(self, step: int) -> list[Any]:
        """The dataset keys of step ``step`` (counted from 0)."""
        raise NotImplementedError

    def _permutation(self, epoch: int, num_items: int, seed: int) -> Tensor:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))}
        return self._perms[epoch]

    def __iter__(self) -> Iterator[list[Any]]:
        for step in range(self.start, self.end):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(self.end - self.start, 0)


class EpochBatchSampler(StepBatchSampler):
    """Whole global batches per epoch, each process taking its interleaved share (see the module docstring)."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, end: int, rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__(start, end)
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.n, self.batch_size, self.seed = int(num_items), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = self._permutation(epoch, self.n, self.seed + epoch)
        first = within * self.batch_size + self.rank
        return [(epoch, int(i)) for i in perm[first : (within + 1) * self.batch_size : self.world_size]]


class EpochItems(Dataset):
    """``items[(epoch, index)]`` is ``dataset[index]`` as drawn in ``epoch`` (the dataset's ``set_epoch``).

    The epoch travels with the key, so DataLoader worker processes (each with its own copy of the dataset)
    draw the same items as the main process would.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def _mix(*values: int) -> int:
    """A stable 63-bit seed from integers (independent of Python's hash randomisation)."""
    digest = hashlib.blake2b(",".join(map(str, values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StreamBatchSampler(StepBatchSampler):
    """Epoch permutations end to end, with optional seeded flips (see the module docstring)."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, end: int,
        hflip: bool = False, tflip: bool = False,
    ) -> None:
        super().__init__(start, end)
        self.n, self.batch_size, self.seed = int(num_items), int(batch_size), int(seed)
        self.hflip, self.tflip = hflip, tflip

    def batch(self, step: int) -> list[tuple[int, bool, bool]]:
        out = []
        for k in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, pos = divmod(k, self.n)
            flips = _mix(self.seed, epoch, pos, 7)
            index = int(self._permutation(epoch, self.n, _mix(self.seed, epoch))[pos])
            out.append((index, self.hflip and bool(flips & 1), self.tflip and bool(flips & 2)))
        return out


def step_loader(dataset: Dataset, sampler: StepBatchSampler, num_workers: int, pin_memory: bool) -> DataLoader:
    """The DataLoader of a run: ``sampler``'s batches of ``dataset``. Its own generator (for worker seeds) keeps
    the global random state untouched, so the state saved in a checkpoint is the one the next step sees."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
