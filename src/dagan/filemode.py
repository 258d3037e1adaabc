"""Permissions for files written atomically through ``tempfile.mkstemp``.

``mkstemp`` creates files readable by their owner only (0600); a user's outputs and checkpoints should get the
usual permissions instead (0666 minus the process umask), as a plain ``open(path, "w")`` would give them.
"""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """0o666 & ~umask (the umask is read without changing it for other threads for longer than needed)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_public(fd: int) -> None:
    """Give an ``mkstemp`` file descriptor the default file permissions."""
    os.fchmod(fd, default_file_mode())
