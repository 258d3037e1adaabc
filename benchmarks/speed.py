"""Speed and memory of the animation pipeline per stage, per arch, size, device, precision and batch size:
``dagan bench`` itself (one implementation, :mod:`dagan.bench`); every option of ``dagan bench --help`` works.

    python benchmarks/speed.py [--archs dagan++ fomm] [--sizes 256 512] [--devices cpu cuda]
                               [--batch-sizes 1 8] [--frames 16] [--repeats 3] [--json speed.json]
"""

from __future__ import annotations

import sys

from dagan.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
