"""Where animated frames go: one small interface, :class:`FrameSink`, for every output of a video job.

A sink is a context manager that takes :class:`AnimatedFrame` s; its output appears under its final name
only when the ``with`` block ends normally, and nothing is left behind when it raises.

* :class:`VideoFileSink` — an H.264 video (optionally with the driving audio);
* :class:`FrameFolderSink` — lossless PNGs ``0000000.png, 0000001.png, …`` in a folder;
* :class:`SideBySideSink` — source | driving | result (| extra panels such as the source's depth) side by
  side, each panel resized to one height, passed on to other sinks.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dagan.data.frame_folder_writer import FrameFolderWriter
from dagan.data.video import VideoWriter
from dagan.errors import InputError
from dagan.paths import PathLike

__all__ = [
    "PANEL_HEIGHT",
    "AnimatedFrame",
    "FrameFolderSink",
    "FrameSink",
    "SideBySideSink",
    "VideoFileSink",
    "depth_preview",
    "stack_panels",
]

#: Minimum height of every panel of a side-by-side video (small models' crops are enlarged to it).
PANEL_HEIGHT = 256


@dataclass(frozen=True)
class AnimatedFrame:
    """One output frame and the driving frame it was made from (all H×W×3 uint8)."""

    result: np.ndarray  # the generated frame: pasted back into the source picture, or the model crop
    driving: np.ndarray  # the driving video's frame as decoded
    driving_crop: np.ndarray  # the model-resolution driving crop the result was generated from


class FrameSink(Protocol):
    """An output of animated frames: ``with sink: sink.write(frame) …``; the output is kept only when the
    block ends normally."""

    def __enter__(self) -> FrameSink: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def write(self, frame: AnimatedFrame) -> None: ...


class VideoFileSink:
    """The result frames as an H.264 yuv420p video at ``rate``, with the audio of ``audio_from`` (if any);
    :attr:`frame_size` is the (height, width) of the frames written."""

    def __init__(
        self, path: PathLike, rate: float | Fraction, audio_from: PathLike | None = None, crf: int = 18
    ) -> None:
        self.path = Path(path)
        self.rate, self.audio_from, self.crf = rate, audio_from, crf
        self.frame_size = (0, 0)
        self._writer: VideoWriter | None = None

    def __enter__(self) -> VideoFileSink:
        self._writer = VideoWriter(self.path, self.rate, audio_from=self.audio_from, crf=self.crf)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._writer is not None
        self._writer.__exit__(exc_type, exc, tb)

    def write(self, frame: AnimatedFrame) -> None:
        assert self._writer is not None
        self._writer.write(frame.result)
        self.frame_size = frame.result.shape[:2]


def _is_frame_file(path: Path) -> bool:
    return path.suffix == ".png" and len(path.stem) == 7 and path.stem.isdigit() and path.is_file()


class FrameFolderSink:
    """The result frames as lossless PNGs in ``folder``. An existing ``folder`` is replaced only when it
    holds nothing but an earlier run's frames (``0000000.png`` …); otherwise it is refused here, so no
    user file is ever deleted."""

    def __init__(self, folder: PathLike) -> None:
        folder = Path(folder)
        if folder.exists():
            others = [p.name for p in folder.iterdir() if not _is_frame_file(p)]
            if others:
                raise InputError(
                    f"frames folder '{folder}' already exists and holds other files (e.g. {others[0]})"
                )
        # compress level 1: fast, the frames are written as they are generated
        self._writer = FrameFolderWriter(folder, replace=True, compress_level=1)

    def __enter__(self) -> FrameFolderSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def write(self, frame: AnimatedFrame) -> None:
        self._writer.write(frame.result)


def stack_panels(panels: Sequence[np.ndarray], height: int = PANEL_HEIGHT) -> np.ndarray:
    """Panels (H×W×3 uint8) side by side, each resized to ``height`` with its aspect kept and an even
    width (so the total width suits yuv420p video)."""
    out = []
    for p in panels:
        width = max(2, 2 * round(p.shape[1] * height / p.shape[0] / 2))
        if p.shape[:2] != (height, width):
            p = np.asarray(Image.fromarray(p).resize((width, height), Image.Resampling.BICUBIC))
        out.append(p)
    return np.concatenate(out, axis=1)


def depth_preview(disparity: torch.Tensor, size: int = PANEL_HEIGHT) -> np.ndarray:
    """1×1×R×R disparity → size×size×3 uint8 colour picture (bilinear up-sampling; near is bright)."""
    from dagan.infer.depth_export import colorize

    up = F.interpolate(disparity.float(), size=(size, size), mode="bilinear", align_corners=False)
    return colorize(up[0, 0].cpu().numpy())


class SideBySideSink:
    """``source | driving | result | *extra`` side by side (see :func:`stack_panels`), written as the result
    frames of ``sinks``. The driving panel is the model's driving crop, or with ``whole_driving`` the
    driving frame as decoded."""

    def __init__(
        self,
        sinks: Sequence[FrameSink],
        source: np.ndarray,
        *,
        whole_driving: bool = False,
        extra: Sequence[np.ndarray] = (),
        height: int = PANEL_HEIGHT,
    ) -> None:
        self.sinks = list(sinks)
        self.source, self.whole_driving, self.extra, self.height = source, whole_driving, list(extra), height
        self._stack = ExitStack()

    def __enter__(self) -> SideBySideSink:
        with ExitStack() as stack:  # a sink that fails to open closes (discards) those opened before it
            for sink in self.sinks:
                stack.enter_context(sink)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def write(self, frame: AnimatedFrame) -> None:
        driving = frame.driving if self.whole_driving else frame.driving_crop
        panels = stack_panels([self.source, driving, frame.result, *self.extra], self.height)
        composed = replace(frame, result=panels)
        for sink in self.sinks:
            sink.write(composed)
