"""Per-stage wall time: a :class:`StageClock`, and :func:`instrument`, which makes a reenactment model report
its networks' and its generator's steps to one.

How a stage is timed. A stage is a ``with clock.stage(name):`` block: the device is synchronised at its start
and end (``torch.cuda.synchronize`` on CUDA, ``torch.mps.synchronize`` on MPS; nothing to wait for on CPU)
and ``time.perf_counter`` is read at both, so the stage holds exactly the device work launched inside it.
Stages nest, and each records its *exclusive* time (its own minus the stages inside it), so the stages of a
pass add up to its wall time less the loop's own bookkeeping: the generator's ``synthesize`` less its warps
and attention blocks is the decoder, and the per-batch model call less its networks is the tensor
conversion, motion transfer and read-back.

How the model's steps become stages. :func:`instrument` wraps methods on the model *instances* (an instance
attribute shadows the class's method; it is deleted again afterwards): the depth net's and keypoint detector's
``forward``; the generator's ``motion`` (dense motion), ``synthesize`` (the decoder, exclusive),
``warp_features`` (once per encoder level), ``deform_image`` (the full-resolution image warp of
``dagan-spade``) and ``encode_source``; and every attention block's ``attend``. Forward hooks would not do: the
warps and attention blocks are methods, not module calls. A warp's or attention block's level is read from
the size of its feature map: level i is at resolution / 2^i. A wrapper costs about a microsecond per call;
on a GPU the synchronisations remove the overlap of CPU launches and GPU work between stages, which is why
the end-to-end time on a GPU comes from a separate, uninstrumented pass (:mod:`dagan.bench.pipeline`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from dagan.models.attention import CrossModalAttention, DaganAttention
from dagan.models.factory import ReenactmentModels

__all__ = ["StageClock", "instrument"]


class StageClock:
    """Exclusive wall time per stage name, summed over calls, in :attr:`totals` (seconds).

    Stages are recorded only while :attr:`recording` is true (a pass turns it off for its once-per-video
    work); a disabled clock (``enabled=False``) neither synchronises nor records, for uninstrumented passes.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = device
        self.enabled = enabled
        self.recording = True
        self.totals: dict[str, float] = {}
        self._nested: list[float] = []  # per open stage: seconds spent in the stages inside it

    def sync(self) -> None:
        """Wait until the device has finished the work launched so far."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.sync()
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            self.sync()
            elapsed = time.perf_counter() - start
            inner = self._nested.pop()
            if self._nested:
                self._nested[-1] += elapsed
            if self.recording:
                self.totals[name] = self.totals.get(name, 0.0) + elapsed - inner


def level_of(feature_map: Tensor, resolution: int) -> int:
    """The encoder level of a B×C×h×w feature map of a resolution² model: log2(resolution / w)."""
    return round(math.log2(resolution / feature_map.shape[-1]))


#: where an attention block's ``attend`` takes the B×C×h×w feature map (its other arguments are tokens)
FEATURE_ARGUMENT = {CrossModalAttention: 0, DaganAttention: 1}


@contextlib.contextmanager
def instrument(models: ReenactmentModels, clock: StageClock, resolution: int) -> Iterator[None]:
    """Within the block, ``models`` report their steps to ``clock`` (see the module docstring for the stage
    names); nothing is wrapped when the clock is disabled."""
    wrapped: list[tuple[Any, str]] = []

    def wrap(owner: Any, method: str, name: Callable[[tuple[Any, ...]], str]) -> None:
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with clock.stage(name(args)):
                return original(*args, **kwargs)

        setattr(owner, method, timed)
        wrapped.append((owner, method))

    def fixed(label: str) -> Callable[[tuple[Any, ...]], str]:
        return lambda args: label

    def attention_label(index: int) -> Callable[[tuple[Any, ...]], str]:
        return lambda args: f"attention L{level_of(args[index], resolution)}"

    if clock.enabled:
        generator = models.generator
        if models.depth_net is not None:
            wrap(models.depth_net, "forward", fixed("depth"))
        wrap(models.kp_detector, "forward", fixed("keypoints"))
        wrap(generator, "encode_source", fixed("source encoding"))
        wrap(generator, "motion", fixed("motion"))
        wrap(generator, "synthesize", fixed("decoder"))
        wrap(generator, "warp_features", lambda args: f"warp L{level_of(args[0], resolution)}")
        wrap(generator, "deform_image", fixed("warp image"))
        for module in generator.modules():
            index = FEATURE_ARGUMENT.get(type(module))
            if index is not None:
                wrap(module, "attend", attention_label(index))
    try:
        yield
    finally:
        for owner, method in reversed(wrapped):
            delattr(owner, method)  # the class's method is visible again
