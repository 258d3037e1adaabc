"""Suite-wide settings: one intra-op thread per test process.

The suite runs as two pytest-xdist workers on a 2-core machine; letting each worker (and each subprocess a test
starts) use every core oversubscribes the CPU and makes runs several times slower, without changing results.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
