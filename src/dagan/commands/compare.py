"""``dagan compare a.json b.json [...]``: results files side by side as a Markdown table.

Columns are the results files (named by file name, or ``--names``), rows the metrics under their exact
variant labels with the better direction (↑/↓); with two files a Δ column (second − first) is added.
Metrics a file could not compute show "n/a" with the reason below the table; metrics it did not run show
"not run".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from dagan.errors import InputError
from dagan.eval.results import compare_markdown, read_results
from dagan.filemode import make_public

NAME = "compare"
HELP = "print evaluation results files side by side as a Markdown table (ablations, checkpoints)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS.json", help="results files (dagan evaluate)")
    parser.add_argument(
        "--names", nargs="+", metavar="NAME", help="column titles, one per file (default: the file names)"
    )
    parser.add_argument("--output", "-o", metavar="FILE.md", help="also write the table to this file")


def column_names(paths: list[str]) -> list[str]:
    """File names without ``.json``; the full path where two files share a name."""
    stems = [Path(p).name.removesuffix(".json") for p in paths]
    return [s if stems.count(s) == 1 else p for s, p in zip(stems, paths)]


def _write_atomic(path: Path, text: str) -> None:
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


def run(args: argparse.Namespace) -> int:
    names = args.names if args.names else column_names(args.results)
    if len(names) != len(args.results):
        raise InputError(f"--names gives {len(names)} names for {len(args.results)} results files")
    docs = [read_results(p) for p in args.results]
    table = compare_markdown(docs, names)
    sys.stdout.write(table)
    if args.output:
        _write_atomic(Path(args.output), table)
    return 0
