"""Official DaGAN checkpoints: loading (training dicts, per-module files, Monodepth2 depth folders), clear
messages for wrong pairings, conversion to our format and ``dagan import-official``.

No official weights exist here, so the files are written the way the official code writes them, from our own
modules (whose parameter names are the official ones) with random weights: DDP ``module.`` prefixes,
optimizer entries and ``epoch``; a depth folder whose ``encoder.pth`` carries ``height``/``width``/
``use_stereo`` and the ImageNet classifier ``encoder.fc.*``; a 12-output Monodepth2 ``pose.pth``. The test
is that loading them back gives the same numbers as the modules they were written from, on real frames.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dagan.cli as cli
from dagan.assets import DEMO_DRIVING
from dagan.checkpoints.depth import load_depth_models, load_depth_net
from dagan.checkpoints.describe import count_state_parameters, describe_checkpoint
from dagan.checkpoints.format import load_checkpoint, load_module_state
from dagan.checkpoints.official_files import classify_state_dict, read_depth_folder, resolve_depth_folder
from dagan.checkpoints.official_import import import_official, import_official_depth
from dagan.checkpoints.reenactment import OfficialPairingWarning, load_official_reenactment
from dagan.config import Config, config_from_dict, load_config
from dagan.errors import CheckpointError
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import ReenactmentModels, build_reenactment_models, count_parameters
from dagan.models.pose import PoseNet

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
CLIP = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md


# --------------------------------------------------------------------------- helpers (test_inspect uses them)


def read_frames(size: int, indices: tuple[int, ...] = (0, 90)) -> Tensor:
    """Frames of the real face clip, RGB in [0, 1], resized to size×size: N×3×size×size."""
    wanted, frames = set(indices), {}
    with av.open(str(CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if len(frames) == len(wanted):
                break
    batch = torch.from_numpy(np.stack([frames[i] for i in indices])).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Move a freshly built module away from its initialisation so that a wrong load cannot go unnoticed:
    random BatchNorm statistics and affine terms, biases, an active attention γ, a non-identity Jacobian."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=g))
        for name, p in module.named_parameters():
            if name.endswith("gamma") and p.numel() == 1:
                p.fill_(0.7)
            elif name.startswith("jacobian."):
                p.add_(0.02 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return module


def build_models(
    config: str | Path | Config, seed: int = 0, discriminator: bool = True
) -> tuple[Config, ReenactmentModels]:
    cfg = config if isinstance(config, Config) else load_config(config)
    torch.manual_seed(seed)
    models = build_reenactment_models(cfg, discriminator=discriminator)
    randomize_(models, seed)
    if models.depth_net is not None:
        models.depth_net.eval()
    return cfg, models.eval()


def with_backbone(config: str | Path, backbone: str) -> Config:
    cfg = load_config(config)
    cfg.model_params.depth_params.backbone = backbone  # type: ignore[assignment]
    return cfg.validate()


def ddp_state(module: nn.Module) -> OrderedDict:
    """The state dict of a DDP-wrapped module: every key prefixed with ``module.``."""
    return OrderedDict((f"module.{k}", v) for k, v in module.state_dict().items())


def stepped_adam_state(module: nn.Module) -> dict:
    """A real Adam state dict after one step on a copy (what the official training saves)."""
    clone = copy.deepcopy(module)
    opt = torch.optim.Adam(clone.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for p in clone.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return opt.state_dict()


def write_training_checkpoint(
    path: Path, models: ReenactmentModels, epoch: int = 149, adam: bool = True, legacy: bool = False
) -> Path:
    """The official ``%08d-checkpoint.pth.tar`` layout (DDP prefixes, optimizer entries, int epoch)."""
    obj: dict = {"epoch": epoch}
    for name in ("generator", "kp_detector", "discriminator"):
        module = getattr(models, name)
        obj[name] = ddp_state(module)
        if adam:
            obj[f"optimizer_{name}"] = stepped_adam_state(module)
        else:  # full size: an optimizer that has not stepped yet keeps the file small
            obj[f"optimizer_{name}"] = torch.optim.Adam(module.parameters(), lr=2e-4).state_dict()
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_module_files(folder: Path, models: ReenactmentModels, discriminator: bool = False) -> Path:
    """Per-module plain state dicts (``generator.pt``, ``kp_detector.pt``[, ``discriminator.pt``])."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(models.generator.state_dict(), folder / "generator.pt")
    torch.save(models.kp_detector.state_dict(), folder / "kp_detector.pt")
    if discriminator:
        torch.save(models.discriminator.state_dict(), folder / "discriminator.pt")
    return folder


def with_classifier(state: dict, channels: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = dict(state)
    state["encoder.fc.weight"] = torch.randn(1000, channels, generator=g)
    state["encoder.fc.bias"] = torch.randn(1000, generator=g)
    return state


def write_depth_folder(
    folder: Path, depth_net: FaceDepthNet, pose_net: PoseNet | None = None, seed: int = 0
) -> Path:
    """A Monodepth2 ``weights_N`` folder: encoder.pth (+ fc, height/width/use_stereo), depth.pth, and with a
    pose net pose_encoder.pth, a 12-output pose.pth and adam.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    bottleneck = depth_net.encoder.channels[-1]
    encoder = with_classifier(depth_net.encoder.state_dict(), bottleneck, seed)
    encoder.update({"height": 256, "width": 256, "use_stereo": False})
    torch.save(encoder, folder / "encoder.pth")
    torch.save(depth_net.decoder.state_dict(), folder / "depth.pth")
    if pose_net is not None:
        torch.save(
            with_classifier(pose_net.encoder.state_dict(), bottleneck, seed + 1), folder / "pose_encoder.pth"
        )
        pose = dict(pose_net.decoder.state_dict())
        g = torch.Generator().manual_seed(seed + 2)
        # Monodepth2 predicts for two frames (12 outputs) and uses the first six.
        pose["net.3.weight"] = torch.cat(
            [pose["net.3.weight"], torch.randn(pose["net.3.weight"].shape, generator=g)]
        )
        pose["net.3.bias"] = torch.cat([pose["net.3.bias"], torch.randn(6, generator=g)])
        torch.save(pose, folder / "pose.pth")
        torch.save(torch.optim.Adam(pose_net.parameters()).state_dict(), folder / "adam.pth")
    return folder


@torch.no_grad()
def run_models(models: ReenactmentModels, frames: Tensor) -> dict[str, Tensor]:
    """Depth, keypoints and the generated image for source = frames[0], driving = frames[1]."""
    out: dict[str, Tensor] = {}
    disparity = models.disparity(frames)
    kp = models.kp_detector(frames, disparity) if disparity is not None else models.kp_detector(frames)
    src = {k: v[:1] for k, v in kp.items()}
    drv = {k: v[1:] for k, v in kp.items()}
    gen = models.generator(frames[:1], drv, src, source_depth=None if disparity is None else disparity[:1])
    if disparity is not None:
        out["disparity"] = disparity
    out.update(kp_value=kp["value"], kp_jacobian=kp["jacobian"], prediction=gen["prediction"])
    return out


def assert_same_outputs(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs by {(a[key] - b[key]).abs().max():.3g}"


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def frames64() -> Tensor:
    return read_frames(64)


@pytest.fixture(scope="module")
def tiny_dagan() -> tuple[Config, ReenactmentModels]:
    return build_models(CONFIGS / "tiny" / "dagan-64.yaml", seed=1)


@pytest.fixture(scope="module")
def tiny_spade() -> tuple[Config, ReenactmentModels]:
    return build_models(CONFIGS / "tiny" / "dagan-spade-64.yaml", seed=2)


@pytest.fixture(scope="module")
def expected_dagan(tiny_dagan, frames64) -> dict[str, Tensor]:
    return run_models(tiny_dagan[1], frames64)


@pytest.fixture(scope="module")
def expected_spade(tiny_spade, frames64) -> dict[str, Tensor]:
    return run_models(tiny_spade[1], frames64)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory: pytest.TempPathFactory, tiny_dagan, tiny_spade) -> dict[str, Any]:
    """Tiny official-format files of both generator kinds and R18 / R50 depth folders (paths), plus the R50
    models (``_r50``) and the pose net (``_pose18``) they were written from."""
    root = tmp_path_factory.mktemp("official")
    _, dagan = tiny_dagan
    _, spade = tiny_spade
    _, r50 = build_models(with_backbone(CONFIGS / "tiny" / "dagan-64.yaml", "resnet50"), seed=3)
    torch.manual_seed(4)
    pose18 = randomize_(
        PoseNet("resnet18", uncertainty=False, learn_intrinsics=False, image_size=(64, 64)), 4
    ).eval()
    return {
        "dagan": write_training_checkpoint(root / "DaGAN_vox_adv_256.pth.tar", dagan),
        "spade": write_training_checkpoint(root / "SPADE_DaGAN_vox_adv_256.pth.tar", spade, legacy=True),
        "modules": write_module_files(root / "per_module", dagan),
        "depth18": write_depth_folder(root / "depth18" / "models" / "weights_19", dagan.depth_net, pose18),
        "depth18_spade": write_depth_folder(root / "depth_spade" / "weights_19", spade.depth_net),
        "depth50": write_depth_folder(root / "depth50" / "weights_19", r50.depth_net),
        "_r50": r50,
        "_pose18": pose18,
    }


# --------------------------------------------------------------------------- full size, both generator kinds


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "arch", "generator_params"),
    [("dagan-vox-256.yaml", "dagan", 46_096_917), ("dagan-spade-vox-256.yaml", "dagan-spade", 67_545_305)],
)
def test_full_size_official_round_trip(tmp_path: Path, config: str, arch: str, generator_params: int) -> None:
    """The released 256² configs written as DDP training checkpoints + an R18 depth folder load back exactly:
    same config, same parameter counts, bit-identical depth, keypoints and generated frame on real frames."""
    cfg, models = build_models(CONFIGS / config, seed=5)
    ckpt = write_training_checkpoint(tmp_path / "checkpoint.pth.tar", models, epoch=149, adam=False)
    depth = write_depth_folder(tmp_path / "weights_19", models.depth_net)
    frames = read_frames(256)
    expected = run_models(models, frames)
    del models

    loaded_cfg, loaded = load_official_reenactment(ckpt, depth, arch=arch)
    mp, lmp = cfg.model_params, loaded_cfg.model_params
    assert loaded_cfg.arch == arch and loaded_cfg.resolution == 256
    assert lmp.common_params == mp.common_params
    assert (
        lmp.kp_detector_params == mp.kp_detector_params
    )  # 4-channel input, pad 0, scale 0.25, temperature 0.1
    assert lmp.discriminator_params == mp.discriminator_params
    gp, lgp = dataclasses.asdict(mp.generator_params), dataclasses.asdict(lmp.generator_params)
    gp.pop("attention"), lgp.pop("attention")
    assert lgp == gp
    assert lmp.align_corners is False and lmp.depth_params.backbone == "resnet18"
    assert count_parameters(loaded.generator) == generator_params
    assert count_parameters(loaded.kp_detector) == 14_262_519
    assert count_parameters(loaded.discriminator) == 2_774_209
    assert not loaded.training and not loaded.depth_net.training
    assert_same_outputs(expected, run_models(loaded, frames))


# --------------------------------------------------------------------------- the formats, tiny


def test_training_dict_both_kinds(
    official_files, tiny_dagan, tiny_spade, expected_dagan, expected_spade, frames64
) -> None:
    """DDP-prefixed training dicts (zip and legacy pickles, stepped Adam states), both generator kinds."""
    for key, depth, (cfg, models), arch, expected in (
        ("dagan", "depth18", tiny_dagan, "dagan", expected_dagan),
        ("spade", "depth18_spade", tiny_spade, "dagan-spade", expected_spade),
    ):
        loaded_cfg, loaded = load_official_reenactment(official_files[key], official_files[depth])
        assert loaded_cfg.arch == arch
        assert loaded_cfg.model_params.common_params.num_kp == cfg.model_params.common_params.num_kp
        for name in ("kp_detector", "generator", "discriminator", "depth_net"):
            assert_same_state(getattr(models, name), getattr(loaded, name))
        assert_same_outputs(expected, run_models(loaded, frames64))


def test_per_module_files(official_files, tiny_dagan, expected_dagan, frames64) -> None:
    """generator.pt + kp_detector.pt: named by either file or by their folder; no discriminator needed."""
    _, models = tiny_dagan
    folder = official_files["modules"]
    for path in (folder / "generator.pt", folder / "kp_detector.pt", folder):
        cfg, loaded = load_official_reenactment(path, official_files["depth18"], arch="dagan")
        assert loaded.discriminator is None and cfg.arch == "dagan"
        assert_same_state(models.generator, loaded.generator)
        assert_same_state(models.kp_detector, loaded.kp_detector)
    assert_same_outputs(expected_dagan, run_models(loaded, frames64))


def test_depth_folder_both_backbones(official_files, tiny_dagan, frames64) -> None:
    """R18 and R50 folders: backbone from the keys, non-tensor entries and encoder.fc dropped, same output."""
    nets = {"depth18": tiny_dagan[1].depth_net, "depth50": official_files["_r50"].depth_net}
    for key, backbone in (("depth18", "resnet18"), ("depth50", "resnet50")):
        depth = read_depth_folder(official_files[key])
        assert depth.backbone == backbone and (depth.height, depth.width, depth.use_stereo) == (
            256,
            256,
            False,
        )
        assert not any(k.startswith("encoder.fc.") for k in depth.encoder)
        for path in (official_files[key] / "encoder.pth", official_files[key].parent):
            assert resolve_depth_folder(path) == official_files[key]
        net = load_depth_net(official_files[key], expected_backbone=backbone)
        assert net.backbone == backbone and not net.training
        assert_same_state(nets[key], net)
        with torch.no_grad():
            assert torch.equal(net(frames64), nets[key](frames64))


def test_depth_import_with_pose(official_files, expected_dagan, tmp_path: Path, frames64) -> None:
    """A depth folder converts to our depth checkpoint; the 12-output pose.pth keeps its first six outputs."""
    out = import_official_depth(official_files["depth18"], tmp_path / "depth.pt")
    depth = load_depth_models(out)
    assert depth.kind == "depth" and depth.pose_net is not None
    # the depth loader reads the folder itself to the same networks (what --depth-checkpoint DIR gives)
    direct = load_depth_models(official_files["depth18"])
    assert direct.kind == "depth" and direct.pose_net is not None
    assert_same_state(depth.depth_net, direct.depth_net)
    assert_same_state(depth.pose_net, direct.pose_net)
    with torch.no_grad():
        assert torch.equal(depth.depth_net(frames64), expected_dagan["disparity"])
        pose = depth.pose_net(frames64[:1], frames64[1:])
        ref = official_files["_pose18"](frames64[:1], frames64[1:])
    assert torch.equal(pose["axisangle"], ref["axisangle"])
    assert torch.equal(pose["translation"], ref["translation"])
    # our depth checkpoint is accepted wherever a depth folder is, with the same backbone check
    _, models = load_official_reenactment(official_files["dagan"], out, arch="dagan")
    assert_same_outputs(expected_dagan, run_models(models, frames64))
    assert load_depth_net(out, expected_backbone="resnet18").backbone == "resnet18"
    with pytest.raises(
        CheckpointError, match=r"depth encoder is ResNet-18 but the checkpoint was trained with"
    ):
        load_depth_net(out, expected_backbone="resnet50")


def test_import_official_conversion(official_files, expected_spade, tmp_path: Path, frames64) -> None:
    """import_official writes our self-describing checkpoint; loading it rebuilds the same models."""
    out = import_official(official_files["spade"], official_files["depth18_spade"], tmp_path / "spade.pt")
    ckpt = load_checkpoint(out, kind="reenactment")
    assert ckpt["arch"] == "dagan-spade" and ckpt["epoch"] == 149 and ckpt["optimizers"] == {}
    assert ckpt["meta"]["imported_from"]["format"] == "official DaGAN training checkpoint"
    assert set(ckpt["modules"]) == {"kp_detector", "generator", "discriminator", "depth_net"}
    cfg = config_from_dict(ckpt["config"])
    rebuilt = build_reenactment_models(cfg)
    for name, module in ckpt["modules"].items():
        load_module_state(getattr(rebuilt, name), module, name, out)
    assert_same_outputs(expected_spade, run_models(rebuilt.eval(), frames64))


def test_fomm_checkpoint_needs_no_depth(tmp_path: Path, frames64) -> None:
    """The same layout without the depth branch is a FOMM checkpoint; it loads as arch fomm, depth-free."""
    _, models = build_models(CONFIGS / "tiny" / "fomm-64.yaml", seed=6)
    ckpt = write_training_checkpoint(tmp_path / "vox-cpk.pth.tar", models)
    cfg, loaded = load_official_reenactment(ckpt)
    assert cfg.arch == "fomm" and loaded.depth_net is None
    assert_same_outputs(run_models(models, frames64), run_models(loaded, frames64))


def test_parameter_counts_from_keys(official_files, tiny_dagan, tiny_spade) -> None:
    """The key-based count used for files equals the module's parameter count for every kind of module."""
    _, dagan_pp = build_models(CONFIGS / "tiny" / "dagan++-64.yaml", seed=7)
    modules = [
        *dagan_pp.children(),
        *tiny_dagan[1].children(),
        *tiny_spade[1].children(),
        official_files["_pose18"],
    ]
    for module in modules:
        assert count_state_parameters(module.state_dict()) == count_parameters(module), type(module).__name__


# --------------------------------------------------------------------------- wrong pairings and bad files


def test_wrong_arch_is_named(official_files) -> None:
    with pytest.raises(CheckpointError, match=r"this is a SPADE generator; use --arch dagan-spade"):
        load_official_reenactment(official_files["spade"], official_files["depth18"], arch="dagan")
    with pytest.raises(CheckpointError, match=r"this is a plain DaGAN generator; use --arch dagan\b"):
        load_official_reenactment(official_files["dagan"], official_files["depth18"], arch="dagan-spade")
    with pytest.raises(CheckpointError, match=r"not DaGAN\+\+.*use --arch dagan\b"):
        load_official_reenactment(official_files["dagan"], official_files["depth18"], arch="dagan++")
    with pytest.raises(
        CheckpointError,
        match=r"this is a SPADE generator; use --arch dagan-spade \(the config says arch dagan\)",
    ):
        load_official_reenactment(
            official_files["spade"],
            official_files["depth18"],
            config=load_config(CONFIGS / "tiny" / "dagan-64.yaml"),
        )


def test_depth_backbone_mismatch(official_files) -> None:
    """The #1 official complaint: an R50 depth model with a generator trained on R18 — a clear message."""
    with pytest.raises(
        CheckpointError, match=r"depth encoder is ResNet-50 but the checkpoint was trained with ResNet-18"
    ):
        load_depth_net(official_files["depth50"], expected_backbone="resnet18")
    cfg18 = load_config(CONFIGS / "tiny" / "dagan-64.yaml")
    assert cfg18.model_params.depth_params.backbone == "resnet18"
    with pytest.raises(
        CheckpointError, match=r"depth encoder is ResNet-50 but the config .* expects ResNet-18"
    ):
        load_official_reenactment(official_files["dagan"], official_files["depth50"], config=cfg18)
    # Without a config the pairing loads (the keypoint detector only sees the disparity) but is flagged.
    with pytest.warns(OfficialPairingWarning, match="trained with the ResNet-18 depth model"):
        cfg, models = load_official_reenactment(official_files["dagan"], official_files["depth50"])
    assert cfg.model_params.depth_params.backbone == "resnet50" and models.depth_net.backbone == "resnet50"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_official_reenactment(official_files["dagan"], official_files["depth18"], config=cfg18)


def test_swapped_and_missing_inputs(official_files) -> None:
    depth = official_files["depth18"]
    with pytest.raises(CheckpointError, match=r"is a Monodepth2 depth folder, not a reenactment checkpoint"):
        load_official_reenactment(depth, depth)
    with pytest.raises(CheckpointError, match=r"Monodepth2 depth encoder file, not a reenactment checkpoint"):
        load_official_reenactment(depth / "encoder.pth", depth)
    with pytest.raises(CheckpointError, match=r"reenactment checkpoint, not a depth model"):
        load_official_reenactment(official_files["dagan"], official_files["dagan"])
    with pytest.raises(CheckpointError, match=r"needs its depth model.*--depth-checkpoint DIR"):
        load_official_reenactment(official_files["dagan"])


def test_bad_depth_folders(official_files, tmp_path: Path) -> None:
    runs = tmp_path / "models"
    for n in (0, 9, 19):  # a Monodepth2 training run keeps one folder per epoch
        (runs / f"weights_{n}").mkdir(parents=True)
        (runs / f"weights_{n}" / "encoder.pth").write_bytes(
            (official_files["depth18"] / "encoder.pth").read_bytes()
        )
    with pytest.raises(CheckpointError, match=r"holds 3 Monodepth2 depth models .*weights_19"):
        read_depth_folder(runs)
    with pytest.raises(CheckpointError, match=r"no depth.pth"):
        read_depth_folder(runs / "weights_9")
    with pytest.raises(CheckpointError, match=r"should be a depth decoder .* but holds a depth encoder"):
        torch.save(
            torch.load(runs / "weights_0" / "encoder.pth", weights_only=True),
            runs / "weights_0" / "depth.pth",
        )
        read_depth_folder(runs / "weights_0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"holds no Monodepth2 depth model"):
        read_depth_folder(empty)


def test_mixed_module_files(tmp_path: Path, tiny_dagan) -> None:
    """A generator and a keypoint detector from different models (different K) are refused by name."""
    cfg = load_config(CONFIGS / "tiny" / "dagan-64.yaml")
    cfg.model_params.common_params.num_kp = 5
    _, other = build_models(cfg, seed=8)
    folder = tmp_path / "mixed"
    folder.mkdir()
    torch.save(tiny_dagan[1].generator.state_dict(), folder / "generator.pt")
    torch.save(other.kp_detector.state_dict(), folder / "kp_detector.pt")
    with pytest.raises(
        CheckpointError, match=r"generator was trained with 10 keypoints but the keypoint detector has 5"
    ):
        load_official_reenactment(folder / "generator.pt", tmp_path / "no-depth-needed-to-see-this")
    lone = tmp_path / "lone"
    lone.mkdir()
    torch.save(tiny_dagan[1].generator.state_dict(), lone / "generator.pt")
    with pytest.raises(CheckpointError, match=r"found no kp_detector state dict beside it"):
        load_official_reenactment(lone / "generator.pt", tmp_path)


def test_keypoint_count_mismatch_with_config(official_files) -> None:
    cfg = load_config(CONFIGS / "tiny" / "dagan-64.yaml")
    cfg.model_params.common_params.num_kp = 15
    with pytest.raises(CheckpointError, match=r"has 10 keypoints but the config says 15"):
        load_official_reenactment(official_files["dagan"], official_files["depth18"], config=cfg)


class Payload:
    """A pickled object that would run code when unpickled without weights_only."""

    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def test_unsafe_and_foreign_files(tmp_path: Path, tiny_dagan) -> None:
    evil = tmp_path / "evil.pth.tar"
    torch.save(
        {"generator": tiny_dagan[1].generator.state_dict(), "kp_detector": {}, "args": Payload()}, evil
    )
    with pytest.raises(CheckpointError, match=r"refusing to load .*non-tensor Python objects"):
        load_official_reenactment(evil, tmp_path)
    with pytest.raises(CheckpointError, match=r"refusing to load"):
        describe_checkpoint(evil)
    evil_depth = tmp_path / "evil_depth"
    evil_depth.mkdir()
    torch.save({"height": 256, "opt": Payload()}, evil_depth / "encoder.pth")
    torch.save({}, evil_depth / "depth.pth")
    with pytest.raises(CheckpointError, match=r"refusing to load"):
        read_depth_folder(evil_depth)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint at all\n" * 20)
    with pytest.raises(CheckpointError, match=r"notes.pth is not a PyTorch checkpoint"):
        load_official_reenactment(text, tmp_path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match=r"is not a DaGAN checkpoint"):
        load_official_reenactment(other, tmp_path)
    with pytest.raises(CheckpointError, match=r"not a dagan checkpoint; an official depth model is a Monodepth2"):
        load_depth_models(other)  # the same file as a depth model
    assert classify_state_dict(torch.zeros(3)) is None


# --------------------------------------------------------------------------- the CLI


def test_cli_import_official(
    official_files, expected_dagan, tmp_path: Path, capsys, frames64
) -> None:
    out = tmp_path / "dagan.pt"
    argv = [
        "import-official",
        "--checkpoint",
        str(official_files["dagan"]),
        "--depth",
        str(official_files["depth18"]),
        "-o",
        str(out),
        "--arch",
        "dagan",
        "--config",
        str(CONFIGS / "tiny" / "dagan-64.yaml"),
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "imported from the official DaGAN training checkpoint" in printed
    ckpt = load_checkpoint(out, kind="reenactment")
    models = build_reenactment_models(config_from_dict(ckpt["config"]))
    for name, state in ckpt["modules"].items():
        load_module_state(getattr(models, name), state, name, out)
    assert_same_outputs(expected_dagan, run_models(models.eval(), frames64))
    # refuses to overwrite, and wrong pairings are one-line errors (exit 2)
    assert cli.main(argv) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main([*argv[:-4], "--arch", "dagan-spade", "--force"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("dagan: error: ") and "use --arch dagan" in err and len(err.strip().splitlines()) == 1
    )
    assert (
        cli.main(["import-official", "--checkpoint", str(official_files["dagan"]), "-o", str(out), "--force"])
        == 2
    )
    assert "--depth-checkpoint DIR" in capsys.readouterr().err
    # the depth folder alone becomes a depth checkpoint
    assert (
        cli.main(["import-official", "--depth", str(official_files["depth50"]), "-o", str(tmp_path / "d.pt")])
        == 0
    )
    assert load_checkpoint(tmp_path / "d.pt", kind="depth")["config"]["model_params"]["depth_params"][
        "backbone"
    ] == ("resnet50")


def test_cli_subprocess_smoke(official_files, tmp_path: Path) -> None:
    """One real process: import-official then a one-line error for a depth folder given as --checkpoint."""
    out = tmp_path / "x.pt"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagan.cli",
            "import-official",
            "--checkpoint",
            str(official_files["modules"] / "generator.pt"),
            "--depth",
            str(official_files["depth18"]),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and "arch        dagan" in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagan.cli",
            "import-official",
            "--checkpoint",
            str(official_files["depth18"]),
            "--depth",
            str(official_files["depth18"]),
            "-o",
            str(tmp_path / "y.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "is a Monodepth2 depth folder, not a reenactment checkpoint" in bad.stderr
