"""Rendering speed of the synthetic talking-head renderer (frames per second, one thread).

Usage: python benchmarks/synth_speed.py [--size 256] [--frames 100]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # measure single-threaded speed

import argparse  # noqa: E402
import time  # noqa: E402

from dagan.data.synthetic import render_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--non-rigid", type=float, default=1.0)
    args = parser.parse_args()
    render_video(0, 2, args.size)  # warm-up: mesh build, texture loading, imports
    start = time.perf_counter()
    render_video(1, args.frames, args.size, non_rigid=args.non_rigid)
    seconds = time.perf_counter() - start
    print(f"synthetic heads at {args.size}x{args.size}: {args.frames / seconds:.1f} frames/s "
          f"({1000 * seconds / args.frames:.1f} ms/frame, {args.frames} frames incl. per-clip setup)")


if __name__ == "__main__":
    main()
