"""Argument types shared by the commands: numbers are checked when the command line is parsed, so a bad
value ends with one line (``dagan: error: argument --crop-scale: must be ≥ 1, got 0 (see 'dagan animate
--help')``) before any model or file is touched."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def bounded(
    kind: type[int] | type[float],
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type`` that parses ``kind`` and requires ``low ≤ value ≤ high`` (strict where ``*_open``)."""

    def parse(text: str) -> int | float:
        value = _number(text, kind)
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '≥'} {low:g}, got {value:g}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '≤'} {high:g}, got {value:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: Counts: frames, steps, batch sizes, workers (≥ 1).
positive_int = bounded(int, 1)
#: Indices and sizes where 0 is meaningful (≥ 0).
non_negative_int = bounded(int, 0)
#: Scales, durations (> 0).
positive_float = bounded(float, 0, low_open=True)
#: Strengths and thresholds where 0 means "off" (≥ 0).
non_negative_float = bounded(float, 0)
#: A fraction of a data set that must leave something on the other side: [0, 1).
fraction = bounded(float, 0, 1, high_open=True)
#: A probability-like threshold or overlap: [0, 1].
unit_interval = bounded(float, 0, 1)
#: Crop side / face-box side: below 1 the square crop would cut into the face box.
crop_scale = bounded(float, 1)


def network_size(text: str) -> int:
    """A square network input side: a multiple of 32 (five stride-2 stages), at least 64."""
    value = int(bounded(int, 64)(text))
    if value % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {value}")
    return value


#: H.264 constant rate factor: 0 (lossless) … 51.
crf = bounded(int, 0, 51)
