"""``dagan depth`` and ``dagan train-depth`` from the command line: outputs, formats and one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.atomic_files import atomic_torch_save
from dagan.checkpoints.depth import load_depth_models
from dagan.commands import depth as depth_cmd
from dagan.commands import train_depth as train_depth_cmd
from dagan.config import load_config
from dagan.data.video import VideoWriter, probe_video
from dagan.infer.depth_export import read_ply, uint16_to_disparity
from dagan.train.depth_trainer import DepthTrainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "dagan++-64.yaml"
CLIP = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md


def run_cmd(module, argv: list[str]) -> int:
    """Run a sub-command in-process exactly as ``dagan.cli`` does (parser + error handling)."""
    from dagan.cli import main

    try:
        return main([module.NAME, *argv])
    except SystemExit as exc:  # argparse errors
        return int(exc.code)


def _checkpoint(tmp: Path, uncertainty: bool) -> Path:
    cfg = load_config(TINY)
    cfg.model_params.depth_params.uncertainty = uncertainty
    torch.manual_seed(0)
    trainer = DepthTrainer(cfg)
    return atomic_torch_save(trainer.state_dict(), tmp / ("fdnpp.pt" if uncertainty else "fdn.pt"))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt"), uncertainty=True)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage.data import astronaut

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(astronaut()).save(path)
    return path


@pytest.fixture(autouse=True)
def _no_checkpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No $DAGAN_CHECKPOINT from the environment running the tests."""
    monkeypatch.delenv("DAGAN_CHECKPOINT", raising=False)


def test_image_outputs_are_16bit_disparity_preview_and_ply(ckpt: Path, astronaut: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [str(astronaut), "-o", str(out), "--checkpoint", str(ckpt), "--ply", "--no-crop"]
    assert run_cmd(depth_cmd, argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.ply", "astronaut_disp.png", "astronaut_disp_color.png"]
    png = Image.open(out / "astronaut_disp.png")
    assert png.mode.startswith("I") and png.size == (512, 512)
    disp16 = np.asarray(png)
    assert disp16.dtype == np.uint16 or disp16.max() > 255
    # The 16-bit PNG stores the net's own disparity (same model, same resize) to 1/65535.
    models = load_depth_models(ckpt)
    from dagan.data.video import read_image
    from dagan.infer.depth_export import DepthPredictor

    expected = DepthPredictor(models).disparity(read_image(astronaut)[None])[0]
    assert np.abs(uint16_to_disparity(disp16) - expected).max() < 2e-5
    color = Image.open(out / "astronaut_disp_color.png")
    assert color.mode == "RGB" and color.size == (512, 512)
    pts, cols = read_ply(out / "astronaut.ply")
    assert pts.shape == (512 * 512, 3) and cols is not None and cols.shape == (512 * 512, 3)
    assert np.all(pts[:, 2] > 0)  # in front of the camera
    # colours are the image's pixels, in row-major order
    assert np.array_equal(cols[:512], read_image(astronaut)[0])


def test_folder_gives_outputs_per_image(ckpt: Path, astronaut: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    img = np.asarray(Image.open(astronaut))[::4, ::4]
    for name in ("a.png", "b.jpg"):
        Image.fromarray(img).save(folder / name)
    out = tmp_path / "out"
    argv = [str(folder), "-o", str(out), "--checkpoint", str(ckpt), "--size", "64", "--no-crop"]
    assert run_cmd(depth_cmd, argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_disp.png", "a_disp_color.png", "b_disp.png", "b_disp_color.png"]
    assert Image.open(out / "b_disp.png").size == (128, 128)


def test_real_video_gives_video_png_frames_and_uncertainty(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [str(CLIP), "-o", str(out), "--checkpoint", str(ckpt), "--max-frames", "5", "--uncertainty", "--png",
            "--no-crop"]
    assert run_cmd(depth_cmd, argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hello_face_176_disp", "hello_face_176_disp.mp4", "hello_face_176_uncertainty.mp4"]
    info = probe_video(out / "hello_face_176_disp.mp4")
    assert info.num_frames == 5 and (info.width, info.height) == (176, 176) and info.fps == pytest.approx(30.0)
    assert probe_video(out / "hello_face_176_uncertainty.mp4").num_frames == 5
    frames = sorted((out / "hello_face_176_disp").iterdir())
    assert [f.name for f in frames] == [f"{i:07d}.png" for i in range(5)]
    assert np.asarray(Image.open(frames[0])).shape == (176, 176)


def test_uncertainty_is_refused_for_images_and_fdn(ckpt: Path, astronaut: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(astronaut), "-o", str(out), "--checkpoint", str(ckpt), "--uncertainty"]) == 2
    assert "only available for videos" in capsys.readouterr().err
    fdn = _checkpoint(tmp_path, uncertainty=False)
    assert run_cmd(depth_cmd, [str(CLIP), "-o", str(out), "--checkpoint", str(fdn), "--uncertainty",
                               "--max-frames", "2"]) == 2
    assert "no uncertainty head" in capsys.readouterr().err
    assert not out.exists()


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    broken = tmp / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    noface = tmp / "noface.png"
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(noface)
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    faceless = tmp / "faceless.mp4"
    with VideoWriter(faceless, 25) as w:
        for i in range(6):
            w.write(np.full((64, 64, 3), 40 * i, np.uint8))
    return {
        "missing": (tmp / "nope.png", "not found"),
        "broken": (broken, "cannot read image"),
        "noface": (noface, "--no-crop"),
        "faceless": (faceless, "--no-crop"),
        "corrupt": (corrupt, "corrupt.mp4"),
        "text": (tmp / "notes.txt", "neither an image"),
    }


@pytest.mark.parametrize("case", ["missing", "broken", "noface", "faceless", "corrupt", "text"])
def test_bad_input_one_line_error_and_no_output(case: str, ckpt: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    path, words = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(path), "-o", str(out), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dagan: error:") and "\n" not in err and "Traceback" not in err
    assert words in err
    assert not out.exists()


def test_bad_checkpoint_and_size(astronaut: Path, ckpt: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(astronaut), "-o", str(out), "--checkpoint", str(junk)]) == 2
    assert "junk.pt" in capsys.readouterr().err
    assert run_cmd(depth_cmd, [str(astronaut), "-o", str(out), "--checkpoint", str(ckpt), "--size", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_video_mid_stream_leaves_nothing(ckpt: Path, tmp_path: Path) -> None:
    """A video whose later bytes are garbage: either decoded as far as possible or a one-line error, but
    never a half-written output file."""
    good = tmp_path / "v.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(good, 25) as w:
        for _ in range(20):
            w.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = bytearray(good.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    rc = run_cmd(depth_cmd, [str(bad), "-o", str(out), "--checkpoint", str(ckpt), "--no-crop"])
    if rc != 0:
        assert not out.exists()
    else:
        assert [p.name for p in out.iterdir()] == ["bad_disp.mp4"]


def test_train_depth_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    missing = run_cmd(train_depth_cmd, ["--config", str(tmp_path / "nope.yaml"), "--data", str(tmp_path / "data")])
    assert missing == 2 and "config file not found" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"base: {TINY}\ndepth_train_params: {{lr_milestone: [10]}}\n")
    assert run_cmd(train_depth_cmd, ["--config", str(typo), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "lr_milestone" in err and "lr_milestones" in err
    out = tmp_path / "run"
    assert run_cmd(train_depth_cmd, ["--config", str(TINY), "--data", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert "no videos" in capsys.readouterr().err
    assert not out.exists()


def test_subprocess_smoke(ckpt: Path, astronaut: Path, tmp_path: Path) -> None:
    """The installed entry point, as a user runs it (help text and one real image)."""
    helptext = subprocess.run([sys.executable, "-m", "dagan.cli", "depth", "--help"], capture_output=True, text=True)
    assert helptext.returncode == 0 and "only available for videos" in " ".join(helptext.stdout.split())
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "dagan.cli", "depth", str(astronaut), "-o", str(out),
                           "--checkpoint", str(ckpt), "--size", "64"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "astronaut_disp.png").is_file()


def test_command_modules_follow_the_cli_convention() -> None:
    for module in (depth_cmd, train_depth_cmd):
        assert isinstance(module.NAME, str) and isinstance(module.HELP, str)
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)


# --------------------------------------------------------------------------- face crop and the bundled model


def _disparity(path: Path) -> np.ndarray:
    return uint16_to_disparity(np.asarray(Image.open(path)))


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dagan depth`` of the astronaut photo with the defaults (bundled model, face crop), with --ply."""
    from dagan.cli import main

    out = tmp_path_factory.mktemp("portrait") / "out"
    assert main(["depth", str(DEMO_SOURCE), "-o", str(out), "--ply"]) == 0
    return out


def test_portrait_depth_is_of_the_face_crop_animate_uses(portrait: Path) -> None:
    from dagan.data.video import read_image, resize_rgb
    from dagan.infer.animator import Animator

    disp = _disparity(portrait / "astronaut_disp.png")
    side = disp.shape[0]
    assert disp.shape == (side, side) and 64 < side < 512  # the crop, at its own size in the 512² photo
    # the face (middle of the crop) is nearer, i.e. brighter, than the crop's corners (background)
    k = side // 8
    centre = disp[side * 2 // 5 : side * 3 // 5, side * 2 // 5 : side * 3 // 5].mean()
    corners = np.mean([disp[:k, :k].mean(), disp[:k, -k:].mean(), disp[-k:, :k].mean(), disp[-k:, -k:].mean()])
    assert centre > corners + 0.05
    # the point cloud's colours are the crop's pixels: the same square dagan animate cuts out
    _, cols = read_ply(portrait / "astronaut.ply")
    assert cols is not None and cols.shape == (side * side, 3)
    animator = Animator.from_checkpoint(DEMO_CHECKPOINT, device="cpu")
    crop64, box, _ = animator.crop_source(read_image(DEMO_SOURCE))
    assert round(box.size) == side
    ours64 = resize_rgb(cols.reshape(side, side, 3), 64).astype(float)
    assert np.abs(ours64 - crop64.astype(float)).mean() < 3.0


def test_no_crop_gives_the_whole_picture(portrait: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(DEMO_SOURCE), "-o", str(out), "--no-crop"]) == 0
    assert _disparity(out / "astronaut_disp.png").shape == (512, 512)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grey_and_transparent_images_are_converted_not_refused(mode: str, tmp_path: Path) -> None:
    """A grey (or opaque RGBA) file gives the depth of the same pixels stored as RGB."""
    rgb = np.asarray(Image.open(DEMO_SOURCE).convert("RGB"))
    if mode == "L":
        grey = np.asarray(Image.fromarray(rgb).convert("L"))
        Image.fromarray(grey).save(tmp_path / "face.png")
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(tmp_path / "ref.png")
    else:
        Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(tmp_path / "face.png")
        Image.fromarray(rgb).save(tmp_path / "ref.png")
    assert Image.open(tmp_path / "face.png").mode == mode
    results = {}
    for name in ("face", "ref"):
        out = tmp_path / f"out-{name}"
        assert run_cmd(depth_cmd, [str(tmp_path / f"{name}.png"), "-o", str(out)]) == 0
        results[name] = _disparity(out / f"{name}_disp.png")
    assert results["face"].shape == results["ref"].shape
    assert np.abs(results["face"] - results["ref"]).max() < 1e-3


def test_folder_images_are_each_cropped(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = np.asarray(Image.open(DEMO_SOURCE).convert("RGB"))
    Image.fromarray(rgb).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(rgb[:384, 64:])).save(folder / "b.png")  # the face off-centre
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(folder), "-o", str(out)]) == 0
    a, b = _disparity(out / "a_disp.png"), _disparity(out / "b_disp.png")
    assert a.shape[0] == a.shape[1] < 384 and b.shape[0] == b.shape[1] < 384
    assert abs(a.shape[0] - b.shape[0]) < 0.15 * a.shape[0]  # the same face: about the same crop size


def test_uncertainty_of_the_bundled_model_on_the_clip(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(CLIP), "-o", str(out), "--uncertainty", "--max-frames", "4"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hello_face_176_disp.mp4", "hello_face_176_uncertainty.mp4"]
    info = probe_video(out / "hello_face_176_uncertainty.mp4")
    assert info.num_frames == 4 and info.width == info.height < 176  # the face crop tube
    from dagan.data.video import read_frames

    frame = read_frames(out / "hello_face_176_uncertainty.mp4", [1])[0].astype(float)
    assert frame.std() > 2.0  # a map, not a constant


def test_bundled_model_is_the_default_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(DEMO_SOURCE), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "bundled" in line]
    assert len(notes) == 1 and str(DEMO_CHECKPOINT) in notes[0] and "dagan train-depth" in notes[0]


def test_dagan_checkpoint_environment_wins_over_the_bundled_model(
    ckpt: Path, astronaut: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagan.data.video import read_image
    from dagan.infer.depth_export import DepthPredictor

    monkeypatch.setenv("DAGAN_CHECKPOINT", str(ckpt))
    out = tmp_path / "out"
    assert run_cmd(depth_cmd, [str(astronaut), "-o", str(out), "--no-crop", "--size", "64"]) == 0
    assert "bundled" not in capsys.readouterr().err
    expected = DepthPredictor(load_depth_models(ckpt), 64).disparity(read_image(astronaut)[None])[0]
    assert np.abs(_disparity(out / "astronaut_disp.png") - expected).max() < 2e-5
    monkeypatch.setenv("DAGAN_CHECKPOINT", str(tmp_path / "missing.pt"))
    assert run_cmd(depth_cmd, [str(astronaut), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dagan: error: $DAGAN_CHECKPOINT") and "missing.pt" in err and "\n" not in err


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_pose_net_trains_against_a_frozen_depth_net(which: str, ckpt: Path, tmp_path: Path) -> None:
    """train_depth(frozen_depth=…): the depth net comes from the checkpoint and stays bit-identical (also its
    BatchNorm statistics); only the pose net is optimised. This is how the bundled model got its pose net.
    The frozen net's shape comes from its checkpoint: the bundled one is narrower than the tiny config's."""
    from dagan.checkpoints.format import safe_torch_load
    from dagan.train.depth_trainer import train_depth

    if which == "bundled":
        ckpt = DEMO_CHECKPOINT

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    with VideoWriter(data / "moving.mp4", 25) as w:
        for t in range(8):  # a textured picture sliding sideways
            w.write(texture[:, 2 * t : 2 * t + 64])
    cfg = load_config(TINY)
    cfg.model_params.depth_params.uncertainty = True
    result = train_depth(cfg, data, out=tmp_path / "run", frozen_depth=ckpt, max_steps=2, show_progress=False,
                         echo=False, tensorboard=False)
    trained = safe_torch_load(result.checkpoint)
    frozen = safe_torch_load(ckpt)["modules"]["depth_net"]
    assert trained["modules"]["depth_net"].keys() == frozen.keys()
    assert all(torch.equal(trained["modules"]["depth_net"][k], v) for k, v in frozen.items())
    optimised = sum(len(g["params"]) for g in trained["optimizers"]["adam"]["param_groups"])
    assert optimised == len(trained["modules"]["pose_net"]) - sum(
        k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in trained["modules"]["pose_net"]
    )
