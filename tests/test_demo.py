"""`dagan demo`: the bundled model animates the bundled photo with the bundled clip (a few frames only)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dagan.data.video import probe_video, read_frames, read_image
from dagan.errors import InputError
from dagan.infer.demo import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE, run_demo
from dagan.infer.sinks import PANEL_HEIGHT, stack_panels

FRAMES = 6


def run_command(argv: list[str]) -> int:
    """The `demo` sub-command's own parser and run (what `dagan demo ARGS` does once registered)."""
    from dagan.commands import demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return demo.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert run_command(["-o", str(out), "--max-frames", str(FRAMES), "--no-progress"]) == 0
    return out


def test_bundled_files_exist_and_checkpoint_is_small() -> None:
    for path in (DEMO_CHECKPOINT, DEMO_SOURCE, DEMO_DRIVING):
        assert path.is_file(), path
    assert DEMO_CHECKPOINT.stat().st_size <= 25 * 2**20


def test_bundled_checkpoint_is_inference_only() -> None:
    from dagan.checkpoints.format import safe_torch_load

    obj = safe_torch_load(DEMO_CHECKPOINT)
    # pose_net: FDN++'s pose/uncertainty net, for `dagan depth --uncertainty` (not used by animation)
    assert sorted(obj["modules"]) == ["depth_net", "generator", "kp_detector", "pose_net"]
    assert "optimizers" not in obj
    assert obj["config"]["model_params"]["arch"] == "dagan++"


def test_result_is_pasted_back_with_audio(demo_out: Path) -> None:
    source = read_image(DEMO_SOURCE)
    info = probe_video(demo_out / "result.mp4")
    assert info.num_frames == FRAMES
    assert info.has_audio
    assert (info.height, info.width) == source.shape[:2]  # the full photo, not the 64-px crop
    frame = read_frames(demo_out / "result.mp4", [FRAMES - 1])[0].astype(np.float32)
    diff = np.abs(frame - source.astype(np.float32)).mean(axis=2)
    # far from the face the photo is kept (up to H.264), the face region is generated (it changes)
    assert diff[-64:, :64].mean() < 6.0
    assert diff.max() > 30.0


def test_side_by_side_has_four_panels_and_audio(demo_out: Path) -> None:
    info = probe_video(demo_out / "side_by_side.mp4")
    assert info.num_frames == FRAMES and info.has_audio
    # source 512² → 256², driving 176² → 256², result 512² → 256², depth 256²
    assert (info.height, info.width) == (PANEL_HEIGHT, 4 * PANEL_HEIGHT)
    frame = read_frames(demo_out / "side_by_side.mp4", [0])[0]
    depth = read_image(demo_out / "source_depth.png")
    assert np.abs(frame[:, 3 * PANEL_HEIGHT :].astype(float) - depth.astype(float)).mean() < 8.0


def test_source_depth_png_is_a_colour_map(demo_out: Path) -> None:
    depth = read_image(demo_out / "source_depth.png")
    assert depth.shape == (PANEL_HEIGHT, PANEL_HEIGHT, 3)
    assert depth.std() > 10  # not a constant map


def test_stack_panels_resizes_to_a_common_height() -> None:
    panels = [np.zeros((100, 50, 3), np.uint8), np.full((20, 20, 3), 255, np.uint8)]
    out = stack_panels(panels, height=40)
    assert out.shape == (40, 20 + 40, 3)
    assert out[:, :20].max() == 0 and out[:, 20:].min() == 255
    # odd widths are rounded to even ones (yuv420p video needs an even frame width)
    odd = stack_panels([np.zeros((10, 13, 3), np.uint8), np.zeros((30, 45, 3), np.uint8)], height=40)
    assert odd.shape == (40, 52 + 60, 3)
    assert stack_panels([np.zeros((64, 64, 3), np.uint8)]).shape == (PANEL_HEIGHT, PANEL_HEIGHT, 3)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="demo checkpoint not found"):
        run_demo(tmp_path / "o", checkpoint=tmp_path / "nope.pt")
    with pytest.raises(InputError, match="max-frames"):
        run_demo(tmp_path / "o", max_frames=0)


def test_cli_subprocess_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "demo", "-o", str(tmp_path / "o"), "--max-frames", "2",
         "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "side_by_side.mp4" in proc.stdout
    assert probe_video(tmp_path / "o" / "result.mp4").num_frames == 2
