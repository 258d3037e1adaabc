"""``dagan animate`` from the command line: good runs, and every bad input as a one-line error with a non-zero
exit and no output file left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import dagan.cli
from dagan.assets import DEMO_DRIVING
from dagan.checkpoint import save_checkpoint
from dagan.config import load_config
from dagan.data.video import VideoWriter, iter_frames, probe_video
from dagan.models.factory import build_reenactment_models

ROOT = Path(__file__).resolve().parents[1]
HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
# Runs the CLI in a subprocess even before 'animate' is listed in dagan.commands.COMMANDS.
LAUNCH = (
    "import sys, dagan.cli as c; c.COMMANDS = list(dict.fromkeys([*c.COMMANDS, 'animate'])); "
    "sys.exit(c.main(sys.argv[1:]))"
)


@pytest.fixture(autouse=True)
def _animate_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    if "animate" not in dagan.cli.COMMANDS:
        monkeypatch.setattr(dagan.cli, "COMMANDS", [*dagan.cli.COMMANDS, "animate"])


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
    assert "wrote" in stdout and "6 frames" in stdout
    info, src = probe_video(out), probe_video(files["clip"])
    assert (info.num_frames, info.rate, info.has_audio) == (src.num_frames, src.rate, True)
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
    assert (info.num_frames, info.width, info.height, info.has_audio) == (6, 3 * 64, 64, False)


def test_subprocess_smoke(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "smoke.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
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
        [sys.executable, "-c", LAUNCH, "animate", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "--find-best-frame" in help_text and "--paste-back" in help_text


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


def test_missing_checkpoint_option(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DAGAN_CHECKPOINT", raising=False)
    rc, _, err = cli(capsys, "-s", files["clip"], "-d", files["clip"], "-o", tmp_path / "o.mp4", "--quiet")
    assert rc == 2 and "no checkpoint given" in err and not (tmp_path / "o.mp4").exists()
