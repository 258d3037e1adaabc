"""No command writes over one of its own inputs.

Every path a command reads is an *input*; every file or folder it writes is an *output*. Before anything is
written, :func:`check_outputs_spare_inputs` refuses, with one line, an output that

* is an input file itself — the same path, or another name for it (a symbolic or hard link: compared with
  ``os.path.samefile``, i.e. by device and inode);
* is an input folder, or lies inside one (writing into the content of a folder being read);
* is a folder that the command replaces as a whole (a frame folder from an earlier run) while an input lies
  inside it.

An input that merely sits inside an output folder the command writes *into* is allowed (``dagan depth
photo.jpg -o .`` is ordinary use): commands that write fixed names into a folder list those files as outputs
of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dagan.errors import InputError
from dagan.paths import PathLike


@dataclass(frozen=True)
class LabelledPath:
    """A path and how the user named it (an option such as ``--driving``), for the message."""

    label: str
    path: Path
    #: For an output folder: the command replaces it as a whole (rather than writing files into it).
    replaced: bool = False

    @classmethod
    def of(cls, label: str, path: PathLike, replaced: bool = False) -> LabelledPath:
        return cls(label, Path(path), replaced)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies below it, after resolving symbolic links."""
    inner, outer = inner.resolve(), outer.resolve()
    return inner == outer or inner.is_relative_to(outer)


def find_clash(inputs: Iterable[LabelledPath], outputs: Iterable[LabelledPath]) -> str | None:
    """The message for the first output that would write over an input (see the module docstring), or None."""
    inputs, outputs = list(inputs), list(outputs)
    for out in outputs:
        for inp in inputs:
            if _same_file(out.path, inp.path) and not inp.path.is_dir():
                return (
                    f"{out.label} '{out.path}' is the same file as {inp.label} '{inp.path}': "
                    "refusing to overwrite an input; choose another output path"
                )
            if inp.path.is_dir() and _inside(out.path, inp.path):
                where = "is" if out.path.resolve() == inp.path.resolve() else "is inside"
                return (
                    f"{out.label} '{out.path}' {where} the input folder {inp.label} '{inp.path}': "
                    "refusing to write into an input; choose another output path"
                )
            if out.replaced and out.path.is_dir() and _inside(inp.path, out.path):
                return (
                    f"{out.label} '{out.path}' would be replaced, but it holds {inp.label} '{inp.path}': "
                    "refusing to delete an input; choose another output folder"
                )
    return None


def check_outputs_spare_inputs(inputs: Iterable[LabelledPath], outputs: Iterable[LabelledPath]) -> None:
    """Raise :class:`InputError` (one line) when an output would write over an input."""
    message = find_clash(inputs, outputs)
    if message is not None:
        raise InputError(message)
