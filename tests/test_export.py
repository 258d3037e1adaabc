"""``dagan export`` and the ONNX backends of ``dagan animate``: every architecture exports, reloads and
generates the same frames as PyTorch (within 2 uint8 levels), in ONNX Runtime and OpenVINO; corrupt,
mismatched or foreign files and missing runtimes end in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

import dagan.cli
from dagan import Animator
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.checkpoints.format import save_checkpoint
from dagan.data.video import iter_frames
from dagan.errors import CheckpointError, DaganError
from dagan.export import GraphEngine, export_model, read_manifest

LAUNCH = "import sys, dagan.cli as c; sys.exit(c.main(sys.argv[1:]))"
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
BACKENDS = ("onnxruntime", "openvino")
#: arch → (exporter, dynamic batch): both exporters and both batch modes are covered.
TINY = {
    "dagan++": ("auto", True),
    "dagan": ("torchscript", False),
    "dagan-spade": ("torchscript", False),
    "fomm": ("torchscript", True),
}


def save_random(path: Path, config: Path, seed: int = 0) -> Path:
    """A checkpoint of random weights, perturbed so that frames vary (fresh ones give near-grey output)."""
    from test_official_import import build_models

    cfg, m = build_models(config, seed=seed, discriminator=False)
    modules = {"kp_detector": m.kp_detector, "generator": m.generator}
    if m.depth_net is not None:
        modules["depth_net"] = m.depth_net
    return save_checkpoint(path, kind="reenactment", config=cfg.to_dict(), rng=False, modules=modules)


def driving_frames(count: int) -> np.ndarray:
    frames = []
    for i, frame in enumerate(iter_frames(DEMO_DRIVING)):
        if i == count:
            break
        frames.append(frame)
    return np.stack(frames)


def generate(animator: Animator, frames: np.ndarray) -> np.ndarray:
    """uint8 frames for the whole demo source picture, relative motion anchored at the first frame."""
    state = animator.prepare_source(DEMO_SOURCE, crop=False)
    return animator(frames, state)


def max_level_difference(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return driving_frames(5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """arch → (random tiny checkpoint, its export), made once per module."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(arch: str) -> tuple[Path, Path]:
        if arch not in made:
            root = tmp_path_factory.mktemp(arch.replace("+", "p"))
            ckpt = save_random(root / "model.pt", CONFIGS / "tiny" / f"{arch}-64.yaml", seed=3)
            exporter, dynamic = TINY[arch]
            export_model(ckpt, root / "onnx", exporter=exporter, dynamic_batch=dynamic)
            made[arch] = (ckpt, root / "onnx")
        return made[arch]

    return get


@pytest.mark.parametrize("arch", list(TINY))
def test_tiny_export_reload_and_parity(arch: str, tiny: Callable[[str], tuple[Path, Path]], frames: np.ndarray) -> None:
    ckpt, folder = tiny(arch)
    _, manifest = read_manifest(folder)
    assert manifest["arch"] == arch and manifest["resolution"] == 64
    for entry in manifest["graphs"].values():
        onnx.checker.check_model(str(folder / entry["file"]))
        assert onnx.load(str(folder / entry["file"])).opset_import[0].version == 18
    reference = generate(Animator.from_checkpoint(ckpt), frames)
    assert reference.std() > 1  # a real picture, not a constant
    for backend in BACKENDS:
        got = generate(Animator.from_checkpoint(folder, backend=backend), frames)
        assert max_level_difference(got, reference) <= 2, backend


def test_bundled_model_on_the_bundled_clip(tmp_path: Path) -> None:
    """The whole pipeline (face crops, paste-back, audio) with the bundled demo model and clip."""
    pytest.importorskip("dlib")
    folder = tmp_path / "demo-onnx"
    manifest = export_model(DEMO_CHECKPOINT, folder, dynamic_batch=True)
    assert {g["exporter"] for g in manifest["graphs"].values()} == {"dynamo"}
    outputs = {}
    for backend in ("torch", *BACKENDS):
        path = DEMO_CHECKPOINT if backend == "torch" else folder
        animator = Animator.from_checkpoint(path, backend=backend)
        frames_dir = tmp_path / backend
        result = animator.animate(
            DEMO_SOURCE, DEMO_DRIVING, tmp_path / f"{backend}.mp4", frames_out=frames_dir, max_frames=12,
            progress=False,
        )
        assert result.has_audio and result.num_frames == 12
        outputs[backend] = np.stack([np.asarray(f) for f in iter_frames(frames_dir)])
    for backend in BACKENDS:
        assert max_level_difference(outputs[backend], outputs["torch"]) <= 2, backend


def test_official_file_exports(tmp_path: Path, frames: np.ndarray) -> None:
    """An official SPADE-DaGAN training file + Monodepth2 depth folder exports like our checkpoints."""
    from test_official_import import build_models, write_depth_folder, write_training_checkpoint

    _, models = build_models(CONFIGS / "tiny" / "dagan-spade-64.yaml", seed=2)
    ckpt = write_training_checkpoint(tmp_path / "SPADE_DaGAN_vox_adv_256.pth.tar", models, adam=False)
    depth = write_depth_folder(tmp_path / "depth" / "weights_19", models.depth_net)
    manifest = export_model(ckpt, tmp_path / "onnx", depth_checkpoint=depth, exporter="torchscript")
    assert manifest["arch"] == "dagan-spade"
    reference = generate(Animator.from_checkpoint(ckpt, depth_checkpoint=depth), frames)
    got = generate(Animator.from_checkpoint(tmp_path / "onnx", backend="onnxruntime"), frames)
    assert max_level_difference(got, reference) <= 2


def test_fp16_weights_halve_the_files(
    tiny: Callable[[str], tuple[Path, Path]], tmp_path: Path, frames: np.ndarray
) -> None:
    ckpt, folder = tiny("dagan++")
    half = tmp_path / "fp16"
    manifest = export_model(ckpt, half, precision="fp16", exporter="torchscript", dynamic_batch=True)
    assert manifest["precision"] == "fp16"
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.onnx"))  # noqa: E731
    assert size(half) < 0.6 * size(folder)
    reference = generate(Animator.from_checkpoint(ckpt), frames)
    got = generate(Animator.from_checkpoint(half, backend="onnxruntime"), frames)
    assert max_level_difference(got, reference) <= 4  # weights rounded to fp16: a little further off


@pytest.mark.slow
def test_full_size_dagan_256(tmp_path: Path) -> None:
    ckpt = save_random(tmp_path / "dagan-256.pt", CONFIGS / "dagan-vox-256.yaml", seed=5)
    manifest = export_model(ckpt, tmp_path / "onnx", dynamic_batch=True)
    assert manifest["resolution"] == 256 and manifest["arch"] == "dagan"
    frames = driving_frames(3)
    reference = generate(Animator.from_checkpoint(ckpt), frames)
    for backend in BACKENDS:
        got = generate(Animator.from_checkpoint(tmp_path / "onnx", backend=backend), frames)
        assert max_level_difference(got, reference) <= 2, backend


# --------------------------------------------------------------------------- bad files, one line each


@pytest.fixture()
def export_copy(tiny: Callable[[str], tuple[Path, Path]], tmp_path: Path) -> Path:
    _, folder = tiny("fomm")
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def animate_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: object) -> tuple[int, str]:
    rc = dagan.cli.main(
        ["animate", "-s", str(DEMO_SOURCE), "-d", str(DEMO_DRIVING), "-o", str(tmp_path / "o.mp4"),
         "--no-crop", "--max-frames", "2", "--quiet", *map(str, extra)]
    )
    _, err = capsys.readouterr()
    return rc, err


def test_corrupt_graph_is_one_line(export_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = export_copy / "decode.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    rc, err = animate_cli(capsys, tmp_path, "--checkpoint", export_copy, "--backend", "onnxruntime")
    assert rc != 0 and err.count("\n") == 1 and "decode.onnx does not match its manifest" in err
    assert not (tmp_path / "o.mp4").exists()


def test_graph_from_another_model_is_one_line(
    export_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph swapped in from another export, with the manifest's checksum edited to match: the graph's
    inputs give it away."""
    other = tmp_path / "other"
    export_model(DEMO_CHECKPOINT, other, exporter="torchscript")
    shutil.copy(other / "decode.onnx", export_copy / "decode.onnx")
    manifest_path = export_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["graphs"]["decode"]["sha256"] = read_manifest(other)[1]["graphs"]["decode"]["sha256"]
    manifest_path.write_text(json.dumps(manifest))
    for backend in BACKENDS:
        with pytest.raises(CheckpointError, match="re-run 'dagan export'") as info:
            GraphEngine(export_copy, backend)
        assert "\n" not in str(info.value)
    garbage = tmp_path / "garbage"
    shutil.copytree(export_copy, garbage)
    (garbage / "source.onnx").write_bytes(b"not a protobuf")
    manifest["graphs"]["source"]["sha256"] = __import__("hashlib").sha256(b"not a protobuf").hexdigest()
    (garbage / "manifest.json").write_text(json.dumps(manifest))
    for backend in BACKENDS:
        with pytest.raises(CheckpointError, match="cannot load it") as info:
            GraphEngine(garbage, backend)
        assert "\n" not in str(info.value)


def test_export_folder_needs_an_onnx_backend(
    export_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = animate_cli(capsys, tmp_path, "--checkpoint", export_copy)
    assert rc != 0 and err.count("\n") == 1 and "--backend onnxruntime or openvino" in err
    (export_copy / "manifest.json").write_text("{")
    rc, err = animate_cli(capsys, tmp_path, "--checkpoint", export_copy, "--backend", "openvino")
    assert rc != 0 and err.count("\n") == 1 and "unreadable manifest" in err


def test_export_refuses_bad_options_and_foreign_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = dagan.cli.main(["export", "--checkpoint", str(DEMO_CHECKPOINT), "-o", str(tmp_path / "x"), "--opset", "15"])
    err = capsys.readouterr().err
    assert rc != 0 and "--opset" in err and "must be ≥ 16" in err
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    rc = dagan.cli.main(["export", "--checkpoint", str(DEMO_CHECKPOINT), "-o", str(folder)])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "holds other files" in err
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(DaganError, match="not an exported model folder"):
        GraphEngine(tmp_path, "onnxruntime")


def test_export_cli_and_missing_runtime(tmp_path: Path) -> None:
    """Real subprocesses: ``dagan export`` writes the folder; ``animate`` with the runtime hidden (as if
    not installed) ends in the usual one-line missing-extra error."""
    out = tmp_path / "demo-onnx"
    run = subprocess.run(
        [sys.executable, "-c", LAUNCH, "export", "--checkpoint", str(DEMO_CHECKPOINT), "-o", str(out),
         "--exporter", "torchscript"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and sorted(p.name for p in out.iterdir()) == [
        "decode.onnx", "keypoints.onnx", "manifest.json", "source.onnx"
    ]
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind
    for backend, extra in (("onnxruntime", "onnx"), ("openvino", "openvino")):
        hide = f"import sys; sys.modules[{backend!r}] = None; import dagan.cli as c; sys.exit(c.main(sys.argv[1:]))"
        run = subprocess.run(
            [sys.executable, "-c", hide, "animate", "-s", str(DEMO_SOURCE), "-d", str(DEMO_DRIVING),
             "-o", str(tmp_path / "o.mp4"), "--no-crop", "--checkpoint", str(out), "--backend", backend],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode != 0 and run.stderr.count("\n") == 1, run.stderr
        assert f"pip install 'dagan[{extra}]'" in run.stderr
