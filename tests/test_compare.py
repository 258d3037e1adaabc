"""Results files (accumulator pooling, JSON round trip, AUCON entry) and `dagan compare`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dagan import __version__
from dagan.cli import main
from dagan.eval.results import (
    AUCON_UNAVAILABLE_REASON,
    MetricAccumulator,
    ResultsFileError,
    build_results,
    compare_markdown,
    read_results,
    render_markdown,
    write_results,
)


def _accumulator(ssim_shift: float = 0.0) -> MetricAccumulator:
    acc = MetricAccumulator()
    acc.add("a", "SSIM[standard,L=1]", torch.tensor([0.8, 0.9]) + ssim_shift)  # tensor batch
    acc.add("b", "SSIM[standard,L=1]", 0.7 + ssim_shift)  # scalar
    acc.add("a", "SSIM[paper,7x7-uniform,L=2]", [0.9, 0.95])
    acc.add("a", "PSNR[L=1]", np.array([30.0, math.inf]))
    acc.add("a", "AKD[dlib68]", [1.0, 2.0])
    acc.skip("a", "AKD[dlib68]", 3)
    acc.add("a", "TCM[Farneback]", [0.9, 1.0, 0.95])  # mean 0.95
    acc.add("b", "TCM[Farneback]", [0.5])
    return acc


def test_accumulator_pools_frames_and_videos() -> None:
    metrics, per_video = _accumulator().summary()
    ssim = metrics["SSIM[standard,L=1]"]
    assert ssim["frame_mean"] == pytest.approx(0.8)  # (0.8 + 0.9 + 0.7) / 3
    assert ssim["video_mean"] == pytest.approx(0.775)  # (0.85 + 0.7) / 2
    assert ssim["value"] == ssim["frame_mean"] and ssim["frames"] == 3 and ssim["videos"] == 2
    tcm = metrics["TCM[Farneback]"]
    assert tcm["value"] == pytest.approx((0.95 + 0.5) / 2)  # TCM: mean over t per video, then over videos
    assert metrics["AKD[dlib68]"]["skipped"] == 3 and metrics["AKD[dlib68]"]["frames"] == 2
    assert metrics["AKD[dlib68]"]["proxy_for"] and metrics["SSIM[standard,L=1]"]["better"] == "higher"
    assert per_video["a"]["AKD[dlib68]"] == {"value": 1.5, "frames": 2, "skipped": 3}
    assert math.isinf(metrics["PSNR[L=1]"]["value"])
    # report order follows the registry, not insertion order
    assert list(metrics)[:3] == ["PSNR[L=1]", "SSIM[standard,L=1]", "SSIM[paper,7x7-uniform,L=2]"]
    with pytest.raises(ValueError, match="NaN"):
        MetricAccumulator().add("a", "L1", [float("nan")])


def test_results_file_round_trip(tmp_path: Path) -> None:
    doc = build_results(
        _accumulator(), checkpoint="runs/x/ckpt.pt", data="vox/test", protocol="reconstruction"
    )
    assert doc["metrics"]["AUCON"] == {
        "name": "AUCON",
        "better": "higher",
        "pooling": "frames",
        "proxy_for": None,
        "description": doc["metrics"]["AUCON"]["description"],
        "available": False,
        "reason": AUCON_UNAVAILABLE_REASON,
    }
    path = write_results(tmp_path / "out" / "results.json", doc)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left behind
    raw = json.loads(path.read_text())  # strict JSON: +inf is stored as a string
    assert raw["metrics"]["PSNR[L=1]"]["value"] == "inf"
    assert raw["dagan_version"] == __version__ and raw["checkpoint"] == "runs/x/ckpt.pt"
    back = read_results(path)
    assert math.isinf(back["metrics"]["PSNR[L=1]"]["value"])
    assert back["metrics"]["SSIM[standard,L=1]"]["value"] == pytest.approx(0.8)
    assert back["per_video"]["b"]["TCM[Farneback]"]["value"] == 0.5
    table = render_markdown(back)
    assert "`SSIM[paper,7x7-uniform,L=2]`" in table and "n/a" in table and "(3 skipped)" in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not JSON"),
        ('{"hello": 1}', "not a dagan results file"),
        ('{"format": "dagan-results", "format_version": 99, "metrics": {}}', "format version 99"),
        ('{"format": "dagan-results", "format_version": 1, "metrics": {"L1": {}}}', "available"),
    ],
)
def test_bad_results_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=message):
        read_results(path)
    with pytest.raises(ResultsFileError, match="does not exist"):
        read_results(tmp_path / "missing.json")


def test_compare_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_results(tmp_path / "baseline.json", build_results(_accumulator(), checkpoint="a.pt"))
    b = write_results(tmp_path / "ablation.json", build_results(_accumulator(0.05), checkpoint="b.pt"))
    out_md = tmp_path / "table.md"
    assert main(["compare", str(a), str(b), "-o", str(out_md)]) == 0
    table = capsys.readouterr().out
    assert out_md.read_text() == table
    lines = table.splitlines()
    assert lines[0] == "| metric |  | baseline | ablation | Δ |"
    row = next(line for line in lines if line.startswith("| `SSIM[standard,L=1]`"))
    assert row == "| `SSIM[standard,L=1]` | ↑ | 0.8000 | 0.8500 | 0.0500 |"
    assert "| `AUCON` | ↑ | n/a | n/a |  |" in lines
    assert "| checkpoint | a.pt | b.pt |" in lines
    assert any("`AKD[dlib68]` is a proxy" in line for line in lines)
    # three files, custom names: no Δ column
    assert main(["compare", str(a), str(b), str(a), "--names", "x", "y", "z"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "| metric |  | x | y | z |"
    # a metric only one file has is "not run" in the other
    only = MetricAccumulator()
    only.add("v", "LPIPS[alex,v0.1]", 0.2)
    table = compare_markdown([read_results(a), build_results(only)], ["a", "b"])
    assert "| `LPIPS[alex,v0.1]` | ↓ | not run | 0.2000 |  |" in table


def test_compare_rejects_a_file_that_is_not_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_results(tmp_path / "good.json", build_results(_accumulator()))
    bad = tmp_path / "config.json"
    bad.write_text('{"model_params": {}}')
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'dagan: error: {bad} is not a dagan results file (no "format": "dagan-results")']
    assert main(["compare", str(good), "--names", "one", "two"]) == 2
    assert "2 names for 1 results files" in capsys.readouterr().err


def test_compare_subprocess(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a.json", build_results(_accumulator()))
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "compare", str(a), str(a)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "`SSIM[standard,L=1]`" in proc.stdout
