"""Typed configs: every shipped config loads, round-trips, and typos give a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dagan.config import Config, ConfigError, config_from_dict, dump_config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))


def test_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    for required in (
        "dagan++-vox-256.yaml",
        "dagan++-hdtf-512.yaml",
        "dagan-vox-256.yaml",
        "dagan-spade-vox-256.yaml",
        "fomm-vox-256.yaml",
        "depth-vox-256.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_round_trips(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    out = tmp_path / "copy.yaml"
    dump_config(cfg, out)
    again = load_config(out)
    assert again == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


def test_paper_settings() -> None:
    cfg = load_config(CONFIG_DIR / "dagan++-vox-256.yaml")
    assert cfg.arch == "dagan++" and cfg.resolution == 256
    assert cfg.model_params.common_params.num_kp == 15
    assert cfg.train_params.loss_weights.perceptual == [10.0] * 5
    assert cfg.train_params.betas == [0.5, 0.999]
    hdtf = load_config(CONFIG_DIR / "dagan++-hdtf-512.yaml")
    assert hdtf.resolution == 512
    assert hdtf.model_params.generator_params.num_down_blocks == cfg.model_params.generator_params.num_down_blocks + 1


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_typo_names_key_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, {"model_params": {"common_params": {"num_kps": 10}}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "model_params.common_params.num_kps" in msg and "num_kp" in msg and "\n" not in msg


def test_top_level_typo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'train_params'"):
        load_config(_write(tmp_path, {"train_param": {}}))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"model_params": {"common_params": {"num_kp": 0}}}, "num_kp must be >= 1"),
        ({"dataset_params": {"frame_shape": [100, 100, 3]}}, "divisible"),
        ({"model_params": {"arch": "dagn"}}, "did you mean 'dagan'"),
        ({"model_params": {"common_params": {"num_kp": "ten"}}}, "must be an integer"),
        ({"train_params": {"amp": "yes"}}, "true or false"),
    ],
)
def test_invalid_values(tmp_path: Path, data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(_write(tmp_path, data))


def test_base_inheritance(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text("model_params:\n  common_params: {num_kp: 12}\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: parent.yaml\nmodel_params:\n  kp_detector_params: {temperature: 0.2}\n")
    cfg = load_config(child)
    assert cfg.model_params.common_params.num_kp == 12
    assert cfg.model_params.kp_detector_params.temperature == 0.2
    assert (
        cfg.model_params.kp_detector_params.block_expansion == Config().model_params.kp_detector_params.block_expansion
    )


def test_missing_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("model_params: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)
