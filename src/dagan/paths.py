"""The one type for path arguments of the public API: a ``str`` or any ``os.PathLike[str]`` (e.g. ``Path``)."""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]
