"""``dagan bench``: ms per frame of every pipeline stage and end to end, and peak memory, per arch, size,
device, precision and batch size (random weights; the bundled photo and driving clip)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dagan.commands.arguments import non_negative_int, positive_int
from dagan.config import ARCHS, Config
from dagan.errors import InputError

#: the precisions of dagan.infer.engine.PRECISIONS and detectors of dagan.faces.BACKENDS, spelled out so that
#: building the command line does not import torch or the face detectors
PRECISIONS = ("fp32", "fp16", "bf16")
DETECTORS = ("auto", "mediapipe", "dlib", "opencv")

NAME = "bench"
HELP = "time every stage of the animation pipeline, end to end, and peak memory, per arch, size and device"
#: Argument names of what the command reads and writes (see dagan.protected_inputs).
INPUTS: tuple[str, ...] = ("configs",)
OUTPUTS: tuple[str, ...] = ("json", "markdown")

DEFAULT_SIZES = [256, 512]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models (random weights)")
    models.add_argument("--archs", nargs="+", choices=ARCHS, default=None,
                        help=f"architectures (default: all: {' '.join(ARCHS)})")  # fmt: skip
    models.add_argument("--sizes", nargs="+", type=positive_int, default=None, metavar="SIZE",
                        help="resolutions: the arch's full-size 256² config at that size, DaGAN++ with one more "
                             "encoder down block per doubling (default: 256 512)")  # fmt: skip
    models.add_argument("--configs", nargs="+", default=None, metavar="CONFIG",
                        help="time these YAML configs instead of --archs × --sizes")  # fmt: skip
    runs = parser.add_argument_group("runs")
    runs.add_argument("--devices", nargs="+", default=None, metavar="DEVICE",
                      help="cpu, cuda, cuda:N (default: cpu, and cuda when available)")  # fmt: skip
    runs.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None,
                      help="default: fp32 on CPU, all three on CUDA (fp16 runs on CUDA only)")  # fmt: skip
    runs.add_argument("--batch-sizes", nargs="+", type=positive_int, default=None, metavar="N",
                      help="driving frames per generator call (default: 1 on CPU, 1 and 8 on CUDA)")  # fmt: skip
    runs.add_argument("--frames", type=positive_int, default=16, metavar="N",
                      help="timed frames per run, rounded up to whole batches (default 16)")  # fmt: skip
    runs.add_argument("--warmup", type=non_negative_int, default=4, metavar="W",
                      help="untimed frames animated first in each run (default 4)")  # fmt: skip
    runs.add_argument("--repeats", type=positive_int, default=3, metavar="R",
                      help="runs of every case, in alternating order; medians and ranges are over them "
                           "(default 3)")  # fmt: skip
    runs.add_argument("--threads", type=positive_int, default=None, metavar="N",
                      help="torch CPU threads (default: torch's)")  # fmt: skip
    runs.add_argument("--detector", default="auto", choices=DETECTORS,
                      help="face detector backend (default: the best installed)")  # fmt: skip
    out = parser.add_argument_group("output (the table is always printed)")
    out.add_argument("--json", default=None, metavar="OUT", help="also write every figure as JSON")
    out.add_argument("--markdown", default=None, metavar="OUT", help="also write the table to a Markdown file")


def _configs(args: argparse.Namespace) -> list[tuple[str, Config]]:
    from dagan.bench.suite import ARCH_CONFIGS, BASE_SIZE, default_config_dir, sized_config
    from dagan.config import load_config

    if args.configs is not None:
        if args.archs is not None or args.sizes is not None:
            raise InputError("give either --configs or --archs/--sizes, not both")
        return [(str(path), load_config(path)) for path in args.configs]
    config_dir = default_config_dir()
    return [
        (str(config_dir / ARCH_CONFIGS[arch]) + ("" if size == BASE_SIZE else f" at {size}"),
         sized_config(arch, size, config_dir))
        for arch in args.archs or ARCHS
        for size in args.sizes or DEFAULT_SIZES
    ]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch

    from dagan.atomic_files import write_json_atomic, write_text_atomic
    from dagan.bench.report import as_json, machine, markdown
    from dagan.bench.suite import plan_cases, run_suite
    from dagan.devices import resolve_device

    names = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    devices = list(dict.fromkeys(resolve_device(name) for name in names))
    precisions = list(dict.fromkeys(args.precisions)) if args.precisions else None
    batch_sizes = list(dict.fromkeys(args.batch_sizes)) if args.batch_sizes else None
    cases, skipped = plan_cases(_configs(args), devices, precisions, batch_sizes)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results, order = run_suite(cases, args.frames, args.warmup, args.repeats, args.detector,
                               progress=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))  # fmt: skip
    info = machine()
    table = markdown(results, skipped, info, args.frames, args.warmup, args.repeats)
    print(table, end="")
    if args.markdown is not None:
        write_text_atomic(Path(args.markdown), table)
    if args.json is not None:
        record = as_json(results, order, skipped, info, args.frames, args.warmup, args.repeats, args.detector)
        write_json_atomic(Path(args.json), record, indent=2)
    return 0
