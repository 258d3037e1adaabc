"""``dagan evaluate``: score a trained model with the literature's protocols; results JSON + Markdown table.

The protocols are described in :mod:`dagan.eval.protocols`, the scoring conventions in
:mod:`dagan.eval.scoring`, streaming and resuming in :mod:`dagan.eval.evaluation` (the part files in
:mod:`dagan.eval.parts`), the results format in :mod:`dagan.eval.results` (``dagan compare`` reads it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dagan.commands.arguments import non_negative_int, positive_int
from dagan.eval.evaluation import EvaluationOptions, evaluate
from dagan.eval.protocols import PROTOCOLS
from dagan.eval.scoring import METRIC_GROUPS
from dagan.eval.units import DEFAULT_CROSS_ID_PAIRS

NAME = "evaluate"
HELP = "evaluate a model on a test split: same-identity video / frame pairs / cross-identity protocols"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("checkpoint", "depth_checkpoint", "data", "pairs")
OUTPUTS: tuple[str, ...] = ("output", "save_frames")

_WIDTH = max(len(name) for name in PROTOCOLS) + 2  # the protocol-name column of the help


def _protocol_rows(text: dict[str, str]) -> str:
    """``  name      text`` for each protocol, continuation lines aligned with the text."""
    indent = "\n" + " " * (2 + _WIDTH)
    return "\n".join(f"  {name:<{_WIDTH}}{value.replace(chr(10), indent)}" for name, value in text.items())


EPILOG = f"""\
protocols:
{_protocol_rows({name: p.help for name, p in PROTOCOLS.items()})}

metrics (--metrics, default: all of the protocol; unavailable ones are listed with the reason):
{_protocol_rows({name: " ".join(p.metrics) for name, p in PROTOCOLS.items()})}

Finished videos are stored in OUTPUT.parts/ and not recomputed when the command is run again with the
same settings (--restart recomputes everything).

examples:
  dagan evaluate --checkpoint model.pt --data vox --protocol video -o vox-video.json
  dagan evaluate --checkpoint model.pt --data vox --protocol pairs --pairs vox_pairs.csv -o pairs.json
  dagan evaluate --checkpoint model.pt --data vox --protocol cross-id --max-pairs 200 -o cross.json
  dagan evaluate --checkpoint model.pt --protocol synthetic-cross-id -o synthetic.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="reenactment checkpoint (ours or official DaGAN)")
    parser.add_argument(
        "--depth-checkpoint", default=None, help="face depth model, when the checkpoint stores none"
    )
    parser.add_argument(
        "--data", default=None, metavar="ROOT",
        help="dataset folder with ROOT/<split>/<video> face crops (every protocol but synthetic-cross-id)"
    )
    parser.add_argument("--split", default="test", choices=("test", "train"), help="split (default: test)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS))
    parser.add_argument("--pairs", default=None, metavar="CSV", help="pairs file (pairs, cross-id)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"metrics to compute ({', '.join(METRIC_GROUPS)}, or all; default: all of the protocol)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="results.json",
        help="results JSON (default results.json); the Markdown table is written beside it with .md",
    )
    parser.add_argument(
        "--save-frames",
        metavar="DIR",
        default=None,
        help="also write the generated frames as PNGs to DIR/<video>/",
    )
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help="first N frames per video")
    parser.add_argument(
        "--max-pairs",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="pairs: first N CSV rows; cross-id: at most N "
        f"pairs (default {DEFAULT_CROSS_ID_PAIRS} without a CSV; 0 = all)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="driving frames per generator call (default 8)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-id pair draw (default 0)")
    parser.add_argument(
        "--restart", action="store_true", help="discard finished videos of an earlier run (OUTPUT.parts/)"
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar (default: on)"
    )


def run(args: argparse.Namespace) -> int:
    opts = EvaluationOptions(
        checkpoint=Path(args.checkpoint),
        data=Path(args.data) if args.data else None,
        protocol=args.protocol,
        output=Path(args.output),
        split=args.split,
        pairs=Path(args.pairs) if args.pairs else None,
        metrics=args.metrics,
        max_frames=args.max_frames,
        max_pairs=args.max_pairs,
        batch_size=args.batch_size,
        device=args.device,
        depth_checkpoint=Path(args.depth_checkpoint) if args.depth_checkpoint else None,
        save_frames=Path(args.save_frames) if args.save_frames else None,
        seed=args.seed,
        resume=not args.restart,
        progress=args.progress,
    )
    result = evaluate(opts)
    sys.stdout.write(result.markdown)
    done = f"{len(result.computed)} evaluated"
    if result.reused:
        done += f", {len(result.reused)} reused from {result.output.name}.parts/"
    print(f"dagan: wrote {result.output} and {result.markdown_path} ({done})", file=sys.stderr)
    return 0
