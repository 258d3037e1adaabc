"""``dagan <command>``: the command-line entry point.

User mistakes (:class:`dagan.errors.DaganError` — config errors included —, missing or unreadable files, a
read-only or full disk, a binary file where text was expected) become a single ``dagan: error: …`` line and
exit status 2 — never a traceback. This is the one place where such errors are turned into that line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dagan import __version__
from dagan.commands import COMMANDS
from dagan.errors import DaganError
from dagan.protected_inputs import LabelledPath, check_outputs_spare_inputs


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error form: one ``dagan: error: …`` line (and a pointer to ``--help``)
    instead of a usage block, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dagan: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dagan", description="DaGAN++ depth-aware talking-head generation")
    parser.add_argument("--version", action="version", version=f"dagan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"dagan.commands.{name.replace('-', '_')}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run, _module=module, _parser=cmd)
    return parser


def _labelled_paths(args: argparse.Namespace, names: Sequence[str], replaced: Sequence[str] = ()) -> list[LabelledPath]:
    """The paths held by the arguments ``names`` (``"dest"`` or ``"dest/file"``), labelled as the user typed
    them (``--driving``, ``OUT``)."""
    labels = {a.dest: (max(a.option_strings, key=len) if a.option_strings else (a.metavar or a.dest))
              for a in args._parser._actions}
    out = []
    for name in names:
        dest, _, inner = name.partition("/")
        values = getattr(args, dest, None)
        for value in values if isinstance(values, list | tuple) else [values]:
            if value is None or value == "":
                continue
            path = Path(value) / inner if inner else Path(value)
            label = labels.get(dest, dest) + (f" file {inner}" if inner else "")
            out.append(LabelledPath(label, path, replaced=not inner and dest in replaced))
    return out


def check_outputs_spare_inputs_of(args: argparse.Namespace) -> None:
    """Refuse a command line whose outputs would overwrite one of its inputs (see dagan.protected_inputs)."""
    module = args._module
    check_outputs_spare_inputs(
        _labelled_paths(args, getattr(module, "INPUTS", ())),
        _labelled_paths(args, getattr(module, "OUTPUTS", ()), getattr(module, "REPLACED_OUTPUTS", ())),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # reported by the sub-command's parser, so the message points at its --help
            getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        check_outputs_spare_inputs_of(args)
        return int(args._run(args) or 0)
    except DaganError as exc:
        return _error(str(exc))
    except OSError as exc:  # missing, unreadable or unwritable files, read-only or full file systems
        return _error(describe_os_error(exc))
    except UnicodeDecodeError as exc:
        return _error(f"expected a text file, found binary data ({exc.reason} at byte {exc.start})")
    except KeyboardInterrupt:
        print("dagan: interrupted", file=sys.stderr)
        return 130


def describe_os_error(exc: OSError) -> str:
    """``[Errno 30] Read-only file system: 'out.mp4'`` → ``Read-only file system: 'out.mp4'``."""
    if exc.strerror is None:
        return str(exc) or type(exc).__name__
    names = [repr(str(n)) for n in (exc.filename, exc.filename2) if n is not None]
    return exc.strerror + (f": {' -> '.join(names)}" if names else "")


def _error(message: str) -> int:
    print(f"dagan: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
