"""Checkpoints: weights_only loading, prefix stripping, RNG restore, atomic writes under SIGKILL."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dagan.checkpoints.format import (
    load_checkpoint,
    load_module_state,
    safe_torch_load,
    save_checkpoint,
    strip_prefixes,
)
from dagan.checkpoints.rng_state import capture_rng_state, restore_rng_state
from dagan.errors import CheckpointError


def test_round_trip_and_prefix(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    wrapped = nn.Module()
    wrapped.module = net  # what DDP looks like from the outside
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "c.pt",
        kind="depth",
        config={"model_params": {"arch": "dagan++"}},
        modules={"net": wrapped},
        optimizers={"net": opt},
        epoch=3,
        step=7,
    )
    ckpt = load_checkpoint(path, kind="depth")
    assert ckpt["arch"] == "dagan++" and ckpt["epoch"] == 3 and ckpt["step"] == 7
    assert all(not k.startswith("module.") for k in ckpt["modules"]["net"])
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    load_module_state(fresh, {"module." + k: v for k, v in ckpt["modules"]["net"].items()}, "net", path)
    for a, b in zip(fresh.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="expected a reenactment"):
        load_checkpoint(path, kind="reenactment")


def test_strip_prefixes() -> None:
    assert strip_prefixes({"module._orig_mod.a.b": 1, "c": 2}) == {"a.b": 1, "c": 2}


def test_mismatch_message(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"shape of 0.weight is \(5, 3\)"):
        load_module_state(
            nn.Sequential(nn.Linear(3, 4)),
            {"0.weight": torch.zeros(5, 3), "0.bias": torch.zeros(4)},
            "generator",
            "x.pt",
        )


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_non_tensor_pickle_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"generator": Evil()}, path)
    with pytest.raises(CheckpointError, match="non-tensor Python objects"):
        safe_torch_load(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(CheckpointError):
        safe_torch_load(raw)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        safe_torch_load(tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        safe_torch_load(empty)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError):
        safe_torch_load(junk)
    other = tmp_path / "official.pt"
    torch.save({"generator": {}, "kp_detector": {}}, other)
    with pytest.raises(CheckpointError, match="import-official"):
        load_checkpoint(other)


def test_rng_round_trip() -> None:
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


def test_kill_during_write_keeps_latest_intact(tmp_path: Path) -> None:
    """SIGKILL a process that keeps overwriting 'latest.pt' with large checkpoints: what is left loads."""
    script = textwrap.dedent(
        f"""
        import torch
        from torch import nn
        from dagan.checkpoints.format import save_checkpoint
        net = nn.Linear(2048, 2048)
        i = 0
        while True:
            with torch.no_grad():
                net.weight.fill_(i)
            save_checkpoint({str(tmp_path / "latest.pt")!r}, kind='depth', config={{}}, modules={{'net': net}}, step=i)
            print(i, flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(3):  # let a few complete writes happen, then kill in the middle of the next ones
        proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint(tmp_path / "latest.pt")
    step = ckpt["step"]
    assert torch.all(ckpt["modules"]["net"]["weight"] == step)
