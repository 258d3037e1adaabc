"""What ``dagan bench`` measures, and in which order.

A *case* is one config on one device at one precision and batch size. The configs are either given, or the
full-size config of each arch at each size (:func:`sized_config`). Every case runs once per repeat with fresh
random weights (seed 0: the speed does not depend on the weights), and the repeats alternate the order of the
cases — forward, backward, forward … (:func:`schedule`) — so that a slow or fast phase of a noisy machine does
not fall on the same cases every time. Each figure is reported as the median and the range over the repeats.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import dagan
from dagan.assets import DEMO_DRIVING, DEMO_SOURCE
from dagan.config import Config, ConfigError, config_from_dict, load_config
from dagan.errors import InputError
from dagan.infer.engine import PRECISIONS, TorchEngine
from dagan.infer.options import AnimateOptions, default_batch_size
from dagan.infer.source import FaceModels

from .memory import PeakMemory
from .pipeline import RunTimes, time_run

__all__ = [
    "ARCH_CONFIGS",
    "DEEPER_WITH_SIZE",
    "BenchCase",
    "CaseResult",
    "Sample",
    "Skipped",
    "Spread",
    "default_config_dir",
    "plan_cases",
    "run_suite",
    "schedule",
    "sized_config",
]

#: arch → its full-size 256² config in the configs folder
ARCH_CONFIGS = {
    "dagan++": "dagan++-vox-256.yaml",
    "dagan": "dagan-vox-256.yaml",
    "dagan-spade": "dagan-spade-vox-256.yaml",
    "fomm": "fomm-vox-256.yaml",
}
#: archs whose encoder gets one more down block per doubling of the size (DaGAN++: see
#: configs/dagan++-hdtf-512.yaml); the official DaGAN's and FOMM's keep theirs at every size
DEEPER_WITH_SIZE = frozenset({"dagan++"})
BASE_SIZE = 256


def default_config_dir() -> Path:
    """The ``configs`` folder of the dagan checkout this package runs from, else ``./configs``."""
    checkout = Path(dagan.__file__).resolve().parents[2] / "configs"
    return checkout if checkout.is_dir() else Path("configs")


def sized_config(arch: str, size: int, config_dir: Path) -> Config:
    """The full-size config of ``arch`` at ``size``²: its 256² config at that size, with one more encoder down
    block per doubling (one fewer per halving) for the archs in :data:`DEEPER_WITH_SIZE`."""
    path = config_dir / ARCH_CONFIGS[arch]
    if not path.is_file():
        raise InputError(f"config '{path}' not found: run from a dagan checkout, or give --configs FILE …")
    steps = math.log2(size / BASE_SIZE) if size > 0 else math.nan
    if not steps.is_integer():
        raise InputError(f"size {size} is not 256 times a power of two (e.g. 256, 512)")
    cfg = load_config(path)
    data = cfg.to_dict()
    data["dataset_params"]["frame_shape"] = [size, size, cfg.dataset_params.frame_shape[2]]
    if arch in DEEPER_WITH_SIZE:
        data["model_params"]["generator_params"]["num_down_blocks"] += int(steps)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise InputError(f"{arch} cannot run at {size}: {exc}") from None


@dataclass(eq=False)
class BenchCase:
    """One config on one device, at one precision and batch size; ``config_name`` says where it came from."""

    config: Config
    config_name: str
    device: torch.device
    precision: str
    batch_size: int

    @property
    def label(self) -> str:
        return f"{self.config.arch} {self.config.resolution} {self.device} {self.precision} batch {self.batch_size}"


@dataclass(frozen=True)
class Skipped:
    """A requested combination that cannot run, and why."""

    config_name: str
    arch: str
    size: int
    device: str
    precision: str
    reason: str


def default_precisions(device: torch.device) -> list[str]:
    """fp32 on CPU; every precision on CUDA."""
    return list(PRECISIONS) if device.type == "cuda" else ["fp32"]


def default_batch_sizes(device: torch.device) -> list[int]:
    """``dagan animate``'s default batch size on CPU (1); 1 and its default (8) on CUDA."""
    batch = default_batch_size(device.type)
    return [1, batch] if device.type == "cuda" else [batch]


def unsupported(device: torch.device, precision: str) -> str | None:
    """Why ``precision`` cannot run on ``device``, or None."""
    if precision == "fp16" and device.type != "cuda":
        return "fp16 needs CUDA"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return None


def plan_cases(
    configs: Sequence[tuple[str, Config]],
    devices: Sequence[torch.device],
    precisions: Sequence[str] | None,
    batch_sizes: Sequence[int] | None,
) -> tuple[list[BenchCase], list[Skipped]]:
    """Every (config, device, precision, batch size); precisions and batch sizes default per device
    (:func:`default_precisions`, :func:`default_batch_sizes`). Combinations that cannot run are skipped."""
    cases: list[BenchCase] = []
    skipped: list[Skipped] = []
    for name, cfg in configs:
        for device in devices:
            for precision in precisions or default_precisions(device):
                reason = unsupported(device, precision)
                if reason is not None:
                    skipped.append(Skipped(name, cfg.arch, cfg.resolution, str(device), precision, reason))
                    continue
                for batch in batch_sizes or default_batch_sizes(device):
                    cases.append(BenchCase(cfg, name, device, precision, batch))
    if not cases:
        reasons = sorted({s.reason for s in skipped})
        raise InputError(f"nothing to run: {'; '.join(reasons) or 'no cases'}")
    return cases, skipped


def schedule(num_cases: int, repeats: int) -> list[tuple[int, int]]:
    """(repeat, case index) in the order they run: the cases forward in even repeats, backward in odd ones."""
    order: list[tuple[int, int]] = []
    for repeat in range(repeats):
        indices = range(num_cases) if repeat % 2 == 0 else reversed(range(num_cases))
        order.extend((repeat, i) for i in indices)
    return order


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over the repeats."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    def as_dict(self) -> dict[str, float | list[float]]:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "values": list(self.values)}


@dataclass(frozen=True)
class Sample:
    """One run of one case."""

    times: RunTimes
    peak_memory_mb: float
    memory: str  # what peak_memory_mb measures (dagan.bench.memory.PeakMemory.kind)

    @property
    def frames_per_second(self) -> float:
        return 1000.0 / max(self.times.end_to_end_ms, 1e-9)


@dataclass
class CaseResult:
    """A case and its samples, one per repeat."""

    case: BenchCase
    samples: list[Sample]

    def spread(self, figure: Callable[[Sample], float]) -> Spread:
        return Spread(tuple(figure(s) for s in self.samples))

    @property
    def stage_names(self) -> list[str]:
        """Every stage any sample timed, in the order it first ran."""
        return list(dict.fromkeys(name for s in self.samples for name in s.times.stages_ms))

    def stage(self, name: str) -> Spread:
        return self.spread(lambda s: s.times.stages_ms.get(name, 0.0))


def run_case(case: BenchCase, faces: FaceModels, frames: int, warmup: int, detector: str) -> Sample:
    """Build the case's models (random weights, seed 0) and time one run of them."""
    with PeakMemory(case.device) as peak:
        torch.manual_seed(0)
        from dagan.models.factory import build_reenactment_models

        models = build_reenactment_models(case.config, discriminator=False)
        engine = TorchEngine(models, case.config, case.device, case.precision)
        options = AnimateOptions(batch_size=case.batch_size, detector=detector)
        times = time_run(engine, faces, DEMO_SOURCE, DEMO_DRIVING, frames, warmup, options)
        del engine, models
    return Sample(times, peak.mb, peak.kind)


def run_suite(
    cases: Sequence[BenchCase],
    frames: int,
    warmup: int,
    repeats: int,
    detector: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> tuple[list[CaseResult], list[tuple[int, int]]]:
    """Run every case ``repeats`` times in :func:`schedule` order; returns the results (in the order of
    ``cases``) and that order. ``progress`` receives one line per run."""
    results = [CaseResult(case, []) for case in cases]
    faces = FaceModels()  # the detector is loaded once, outside every timed run
    order = schedule(len(cases), repeats)
    for done, (repeat, index) in enumerate(order, 1):
        case = cases[index]
        sample = run_case(case, faces, frames, warmup, detector)
        results[index].samples.append(sample)
        if progress is not None:
            progress(
                f"[{done}/{len(order)}] {case.label}, repeat {repeat + 1}/{repeats}: "
                f"{sample.times.end_to_end_ms:.1f} ms/frame end to end"
            )
    return results, order
