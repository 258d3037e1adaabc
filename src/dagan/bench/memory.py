"""Peak memory of one benchmark run, :class:`PeakMemory`.

* CUDA: ``torch.cuda.max_memory_allocated`` since ``torch.cuda.reset_peak_memory_stats`` at the start of the
  run (tensors only; the CUDA context and the caching allocator's spare blocks are not counted).
* CPU: the resident set's high-water mark of the process during the run — the counter behind
  ``resource.getrusage``'s ``ru_maxrss``, read as ``VmHWM`` from ``/proc/self/status`` after resetting it by
  writing ``5`` to ``/proc/self/clear_refs`` (Linux). Before the reset, garbage is collected and the C heap
  trimmed (glibc ``malloc_trim``) so that memory freed by an earlier run is not counted again. Where the reset
  is not possible the process's lifetime peak (``ru_maxrss``) is reported and :attr:`PeakMemory.kind` says so.
  The figure includes the interpreter, PyTorch and the face detector (a few hundred MB), as a user sees it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from pathlib import Path
from types import TracebackType

import torch

__all__ = ["PeakMemory"]


def _trim_c_heap() -> None:
    """Hand memory freed by earlier runs back to the system (glibc only; elsewhere nothing to do)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return None


class PeakMemory:
    """``with PeakMemory(device) as peak: …``; afterwards :attr:`mb` is the peak in MiB and :attr:`kind` what
    was measured: ``cuda_allocated``, ``rss`` (this run) or ``rss_process`` (the process's lifetime)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb = 0.0
        self.kind = "cuda_allocated" if device.type == "cuda" else "rss"

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _trim_c_heap()
            if not _reset_rss_peak():
                self.kind = "rss_process"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        peak = _rss_peak_mb() if self.kind == "rss" else None
        if peak is None:  # ru_maxrss is in KiB on Linux, bytes on macOS
            import resource  # POSIX only

            self.kind = "rss_process"
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
        self.mb = peak
