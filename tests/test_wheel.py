"""Installed, not only checked out: a wheel of the project carries the bundled model, photo and clip, and
``dagan demo`` / ``dagan animate`` run from it in a fresh environment, away from the checkout.

The fresh environment is a new venv whose own site-packages holds only the wheel; the dependencies (torch …)
are borrowed from the test environment through a path entry, whose ``.pth`` hooks (the editable install of
this checkout among them) are therefore not run. ``benchmarks/new_user.py`` does the full from-scratch
install (torch included) and runs every README command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from dagan.data.video import probe_video

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked files (the checkout gets no build/ folder, and nothing
    untracked can slip in)."""
    tracked = subprocess.run(["git", "ls-files", "-z", "src", "pyproject.toml", "README.md", "LICENSE"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    tree = tmp_path_factory.mktemp("tree")
    for name in filter(None, tracked):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(tree)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("dagan-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def run_in(env: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGAN_CHECKPOINT")}
    return subprocess.run([str(env / "bin" / "python"), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**environ, "OMP_NUM_THREADS": "1"})


def test_wheel_carries_the_bundled_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("dagan/assets/demo/dagan++-demo.pt", "dagan/assets/demo/astronaut.png",
                 "dagan/assets/hello_face_176.mp4", "dagan/assets/README.md", "dagan/py.typed"):
        assert name in names


def test_demo_and_animate_run_from_the_wheel(fresh_env: Path, tmp_path: Path) -> None:
    where = run_in(fresh_env, tmp_path, "-c", "import dagan, dagan.assets as a; print(dagan.__file__); "
                   "print(a.DEMO_CHECKPOINT)")
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(fresh_env) and not Path(line).is_relative_to(ROOT), line

    demo = run_in(fresh_env, tmp_path, "-m", "dagan.cli", "demo", "--max-frames", "3", "--no-progress")
    assert demo.returncode == 0, demo.stderr
    for name in ("result.mp4", "side_by_side.mp4", "source_depth.png"):
        assert (tmp_path / "demo_output" / name).is_file()
    assert probe_video(tmp_path / "demo_output" / "result.mp4").num_frames == 3

    # no --checkpoint: the bundled model, said in one line
    source = tmp_path / "demo_output" / "source_depth.png"  # any picture; the face check is not the point here
    animate = run_in(fresh_env, tmp_path, "-m", "dagan.cli", "animate", "-s", str(source), "-d",
                     str(tmp_path / "demo_output" / "result.mp4"), "-o", "out.mp4", "--no-crop", "--quiet")
    assert animate.returncode == 0, animate.stderr
    assert animate.stderr.count("bundled") == 1 and "Traceback" not in animate.stderr
    assert probe_video(tmp_path / "out.mp4").num_frames == 3
