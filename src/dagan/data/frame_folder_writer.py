"""Writing frame folders: a video stored as ``0000000.png``, ``0000001.png``, … in one folder.

The folder is built in a hidden staging folder beside it (:func:`dagan.atomic_files.staging_folder`) and
renamed into place only when complete, so a reader never sees a half-written frame folder and a failed
write leaves nothing behind. Reading frame folders is :mod:`dagan.data.video`'s business (any directory
given as a video is one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from dagan.atomic_files import publish_folder, staging_folder
from dagan.errors import InputError


class FrameFolderWriter:
    """Streaming writer of a frame folder (``0000000.png``, ``0000001.png``, …); use as a context manager.

    Frames are saved as they arrive into a hidden folder beside ``folder`` (a staging folder), which is
    renamed to ``folder`` by a successful :meth:`close`: ``folder`` only ever appears complete. On an
    exception inside the ``with`` block, on :meth:`abort`, or when no frame was written (then
    :class:`InputError`), the staging folder is removed and ``folder`` is left as it was. An existing
    ``folder`` is replaced only with ``replace=True``; otherwise the constructor refuses it.

    A frame is H×W×3 RGB ``uint8``, or float in [0, 1] (rounded to ``uint8``); an H×W ``uint8`` or
    ``uint16`` array is saved as an 8- or 16-bit grey PNG.
    """

    def __init__(self, folder: str | os.PathLike[str], *, replace: bool = False, compress_level: int = 3) -> None:
        self.path = Path(folder)
        self.replace = replace
        self.compress_level = compress_level
        self.frames_written = 0
        self._tmp: Path | None = None
        self._closed = False
        self._refuse_existing()

    def __enter__(self) -> FrameFolderWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _refuse_existing(self) -> None:
        if not self.replace and self.path.exists():
            raise InputError(f"output folder '{self.path}' already exists")

    def write(self, frame: np.ndarray, name: str | None = None) -> None:
        """Save one frame as the next ``NNNNNNN.png``, or as ``name`` (a file name ending in ``.png``)."""
        if self._closed:
            raise RuntimeError(f"FrameFolderWriter for '{self.path}' is closed")
        arr = np.asarray(frame)
        if arr.dtype.kind == "f":
            arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        if self._tmp is None:
            self._tmp = staging_folder(self.path)
        Image.fromarray(arr).save(self._tmp / (name or f"{self.frames_written:07d}.png"),
                                  compress_level=self.compress_level)
        self.frames_written += 1

    def close(self) -> Path:
        """Rename the finished folder to ``folder`` (replacing an existing one when allowed); returns it."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"no frames were written to '{self.path}'")
        assert self._tmp is not None
        try:
            publish_folder(self._tmp, self.path, replace=self.replace)
        except BaseException:
            self.abort()
            raise
        self._tmp = None
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop without producing ``folder``; the staging folder is removed."""
        self._closed = True
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def write_png_frames(folder: str | os.PathLike[str], frames: Iterable[np.ndarray],
                     compress_level: int = 3) -> int:
    """Write ``frames`` as the frame folder ``folder`` with :class:`FrameFolderWriter`, replacing an existing
    folder of that name once every frame was written. Returns the frame count."""
    with FrameFolderWriter(folder, replace=True, compress_level=compress_level) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written
