"""``dagan inspect``: what a checkpoint is, for ours, official training dicts, per-module files and depth
folders; one-line errors for unsafe and foreign files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import dagan.cli as cli
from dagan.checkpoints.describe import describe_checkpoint
from dagan.checkpoints.format import save_checkpoint
from dagan.checkpoints.official_import import import_official
from dagan.checkpoints.reenactment import load_official_reenactment
from dagan.errors import CheckpointError
from dagan.models.factory import count_parameters
from test_official_import import (
    CONFIGS,
    build_models,
    write_depth_folder,
    write_module_files,
    write_training_checkpoint,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("inspect")
    cfg_pp, ours = build_models(CONFIGS / "tiny" / "dagan++-64.yaml", seed=11)
    ours_path = save_checkpoint(
        root / "ours.pt",
        kind="reenactment",
        config=cfg_pp.to_dict(),
        modules={n: getattr(ours, n) for n in ("kp_detector", "generator", "discriminator", "depth_net")},
        epoch=3,
        step=120,
        rng=False,
    )
    _, official = build_models(CONFIGS / "tiny" / "dagan-spade-64.yaml", seed=12)
    lone = root / "lone"
    lone.mkdir()
    torch.save(official.generator.state_dict(), lone / "generator.pt")
    return {
        "ours": ours_path,
        "ours_models": ours,
        "official": write_training_checkpoint(root / "00000149-checkpoint.pth.tar", official),
        "official_models": official,
        "modules": write_module_files(root / "modules", official, discriminator=True),
        "lone": lone / "generator.pt",
        "depth": write_depth_folder(root / "depth" / "weights_19", official.depth_net),
    }


def inspect_json(capsys: pytest.CaptureFixture[str], path: Path, code: int = 0) -> dict:
    assert cli.main(["inspect", str(path), "--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_inspect_ours(files, capsys) -> None:
    info = inspect_json(capsys, files["ours"])
    models = files["ours_models"]
    assert info["format"] == "dagan" and info["kind"] == "reenactment" and info["arch"] == "dagan++"
    assert (info["num_kp"], info["resolution"], info["depth_backbone"]) == (10, 64, "resnet18")
    assert (info["epoch"], info["step"]) == (3, 120)
    for name in ("kp_detector", "generator", "discriminator", "depth_net"):
        assert info["parameters"][name] == count_parameters(getattr(models, name)), name
    assert info["parameters"]["total"] == sum(
        count_parameters(getattr(models, n))
        for n in ("kp_detector", "generator", "discriminator", "depth_net")
    )
    assert cli.main(["inspect", str(files["ours"])]) == 0
    text = capsys.readouterr().out
    assert "a dagan reenactment checkpoint" in text and "epoch 3, step 120" in text and "ResNet-18" in text


def test_inspect_official_training_dict(files, capsys) -> None:
    assert cli.main(["inspect", str(files["official"])]) == 0
    text = capsys.readouterr().out
    assert "an official DaGAN training checkpoint: SPADE DaGAN generator" in text
    assert "arch        dagan-spade" in text and "keypoints   10" in text
    assert "256×256 (the official release; not stored in the file)" in text
    assert "epoch 149, steps not stored" in text and "'module.' prefixes" in text
    assert "optimizer_generator" in text and "--depth-checkpoint DIR" in text
    info = inspect_json(capsys, files["official"])
    models = files["official_models"]
    assert info["format"] == "official-training" and info["depth_backbone"] is None
    for name in ("generator", "kp_detector", "discriminator"):
        assert info["parameters"][name] == count_parameters(getattr(models, name)), name


def test_inspect_per_module_files(files, capsys) -> None:
    # a generator file with its companions beside it describes the set
    info = inspect_json(capsys, files["modules"] / "generator.pt")
    assert info["format"] == "official-modules" and info["arch"] == "dagan-spade" and info["num_kp"] == 10
    assert set(info["parameters"]) == {"generator", "kp_detector", "discriminator", "total"}
    assert "kp_detector.pt" in info["what"] and info["epoch"] is None
    # a lone generator file is still described, and the missing companion is named
    info = inspect_json(capsys, files["lone"])
    assert info["kind"] == "generator" and info["arch"] == "dagan-spade" and info["num_kp"] == 10
    assert info["parameters"] == {"generator": count_parameters(files["official_models"].generator)}
    assert any("no companion" in note for note in info["notes"])


def test_inspect_depth_folder(files, capsys) -> None:
    net = files["official_models"].depth_net
    info = inspect_json(capsys, files["depth"])
    assert info["format"] == "monodepth2-folder" and info["depth_backbone"] == "resnet18"
    assert info["resolution"] == 256  # the encoder.pth height/width entries
    assert info["parameters"]["depth_encoder"] == count_parameters(net.encoder)
    assert info["parameters"]["depth_decoder"] == count_parameters(net.decoder)
    assert "4 disparity scales" in info["depth_note"]
    # one file of the folder, or the folder above weights_19, describe the same folder
    for path in (files["depth"] / "encoder.pth", files["depth"].parent):
        other = inspect_json(capsys, path)
        assert other["path"] == str(files["depth"]) and other["parameters"] == info["parameters"]
    assert cli.main(["inspect", str(files["depth"])]) == 0
    assert "depth       ResNet-18 — 4 disparity scales" in capsys.readouterr().out


def test_inspect_imported(files, tmp_path: Path) -> None:
    out = import_official(files["official"], files["depth"], tmp_path / "imported.pt")
    desc = describe_checkpoint(out)
    assert desc.format == "dagan" and desc.arch == "dagan-spade" and desc.epoch == 149
    assert desc.depth_backbone == "resnet18"
    assert any("imported from the official DaGAN training checkpoint" in n for n in desc.notes)
    with pytest.raises(
        CheckpointError, match=r"is already a dagan reenactment checkpoint; it needs no import"
    ):
        load_official_reenactment(out, files["depth"])


class Payload:
    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def test_inspect_bad_files(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "evil.pth.tar"
    torch.save({"generator": {}, "epoch": Payload()}, evil)
    junk = tmp_path / "junk.pt"
    junk.write_text("definitely not a checkpoint\n")
    for path, message in (
        (evil, "non-tensor Python objects"),
        (junk, "is not a PyTorch checkpoint"),
        (tmp_path / "missing.pt", "not found"),
    ):
        assert cli.main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dagan: error: ") and message in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(2), "lr": 0.1}, other)
    assert cli.main(["inspect", str(other)]) == 1
    assert "not a dagan, official DaGAN or Monodepth2 checkpoint" in capsys.readouterr().out


def test_inspect_subprocess(files) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "inspect", str(files["official"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "arch        dagan-spade" in proc.stdout
