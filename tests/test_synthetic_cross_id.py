"""The synthetic-cross-id protocol: a fixed, deterministic test set with exact cross-identity targets, run
through `dagan evaluate` without a dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dagan.assets import DEMO_CHECKPOINT
from dagan.cli import main
from dagan.data.cross_identity import TEST_PAIRS
from dagan.data.video import list_frame_files, read_image
from dagan.eval.protocols.synthetic_cross_id import render_test_set


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes() if path.suffix == ".png" else b"")
    return h.hexdigest()


def test_rendered_test_set_is_deterministic_and_exact(tmp_path: Path) -> None:
    one = render_test_set(tmp_path / "a", TEST_PAIRS[:1], size=48, frames=5)
    render_test_set(tmp_path / "b", TEST_PAIRS[:1], size=48, frames=5)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    (driving, target), = one
    assert driving.identity != target.identity
    assert len(list_frame_files(driving.path)) == len(list_frame_files(target.path)) == 5
    gt = np.load(target.ground_truth)
    # the target moves exactly as the driving identity does: same head poses frame by frame
    drv_frames = [read_image(p) for p in list_frame_files(driving.path)]
    tgt_frames = [read_image(p) for p in list_frame_files(target.path)]
    assert gt["depth"].shape == (5, 48, 48) and gt["mask"][0].any()
    assert not np.array_equal(drv_frames[0], tgt_frames[0])  # two different people
    assert any(not np.array_equal(tgt_frames[0], f) for f in tgt_frames[1:])  # and they move


def test_rendering_resumes_without_redoing_finished_pairs(tmp_path: Path) -> None:
    render_test_set(tmp_path, TEST_PAIRS[:1], size=32, frames=3)
    frame = list_frame_files(next(tmp_path.glob("*.driving")))[0]
    before = frame.stat().st_mtime_ns
    render_test_set(tmp_path, TEST_PAIRS[:1], size=32, frames=3)
    assert frame.stat().st_mtime_ns == before


@pytest.mark.slow
def test_evaluate_synthetic_cross_id_scores_against_the_exact_target(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synthetic.json"
    args = ["evaluate", "--checkpoint", str(DEMO_CHECKPOINT), "--protocol", "synthetic-cross-id",
            "--max-pairs", "1", "--max-frames", "6", "-o", str(out), "--no-progress"]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    metrics = doc.get("metrics", doc)
    text = json.dumps(metrics)
    for label in ("L1", "LPIPS[alex,v0.1]", "Depth-RelStruct", "Motion-yaw-ratio", "Motion-mouth-corr"):
        assert label in text
    assert "synthetic-test-v1" in json.dumps(doc["notes"])
    # a dataset is not wanted, and the other protocols still need one
    (tmp_path / "data").mkdir()
    assert main([*args, "--data", str(tmp_path / "data")]) != 0
    assert "leave out --data" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(DEMO_CHECKPOINT), "--protocol", "video", "-o",
                 str(tmp_path / "v.json")]) != 0
    assert "needs --data" in capsys.readouterr().err
