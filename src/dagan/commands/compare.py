"""``dagan compare a.json b.json [...]``: results files side by side as a Markdown table.

Columns are the results files (named by file name, or ``--names``), rows the metrics under their exact
variant labels with the better direction (↑/↓); with two files a Δ column (second − first) is added.
Metrics a file could not compute show "n/a" with the reason below the table; metrics it did not run show
"not run".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dagan.atomic_files import write_text_atomic
from dagan.errors import InputError
from dagan.eval.results import compare_markdown, read_results

NAME = "compare"
HELP = "print evaluation results files side by side as a Markdown table (ablations, checkpoints)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("results",)
OUTPUTS: tuple[str, ...] = ("output",)


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


def run(args: argparse.Namespace) -> int:
    names = args.names if args.names else column_names(args.results)
    if len(names) != len(args.results):
        raise InputError(f"--names gives {len(names)} names for {len(args.results)} results files")
    docs = [read_results(p) for p in args.results]
    table = compare_markdown(docs, names)
    sys.stdout.write(table)
    if args.output:
        write_text_atomic(Path(args.output), table)
    return 0
