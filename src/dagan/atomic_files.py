"""Files written atomically: a temporary file in the target folder, renamed over the target when complete.

One core, :func:`atomic_output`, does it for every kind of file: a fresh hidden temporary file beside the
target (same file system, so the rename is atomic), the usual permissions, the rename when the write
completed, and removal of the temporary file when it failed. :func:`write_text_atomic`,
:func:`write_json_atomic`, :func:`write_png_atomic` and :func:`atomic_torch_save` are thin writers over it.
Folders are built the same way: in a :func:`staging_folder` beside the target, moved into place by
:func:`publish_folder`.

``mkstemp`` creates files readable by their owner only (0600); a user's outputs and checkpoints get the usual
permissions instead (0666 minus the process umask), as a plain ``open(path, "w")`` would give them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def default_file_mode() -> int:
    """0o666 & ~umask (the umask is read without changing it for other threads for longer than needed)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_public(fd: int) -> None:
    """Give an ``mkstemp`` file descriptor the default file permissions."""
    os.fchmod(fd, default_file_mode())


def temporary_file_beside(path: Path, *, keep_extension: bool = False) -> Path:
    """Create a new, empty hidden file in ``path``'s folder (created if missing), with the default permissions.

    Its name is ``.NAME.XXXXXXXX.part``, which no ``*.EXT`` pattern of the finished files matches; with
    ``keep_extension`` it is ``.STEM.XXXXXXXX.part.EXT`` instead, for writers that choose the file format
    from the name (FFmpeg, ``numpy.savez``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_extension:
        prefix, suffix = f".{path.stem}.", f".part{path.suffix}"
    else:
        prefix, suffix = f".{path.name}.", ".part"
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        make_public(fd)
    finally:
        os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, keep_extension: bool = False) -> Iterator[Path]:
    """Yield a temporary file (:func:`temporary_file_beside`) to write ``path``'s content to; it is renamed
    to ``path`` when the ``with`` block ends normally and removed when the block raises, so ``path`` is
    either its previous self or the complete new file, never a partial one."""
    path = Path(path)
    tmp = temporary_file_beside(path, keep_extension=keep_extension)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; an interrupted write leaves no partial file behind."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = None) -> Path:
    """Write ``data`` as strict JSON (UTF-8 text, NaN and infinities refused, a final newline) atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def write_png_atomic(path: str | os.PathLike[str], image: Any, *, compress_level: int | None = None) -> Path:
    """Write an image (a Pillow image, or an array Pillow reads: H×W×3 ``uint8``, H×W ``uint8``/``uint16``)
    as a PNG atomically. ``compress_level`` is zlib's 0–9 (default: zlib's default, 6)."""
    from PIL import Image

    path = Path(path)
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    options = {} if compress_level is None else {"compress_level": compress_level}
    with atomic_output(path) as tmp:
        picture.save(tmp, format="PNG", **options)
    return path


def staging_folder(folder: str | os.PathLike[str]) -> Path:
    """A new, empty hidden folder beside ``folder`` (``.NAME.XXXXXXXX.part``) in which to build ``folder``
    before :func:`publish_folder` moves it into place.

    Unlike ``tempfile.mkdtemp`` (mode 0700), it is created with the usual folder permissions (0777 minus the
    umask, like ``mkdir``), so the output folder it becomes is readable by others as any folder would be.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.part"
        try:
            tmp.mkdir()  # mode 0o777 & ~umask
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"cannot create a temporary folder beside '{folder}'")


def publish_folder(staging: Path, folder: str | os.PathLike[str], *, replace: bool = False) -> Path:
    """Rename the finished ``staging`` folder to ``folder``. An existing ``folder`` is deleted first when
    ``replace`` (only now, once the new content is complete), else FileExistsError."""
    folder = Path(folder)
    if folder.exists():
        if not replace:
            raise FileExistsError(f"'{folder}' already exists")
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return folder


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically: written beside it, flushed to disk (fsync), then renamed,
    so an interrupted write (even SIGKILL) leaves the previous file, never a truncated one."""
    import torch  # imported here: most users of this module write text and should not pay for torch

    path = Path(path)
    with atomic_output(path) as tmp, tmp.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path
