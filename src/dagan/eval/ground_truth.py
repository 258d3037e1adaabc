"""Ground-truth depth of a synthetic clip, read frame by frame for the depth metrics of ``dagan evaluate``."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dagan.errors import InputError

__all__ = ["GroundTruthFrames"]


class GroundTruthFrames:
    """Per-frame reader of ``depth`` (T×H×W) and ``mask`` (T×H×W) in a ground-truth ``.npz``
    (:func:`dagan.data.synthetic.save_ground_truth`) that decompresses only up to the frame asked for, so a
    clip's depth maps are never all in memory. Sequential reads are cheapest; no pickles are loaded."""

    ARRAYS = ("depth", "mask")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"cannot read ground truth '{self.path}': {exc}") from None
        self._arrays: dict[str, tuple[Any, int, np.dtype, tuple[int, ...]]] = {}
        try:
            for name in self.ARRAYS:
                self._arrays[name] = self._open(name)
        except BaseException:
            self.close()
            raise

    def _open(self, name: str) -> tuple[Any, int, np.dtype, tuple[int, ...]]:
        member = f"{name}.npy"
        if member not in self._zip.namelist():
            raise InputError(f"ground truth '{self.path}' has no '{name}' array")
        fh = self._zip.open(member)
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(fh)
        if fortran or dtype.hasobject or len(shape) != 3:
            raise InputError(f"ground truth '{self.path}': '{name}' is not a C-ordered T×H×W array")
        return fh, fh.tell(), dtype, tuple(shape)

    @property
    def num_frames(self) -> int:
        return self._arrays["depth"][3][0]

    def frame(self, name: str, index: int) -> np.ndarray:
        """Frame ``index`` of array ``name`` ("depth" or "mask")."""
        fh, offset, dtype, shape = self._arrays[name]
        if not 0 <= index < shape[0]:
            raise InputError(f"ground truth '{self.path}' has {shape[0]} frames, frame {index} was asked for")
        size = int(np.prod(shape[1:])) * dtype.itemsize
        fh.seek(offset + index * size)
        return np.frombuffer(fh.read(size), dtype=dtype).reshape(shape[1:])

    def close(self) -> None:
        for fh, *_ in self._arrays.values():
            fh.close()
        self._zip.close()

    def __enter__(self) -> GroundTruthFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
