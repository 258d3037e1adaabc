"""``dagan animate`` from the command line: good runs, and every bad input as a one-line error with a non-zero
exit and no output file left behind."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import dagan.cli
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.checkpoints.format import save_checkpoint
from dagan.config import load_config
from dagan.data.video import VideoWriter, iter_frames, list_frame_files, probe_video, read_image
from dagan.models.factory import build_reenactment_models

ROOT = Path(__file__).resolve().parents[1]
HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs" / "tiny" / "dagan++-64.yaml")
    m = build_reenactment_models(cfg, discriminator=False)
    ckpt = save_checkpoint(
        d / "tiny.pt",
        kind="reenactment",
        config=cfg.to_dict(),
        rng=False,
        modules={"kp_detector": m.kp_detector, "generator": m.generator, "depth_net": m.depth_net},
    )
    clip = d / "clip.mp4"
    with VideoWriter(clip, probe_video(HELLO).rate, audio_from=HELLO, preset="ultrafast") as w:
        for i, frame in enumerate(iter_frames(HELLO)):
            if i == 6:
                break
            w.write(frame)
    return {"ckpt": ckpt, "clip": clip, "dir": d}


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = dagan.cli.main(["animate", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_animate_defaults_keep_frames_fps_and_audio(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    rc, stdout, err = cli(
        capsys,
        "-s",
        files["clip"],
        "-d",
        files["clip"],
        "-o",
        out,
        "--checkpoint",
        files["ckpt"],
        "--quiet",
        "--frames-out",
        tmp_path / "frames",
    )
    assert rc == 0, err
    assert "bundled" not in err
    assert "wrote" in stdout and "6 frames" in stdout
    info, src = probe_video(out), probe_video(files["clip"])
    assert (info.num_frames, info.rate, info.has_audio) == (src.num_frames, src.rate, True)
    # pasted back by default: the source picture's size, not the 64-px model crop
    assert (info.width, info.height) == (src.width, src.height) == (176, 176)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 6


def test_animate_options(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sbs.mp4"
    rc, _, err = cli(
        capsys,
        "-s",
        files["clip"],
        "-d",
        files["clip"],
        "-o",
        out,
        "--checkpoint",
        files["ckpt"],
        "--quiet",
        "--no-audio",
        "--absolute",
        "--no-crop",
        "--side-by-side",
        "--batch-size",
        "4",
        "--precision",
        "bf16",
        "--device",
        "cpu",
    )
    assert rc == 0, err
    info = probe_video(out)
    # three 64-px panels, each enlarged to the 256-px minimum panel height
    assert (info.num_frames, info.width, info.height, info.has_audio) == (6, 3 * 256, 256, False)


def test_command_defaults_are_the_python_api_defaults() -> None:
    from dagan.commands import animate
    from dagan.infer.options import AnimateOptions

    parser = argparse.ArgumentParser()
    animate.add_arguments(parser)
    args = parser.parse_args(["-s", "face.png", "-d", "talk.mp4", "-o", "out.mp4"])
    assert animate.animate_options(args) == AnimateOptions()
    args = parser.parse_args(["-s", "f.png", "-d", "t.mp4", "-o", "o.mp4", "--no-crop", "--best-frame", "3"])
    assert animate.animate_options(args) == AnimateOptions(crop=False, best_frame=3)


def test_subprocess_smoke(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "smoke.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagan.cli",
            "animate",
            "-s",
            str(files["clip"]),
            "-d",
            str(files["clip"]),
            "-o",
            str(out),
            "--checkpoint",
            str(files["ckpt"]),
            "--no-crop",
            "--max-frames",
            "3",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert probe_video(out).num_frames == 3
    help_text = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "animate", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "--find-best-frame" in help_text and "--no-paste-back" in help_text
    assert "bundled 64x64 demo model" in help_text


# --------------------------------------------------------------------------- bad input


def _audio_only(src: Path, dst: Path) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        a = inp.streams.audio[0]
        o = out.add_stream_from_template(a)
        for pkt in inp.demux(a):
            if pkt.dts is None:
                continue
            pkt.stream = o
            out.mux(pkt)
    return dst


def _bad_case(name: str, files: dict[str, Path], d: Path) -> tuple[dict[str, object], str]:
    """(argument overrides, expected words in the error) for one kind of bad input, created in ``d``."""
    if name == "missing source":
        return {"-s": d / "nope.png"}, "not found"
    if name == "missing driving":
        return {"-d": d / "nope.mp4"}, "not found"
    if name == "zero-byte driving":
        (d / "empty.mp4").write_bytes(b"")
        return {"-d": d / "empty.mp4"}, "empty"
    if name == "truncated mp4":
        data = files["clip"].read_bytes()
        (d / "cut.mp4").write_bytes(data[: len(data) // 2])
        return {"-d": d / "cut.mp4"}, "video"
    if name == "corrupt mp4":
        (d / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
        return {"-d": d / "junk.mp4"}, "cannot read video"
    if name == "no video stream":
        return {"-d": _audio_only(files["clip"], d / "audio.m4a")}, "no video stream"
    if name == "corrupt source image":
        (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        return {"-s": d / "bad.png"}, "cannot read image"
    if name == "no face":
        Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(d / "blank.png")
        return {"-s": d / "blank.png"}, "no face found"
    if name == "foreign checkpoint":
        torch.save({"weights": torch.zeros(2)}, d / "foreign.pt")
        return {"--checkpoint": d / "foreign.pt"}, "not a dagan checkpoint"
    if name == "non-tensor pickle":
        torch.save({"args": __import__("argparse").Namespace(x=1)}, d / "pickle.pt")
        return {"--checkpoint": d / "pickle.pt"}, "non-tensor"
    if name == "image as checkpoint":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "photo.png")
        return {"--checkpoint": d / "photo.png"}, "not a PyTorch file: it is a PNG image"
    if name == "video as checkpoint":
        return {"--checkpoint": files["clip"]}, "not a PyTorch file: it is an MP4/MOV video"
    if name == "zero-byte checkpoint":
        (d / "zero.pt").write_bytes(b"")
        return {"--checkpoint": d / "zero.pt"}, "empty"
    if name == "unwritable output":
        (d / "afile").write_text("x")
        return {"-o": d / "afile" / "out.mp4"}, "cannot write output"
    if name == "fp16 on cpu":
        return {"--precision": "fp16", "--device": "cpu"}, "fp16 needs a CUDA device"
    raise AssertionError(name)


BAD = [
    "missing source",
    "missing driving",
    "zero-byte driving",
    "truncated mp4",
    "corrupt mp4",
    "no video stream",
    "corrupt source image",
    "no face",
    "foreign checkpoint",
    "non-tensor pickle",
    "image as checkpoint",
    "video as checkpoint",
    "zero-byte checkpoint",
    "unwritable output",
    "fp16 on cpu",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_one_line_error_with_no_output(
    case: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    outdir = tmp_path / "out"
    outdir.mkdir()
    args: dict[str, object] = {
        "-s": files["clip"],
        "-d": files["clip"],
        "-o": outdir / "result.mp4",
        "--checkpoint": files["ckpt"],
        "--frames-out": outdir / "frames",
    }
    override, words = _bad_case(case, files, inputs)
    args.update(override)
    rc, _, err = cli(capsys, *[x for kv in args.items() for x in kv], "--quiet", "--max-frames", "2")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dagan: error:"), err
    assert words.lower() in lines[0].lower(), lines[0]
    assert list(outdir.iterdir()) == []  # nothing written, no temporary files left


# --------------------------------------------------------------------------- defaults


def test_without_checkpoint_the_bundled_model_animates_the_whole_picture(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """`dagan animate -s face -d clip -o out.mp4` alone: the bundled model, said in one line; the output is
    the source photo (512²) with only the face region generated; outputs get the usual permissions."""
    from dagan.faces import create_detector, largest_face, square_crop_box

    env = {k: v for k, v in os.environ.items() if k != "DAGAN_CHECKPOINT"}
    out, frames = tmp_path / "out.mp4", tmp_path / "frames"
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "animate", "-s", str(DEMO_SOURCE), "-d", str(files["clip"]),
         "-o", str(out), "--frames-out", str(frames), "--max-frames", "2", "--quiet"],
        capture_output=True, text=True, timeout=300, env=env, umask=0o022,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = [line for line in proc.stderr.splitlines() if line.startswith("dagan:")]
    assert len(notes) == 1, proc.stderr
    assert notes[0].startswith("dagan: using the bundled 64×64 demo model (")
    assert str(DEMO_CHECKPOINT) in notes[0] and "--checkpoint" in notes[0] and "import-official" in notes[0]

    source = read_image(DEMO_SOURCE)
    assert source.shape == (512, 512, 3)
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (2, 512, 512, True)
    box = square_crop_box(largest_face(create_detector("auto").detect(source)), source.shape[:2])
    x0, y0, x1, y1 = (int(v) for v in np.round(box.as_array()))
    inside = np.zeros(source.shape[:2], bool)
    inside[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = True
    assert 0.05 < inside.mean() < 0.5
    pngs = list_frame_files(frames)
    for png in pngs:
        frame = read_image(png)
        assert frame.shape == source.shape
        assert np.array_equal(frame[~inside], source[~inside])  # lossless PNGs: untouched away from the face
        assert np.abs(frame[inside].astype(int) - source[inside]).mean() > 1.0  # the face is generated

    assert stat.S_IMODE(frames.stat().st_mode) == 0o755
    assert [stat.S_IMODE(p.stat().st_mode) for p in pngs] == [0o644, 0o644]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_environment_checkpoint_beats_the_bundled_one_and_the_option_beats_both(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    common = ["-s", files["clip"], "-d", files["clip"], "--quiet", "--max-frames", "2", "--no-paste-back"]
    monkeypatch.setenv("DAGAN_CHECKPOINT", str(files["ckpt"]))
    rc, _, err = cli(capsys, *common, "-o", tmp_path / "env.mp4", "--frames-out", tmp_path / "env")
    assert rc == 0 and "bundled" not in err, err
    monkeypatch.setenv("DAGAN_CHECKPOINT", str(tmp_path / "missing.pt"))
    rc, _, err = cli(
        capsys, *common, "-o", tmp_path / "opt.mp4", "--frames-out", tmp_path / "opt", "--checkpoint", files["ckpt"]
    )
    assert rc == 0 and "bundled" not in err, err
    monkeypatch.delenv("DAGAN_CHECKPOINT")
    rc, _, err = cli(capsys, *common, "-o", tmp_path / "bundled.mp4", "--frames-out", tmp_path / "bundled")
    assert rc == 0 and "using the bundled" in err, err
    env, opt, bundled = (
        np.stack([read_image(p) for p in list_frame_files(tmp_path / name)]) for name in ("env", "opt", "bundled")
    )
    assert np.array_equal(env, opt)  # $DAGAN_CHECKPOINT's model, not the bundled one
    assert not np.array_equal(env, bundled)


def test_bad_environment_checkpoint_is_named_in_the_error(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGAN_CHECKPOINT", str(tmp_path / "missing.pt"))
    rc, _, err = cli(capsys, "-s", files["clip"], "-d", files["clip"], "-o", tmp_path / "o.mp4", "--quiet")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("dagan: error: $DAGAN_CHECKPOINT:") and "missing.pt" in lines[0]
    assert not (tmp_path / "o.mp4").exists()


def test_paste_back_without_crop_is_refused_before_loading_a_model(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGAN_CHECKPOINT", raising=False)
    rc, _, err = cli(
        capsys, "-s", files["clip"], "-d", files["clip"], "-o", tmp_path / "o.mp4", "--no-crop", "--paste-back"
    )
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "nothing to paste back" in lines[0], err  # no "using the bundled"
    assert list(tmp_path.iterdir()) == []
