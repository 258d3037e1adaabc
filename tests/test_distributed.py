"""Multi-process training: ``torchrun`` with 2 gloo processes equals one process with the same global batch.

How the equality is made exact, and why it is not trivial:

* Same samples: both runs draw the global batch of step k from a DistributedSampler permutation seeded by
  ``seed + epoch`` (rank r of W takes positions r, r+W, …); items are seeded by (seed, epoch, index) and each
  sample's equivariance transform by (seed, step, position in the global batch), so the two processes see
  exactly the halves of the single process's batch, with the same augmentation and transforms.
* BatchNorm: ``nn.SyncBatchNorm`` runs only on GPUs, so on gloo each process normalises with the statistics
  of its own half-batch. The single-process reference therefore splits its batch of 2 into 2 micro-batches
  (``grad_accumulation=2``): same per-half statistics, gradients summed over the halves with weight ½ — the
  average DDP's all-reduce computes. The reference without micro-batches (full-batch statistics) is run too
  and must *differ*, which shows the comparison is sensitive to how the batch is processed.
* Threads: CPU convolutions round differently with different thread counts, and Adam's first steps turn tiny
  gradient differences into ±lr steps. Both runs use one thread per process (torchrun's default), so the
  weights agree bit for bit up to the order of the gradient sum.
* BatchNorm *running* statistics are not compared: DDP keeps rank 0's (it broadcasts buffers from rank 0),
  the reference accumulates both halves'; they do not enter training-mode forward passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from dagan.assets import DEMO_DRIVING
from dagan.checkpoints.format import load_checkpoint, save_checkpoint
from dagan.config import load_config
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.video import iter_frames, resize_rgb
from dagan.models.factory import build_depth_net
from dagan.train.distributed import (
    DistEnv,
    all_reduce_mean,
    any_rank,
    init_distributed,
    maybe_sync_batchnorm,
    wrap_ddp,
)
from dagan.train.run import read_metrics
from dagan.train.sampling import EpochBatchSampler
from dagan.train.trainer import train_reenactment

REPO = Path(__file__).resolve().parents[1]
CLIP = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
STEPS = 3

CONFIG_TEXT = """\
base: {base}
train_params:
  num_epochs: 2
  num_repeats: 1
  batch_size: 2
  num_workers: 0
  scales: [1, 0.5, 0.25]
  checkpoint_freq: 1
  log_freq: 1
  visual_freq: 1000
"""

# --------------------------------------------------------------------------- helpers (no processes)


def test_single_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env = init_distributed("cpu")
    assert env == DistEnv() and env.is_main and not env.distributed
    assert all_reduce_mean({"a": 1.5}, env) == {"a": 1.5}
    assert any_rank(True, env) and not any_rank(False, env)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert wrap_ddp(net, env) is net
    cpu_world = DistEnv(rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
    assert isinstance(maybe_sync_batchnorm(net, cpu_world)[1], nn.BatchNorm2d)  # SyncBatchNorm is CUDA-only


def test_sampler_interleaves_the_global_order() -> None:
    """Rank r of W gets positions r, r+W, … of the one-process global batch of every step; a sampler started
    at step k gives the batches of an uninterrupted one from step k on."""
    n, batch, steps = 11, 4, 7  # 2 steps per epoch (3 samples dropped): steps 0-6 span four epochs
    single = list(EpochBatchSampler(n, batch, seed=7, start=0, end=steps))
    ranks = [list(EpochBatchSampler(n, batch, seed=7, start=0, end=steps, rank=r, world_size=2)) for r in (0, 1)]
    for k in range(steps):
        assert ranks[0][k] == single[k][0::2] and ranks[1][k] == single[k][1::2]
        assert {e for e, _ in single[k]} == {k // 2}  # the epoch travels with every key
    epochs = [sorted(i for b in single[2 * e : 2 * e + 2] for _, i in b) for e in range(3)]
    assert all(len(set(e)) == 8 for e in epochs)  # no sample twice in an epoch
    assert single[0] != single[2]  # reshuffled each epoch
    assert list(EpochBatchSampler(n, batch, seed=7, start=3, end=steps)) == single[3:]
    assert list(EpochBatchSampler(n, batch, seed=8, start=0, end=steps)) != single


@pytest.mark.parametrize("world_size", [1, 2])
def test_sampler_keeps_the_order_of_earlier_versions(world_size: int) -> None:
    """The order is the one earlier versions drew through a DistributedSampler (seed + epoch) and a
    drop-last DataLoader per epoch, so their checkpoints, also mid-epoch ones, resume onto the same data."""
    n, batch, seed = 11, 4, 3
    local = batch // world_size
    for rank in range(world_size):
        expected = []
        for epoch in range(3):
            sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
            expected += [[(epoch, int(i)) for i in b] for b in DataLoader(list(sampler), batch_size=local,
                                                                              drop_last=True)]
        got = list(EpochBatchSampler(n, batch, seed, start=0, end=6, rank=rank, world_size=world_size))
        assert got == expected


# --------------------------------------------------------------------------- torchrun


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ddp")
    video = [resize_rgb(f, 64) for f in iter_frames(CLIP)]
    for c in range(4):
        write_png_frames(base / "data" / "train" / f"id{c}#clip{c}", video[30 * c : 30 * c + 8])
    cfg_path = base / "tiny.yaml"
    cfg_path.write_text(CONFIG_TEXT.format(base=REPO / "configs" / "tiny" / "dagan++-64.yaml"))
    cfg = load_config(cfg_path)
    torch.manual_seed(0)
    save_checkpoint(
        base / "depth.pt", kind="depth", modules={"depth_net": build_depth_net(cfg)}, config=cfg.to_dict()
    )
    return {"base": base, "config": cfg_path, "data": base / "data", "depth": base / "depth.pt"}


def _single(setup: dict[str, Path], out: Path, accumulation: int) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_reenactment(
            load_config(setup["config"]),
            setup["data"],
            setup["depth"],
            out=out,
            max_steps=STEPS,
            grad_accumulation=accumulation,
            perceptual="vgg16",
            echo=False,
        )
    finally:
        torch.set_num_threads(threads)
    return load_checkpoint(result.checkpoint, kind="reenactment")


def _max_param_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for name in ("kp_detector", "generator", "discriminator"):
        for key, value in a["modules"][name].items():
            if "running_" in key or "num_batches_tracked" in key:
                continue
            worst = max(worst, (value.double() - b["modules"][name][key].double()).abs().max().item())
    return worst


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(setup: dict[str, Path]) -> None:
    out = setup["base"] / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "--module",
            "dagan.cli",
            "train",
            "--config",
            str(setup["config"]),
            "--data",
            str(setup["data"]),
            "--depth-checkpoint",
            str(setup["depth"]),
            "--out",
            str(out),
            "--max-steps",
            str(STEPS),
            "--perceptual-backbone",
            "vgg16",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = load_checkpoint(out / "checkpoints" / "latest.pt", kind="reenactment")
    assert ddp["step"] == STEPS and ddp["meta"]["world_size"] == 2
    assert all(not k.startswith("module.") for m in ddp["modules"].values() for k in m)
    # rank 0 alone writes: one metrics record per step, one "training" line
    log = (out / "log.txt").read_text()
    assert log.count("training dagan++") == 1 and "2 process(es)" in log and "backend gloo" in log
    assert [m["step"] for m in read_metrics(out)] == list(range(1, STEPS + 1))

    reference = _single(setup, setup["base"] / "single-acc", accumulation=2)
    assert _max_param_diff(ddp, reference) <= 1e-6
    ddp_losses = [m["loss/total"] for m in read_metrics(out)]
    ref_losses = [m["loss/total"] for m in read_metrics(setup["base"] / "single-acc")]
    assert ddp_losses == pytest.approx(ref_losses, rel=1e-6)

    # Full-batch BatchNorm statistics give a different trajectory: the check above can fail.
    full_batch = _single(setup, setup["base"] / "single-full", accumulation=1)
    assert _max_param_diff(ddp, full_batch) > 1e-5
