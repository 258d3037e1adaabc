"""One process or many under ``torchrun``: process group, DDP wrapping, collective helpers.

``torchrun --nproc_per_node N ...`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_distributed` reads them and joins the process group (NCCL when the processes
drive CUDA devices, gloo on CPU). Without those variables (or with ``WORLD_SIZE=1``) it returns a
single-process :class:`DistEnv` and every helper here degrades to the plain, non-distributed behaviour, so
the same training code runs with and without a launcher.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dagan.devices import resolve_device
from dagan.errors import DaganError

__all__ = [
    "DistEnv",
    "all_reduce_mean",
    "any_rank",
    "barrier",
    "cleanup_distributed",
    "init_distributed",
    "maybe_sync_batchnorm",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: rank, local rank, world size, its device and the backend in use."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DaganError(f"environment variable {name}={value!r} is not an integer") from None


def _process_device(requested: str | None, local_rank: int) -> torch.device:
    """``requested`` (see :func:`dagan.devices.resolve_device`); an unnumbered CUDA device becomes this process's
    GPU, ``cuda:LOCAL_RANK``."""
    device = resolve_device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str | None = None) -> DistEnv:
    """Join the process group described by torchrun's environment, or return a single-process env.

    NCCL is used when this process drives a CUDA device, gloo otherwise. Each CUDA process uses the GPU
    ``LOCAL_RANK``.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = _process_device(device, local_rank)
    if world <= 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistEnv(0, 0, 1, dev, None)
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DaganError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices: use "
                "--nproc_per_node <= the number of GPUs"
            )
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank, local_rank, world, dev, backend)


def cleanup_distributed(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def maybe_sync_batchnorm(module: nn.Module, env: DistEnv) -> nn.Module:
    """Convert BatchNorm layers to :class:`nn.SyncBatchNorm` for multi-process CUDA training.

    ``SyncBatchNorm`` only runs on GPUs; on CPU (gloo) each process normalises with its own batch statistics,
    exactly like one process that splits its batch into micro-batches (``grad_accumulation``).
    """
    if env.distributed and env.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def wrap_ddp(
    module: nn.Module,
    env: DistEnv,
    ignore: Mapping[str, nn.Module | None] | None = None,
    find_unused_parameters: bool = False,
) -> nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else ``module`` itself.

    ``ignore`` names frozen submodules (depth net, VGG): their parameters and buffers are neither
    broadcast nor all-reduced — every rank loads the same weights from disk. ``find_unused_parameters`` is
    needed when some trainable parameters get no gradient in a step (e.g. a loss switched off).
    """
    if not env.distributed:
        return module
    names: list[str] = []
    for prefix, sub in (ignore or {}).items():
        if sub is None:
            continue
        names += [f"{prefix}.{n}" for n, _ in sub.named_parameters()]
        names += [f"{prefix}.{n}" for n, _ in sub.named_buffers()]
    if names:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def all_reduce_mean(values: Mapping[str, float], env: DistEnv) -> dict[str, float]:
    """Average scalar values over all processes (for logging); identity for one process."""
    if not env.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(env))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= env.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a time limit reached on rank 0)."""
    if not env.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(env))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _comm_device(env: DistEnv) -> torch.device:
    return env.device if env.backend == "nccl" else torch.device("cpu")
