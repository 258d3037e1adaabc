"""Files written atomically: a temporary file in the target folder, renamed over the target when complete.

``mkstemp`` creates files readable by their owner only (0600); a user's outputs and checkpoints get the usual
permissions instead (0666 minus the process umask), as a plain ``open(path, "w")`` would give them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_file_mode() -> int:
    """0o666 & ~umask (the umask is read without changing it for other threads for longer than needed)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_public(fd: int) -> None:
    """Give an ``mkstemp`` file descriptor the default file permissions."""
    os.fchmod(fd, default_file_mode())


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; an interrupted write leaves no partial file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    make_public(fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
