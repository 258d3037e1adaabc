"""``dagan data check ROOT``: inspect a dataset in the ``ROOT/{train,test}/<video>`` layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagan.data.datasets import check_dataset

NAME = "data"
HELP = "dataset tools (check: count videos, identities and frames; list unreadable files)"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("root",)
OUTPUTS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="probe every video of ROOT/train and ROOT/test",
                           description="Probe every video of ROOT/train and ROOT/test; print counts per "
                                       "split and the unreadable files. Exit status 1 if no video is readable.")
    check.add_argument("root", type=Path, help="dataset folder holding train/ and/or test/")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        report = check_dataset(args.root)
        print(report.format())
        return 0 if report.readable > 0 else 1
    raise AssertionError(f"unknown data action {args.data_command}")  # argparse rejects it first
