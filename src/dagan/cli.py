"""``dagan <command>``: the command-line entry point.

User mistakes (:class:`dagan.errors.DaganError`, :class:`dagan.config.ConfigError`, missing files) become a
single ``dagan: error: …`` line and exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dagan import __version__
from dagan.commands import COMMANDS
from dagan.config import ConfigError
from dagan.errors import DaganError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagan", description="DaGAN++ depth-aware talking-head generation")
    parser.add_argument("--version", action="version", version=f"dagan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"dagan.commands.{name.replace('-', '_')}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (DaganError, ConfigError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"dagan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dagan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
