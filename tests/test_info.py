"""`dagan info` reports the official DaGAN parameter counts exactly and the DaGAN++ count next to the paper's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dagan.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _info(capsys: pytest.CaptureFixture[str], name: str) -> dict:
    assert main(["info", "--config", str(CONFIGS / name), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_official_dagan_counts(capsys: pytest.CaptureFixture[str]) -> None:
    p = _info(capsys, "dagan-vox-256.yaml")["parameters"]
    assert p["generator"] == 46_096_917
    assert p["dense_motion"] == 37_796_433
    assert p["kp_detector"] == 14_262_519
    assert p["discriminator"] == 2_774_209
    assert p["generator+kp_detector+discriminator"] == 63_133_645  # the paper's "63.1 M"


def test_official_spade_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert _info(capsys, "dagan-spade-vox-256.yaml")["parameters"]["generator"] == 67_545_305


def test_dagan_pp_info(capsys: pytest.CaptureFixture[str]) -> None:
    info = _info(capsys, "dagan++-vox-256.yaml")
    assert info["arch"] == "dagan++" and info["resolution"] == 256 and info["num_kp"] == 15
    assert info["paper_parameters"]["generator+kp_detector+discriminator"] == 85_200_000
    levels = [row["level"] for row in info["attention"]]
    assert levels == [0, 1, 2, 3]
    assert all(row["kv_tokens"] <= 4096 for row in info["attention"])
    assert info["attention"][0]["query_tokens"] == 256 * 256


def test_fomm_has_no_depth(capsys: pytest.CaptureFixture[str]) -> None:
    info = _info(capsys, "fomm-vox-256.yaml")
    assert info["parameters"]["depth_net"] == 0 and info["attention"] == []


def test_config_typo_is_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("base: " + str(CONFIGS / "dagan-vox-256.yaml") + "\nmodel_params:\n  generator_param: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "info", "--config", str(cfg)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model_params.generator_param" in lines[0] and "generator_params" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("resolution", "max_tokens"), [(64, 256), (96, 200), (160, 50)])
def test_attention_geometry_is_the_built_models(resolution: int, max_tokens: int) -> None:
    """The key/value counts `dagan info` prints are those the generator's attention really projects, also for
    sizes that are not powers of two (where ceil-mode pooling and a floor-based estimate disagree)."""
    import torch

    from dagan.commands.info import model_info
    from dagan.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny" / "dagan++-64.yaml")
    cfg.dataset_params.frame_shape = [resolution, resolution, 3]
    cfg.model_params.generator_params.attention.max_tokens = max_tokens
    info = model_info(cfg)
    from dagan.models.factory import build_generator

    generator = build_generator(cfg)
    assert info["attention"]
    for row in info["attention"]:
        module = generator.attention[str(row["level"])]
        depth = torch.zeros(1, module.key.in_channels, row["size"], row["size"])
        keys, _ = module.project_keys_values(depth)
        assert keys.shape[1] == row["kv_tokens"], row
