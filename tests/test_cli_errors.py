"""User mistakes end with one ``dagan: error:`` line and exit status 2 — bad numbers at parse time, binary files
where text is expected, a read-only file system — never a traceback, never a half-written output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dagan.cli
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.cli import describe_os_error
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.video import iter_frames, resize_rgb

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "dagan++-64.yaml"


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("dagan: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    try:
        code = dagan.cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


ANIMATE = ("animate", "-s", DEMO_SOURCE, "-d", DEMO_DRIVING, "-o", "never.mp4")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((*ANIMATE, "--crop-scale", "0"), "--crop-scale: must be ≥ 1, got 0"),
        ((*ANIMATE, "--crop-scale", "-2"), "--crop-scale: must be ≥ 1, got -2"),
        ((*ANIMATE, "--crop-scale", "0.5"), "--crop-scale: must be ≥ 1, got 0.5"),
        ((*ANIMATE, "--crop-scale", "nan"), "--crop-scale: must be a finite number"),
        ((*ANIMATE, "--max-frames", "0"), "--max-frames: must be ≥ 1, got 0"),
        ((*ANIMATE, "--batch-size", "1.5"), "--batch-size: expected an integer, got '1.5'"),
        ((*ANIMATE, "--smooth", "-1"), "--smooth: must be ≥ 0"),
        ((*ANIMATE, "--best-frame", "-3"), "--best-frame: must be ≥ 0"),
        (("demo", "--max-frames", "-1"), "--max-frames: must be ≥ 1"),
        (("depth", "x.png", "-o", "o", "--size", "0"), "--size: must be ≥ 64"),
        (("depth", "x.png", "-o", "o", "--size", "100"), "--size: must be a multiple of 32, got 100"),
        (("synth", "out", "--test-fraction", "1"), "--test-fraction: must be < 1"),
        (("synth", "out", "--crf", "60"), "--crf: must be ≤ 51"),
        (("train", "--config", TINY, "--data", ".", "--max-minutes", "0"), "--max-minutes: must be > 0"),
        (("train-depth", "--config", TINY, "--data", ".", "--max-steps", "0"), "--max-steps: must be ≥ 1"),
        (("prepare-data", "x.mp4", "-o", "o", "--min-iou", "2"), "--min-iou: must be ≤ 1"),
        (("evaluate", "--checkpoint", "c", "--data", ".", "--protocol", "video", "--batch-size", "0"),
         "--batch-size: must be ≥ 1"),
    ],
)
def test_numbers_are_checked_when_parsing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    argv: tuple[object, ...], expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    err = one_line_error(*cli(capsys, *argv))
    assert expected in err
    assert list(tmp_path.iterdir()) == []


def test_binary_file_as_config(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("info", "--config", DEMO_CHECKPOINT),
                 ("train", "--config", DEMO_SOURCE, "--data", ".", "--max-steps", "1")):
        err = one_line_error(*cli(capsys, *argv))
        assert "is not a text (UTF-8 YAML) file" in err


def test_os_errors_are_described_without_errno() -> None:
    err = OSError(30, "Read-only file system", "/ro/out.mp4")
    assert describe_os_error(err) == "Read-only file system: '/ro/out.mp4'"
    assert describe_os_error(OSError("plain")) == "plain"


# --------------------------------------------------------------------------- a real read-only file system


def _read_only_mount_prefix() -> list[str] | None:
    """``unshare`` into a private mount namespace (as root, or as a mapped root in a user namespace) where a
    read-only tmpfs can be mounted; None where neither is allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ([unshare, "--mount"], [unshare, "--mount", "--map-root-user"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt && ! touch /mnt/x"],
                               capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


READ_ONLY = _read_only_mount_prefix()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/`` and ``test/`` clips of 4 frames cut from the real clip, one identity each."""
    root = tmp_path_factory.mktemp("data")
    video = [resize_rgb(f, 64) for _, f in zip(range(40), iter_frames(DEMO_DRIVING))]
    for split, clips in (("train", 4), ("test", 1)):
        for c in range(clips):
            write_png_frames(root / split / f"id{c}#clip{c}", video[10 * c : 10 * c + 4])
    return root


@pytest.mark.skipif(READ_ONLY is None, reason="cannot mount a read-only tmpfs here (needs unshare and mount)")
@pytest.mark.parametrize(
    "argv",
    [
        ("demo", "-o", "{ro}/demo", "--max-frames", "2", "--no-progress"),
        ("depth", DEMO_SOURCE, "-o", "{ro}/depth", "--checkpoint", DEMO_CHECKPOINT),
        ("animate", "-s", DEMO_SOURCE, "-d", DEMO_DRIVING, "-o", "{ro}/out.mp4", "--checkpoint", DEMO_CHECKPOINT,
         "--max-frames", "2", "--quiet"),
        ("train", "--config", TINY.with_name("fomm-64.yaml"), "--data", "{data}", "--out", "{ro}/run",
         "--max-steps", "1", "--no-progress"),
        ("evaluate", "--protocol", "video", "--checkpoint", DEMO_CHECKPOINT, "--data", "{data}", "-o",
         "{ro}/results.json", "--max-frames", "2", "--no-progress"),
        ("synth", "{ro}/synth", "--videos", "1", "--frames", "2", "--size", "64"),
    ],
    ids=lambda argv: argv[0],
)
@pytest.mark.slow
def test_read_only_file_system(argv: tuple[object, ...], data: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    words = [str(a).format(ro=ro, data=data) for a in argv]
    script = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
    proc = subprocess.run([*READ_ONLY, "sh", "-c", script, str(ro), sys.executable, "-m", "dagan.cli", *words],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dagan: error:")]
    assert len(errors) == 1 and "Read-only file system" in errors[0], proc.stderr
    assert not list(ro.iterdir())
