"""No command overwrites or deletes one of its own inputs: the same path, a symbolic link or a hard link to it,
or a path inside an input folder is refused with one line, before anything is written; the input is intact."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from pathlib import Path

import pytest

import dagan.cli
import dagan.commands
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.errors import InputError
from dagan.protected_inputs import LabelledPath, check_outputs_spare_inputs, find_clash

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "dagan++-64.yaml"


def digest(path: Path) -> str:
    if path.is_dir():
        return "".join(digest(p) + p.name for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = dagan.cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "talk.mp4"
    shutil.copy(DEMO_DRIVING, path)
    return path


# --------------------------------------------------------------------------- the rules


def test_same_file_symlink_and_hard_link_are_the_input(clip: Path) -> None:
    inputs = [LabelledPath.of("--driving", clip)]
    (clip.parent / "soft.mp4").symlink_to(clip)
    os.link(clip, clip.parent / "hard.mp4")
    for name in ("talk.mp4", "soft.mp4", "hard.mp4"):
        message = find_clash(inputs, [LabelledPath.of("--output", clip.parent / name)])
        assert message is not None and "same file as --driving" in message
    assert find_clash(inputs, [LabelledPath.of("--output", clip.parent / "other.mp4")]) is None


def test_folders(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0000000.png").write_bytes(b"x")
    face = tmp_path / "face.png"
    face.write_bytes(b"x")
    inputs = [LabelledPath.of("--driving", frames), LabelledPath.of("--source", face)]
    # writing into, or being, an input folder
    assert "is the input folder" in find_clash(inputs, [LabelledPath.of("--frames-out", frames)])
    assert "is inside the input folder" in find_clash(inputs, [LabelledPath.of("-o", frames / "out.mp4")])
    # a folder replaced as a whole that holds an input
    clash = find_clash(inputs, [LabelledPath.of("--frames-out", tmp_path, replaced=True)])
    assert clash is not None and "would be replaced" in clash
    # ordinary use: an input file inside a folder the command writes into
    assert find_clash(inputs, [LabelledPath.of("-o", tmp_path)]) is None
    with pytest.raises(InputError, match="refusing"):
        check_outputs_spare_inputs(inputs, [LabelledPath.of("--frames-out", frames)])


# --------------------------------------------------------------------------- every command that writes


def test_every_command_declares_what_it_reads_and_writes() -> None:
    """The guard is declarative: each command lists its input and output arguments, by their real names."""
    parser = dagan.cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in dagan.commands.COMMANDS:
        module = importlib.import_module(f"dagan.commands.{name.replace('-', '_')}")
        dests = {a.dest for a in sub.choices[name]._actions}
        if name == "data":  # one level down: 'dagan data check ROOT'
            inner = next(a for a in sub.choices[name]._actions if a.dest == "data_command")
            dests |= {a.dest for p in inner.choices.values() for a in p._actions}
        declared = [*module.INPUTS, *module.OUTPUTS, *getattr(module, "REPLACED_OUTPUTS", ())]
        assert {d.partition("/")[0] for d in declared} <= dests, name


def test_animate_refuses_to_overwrite_the_driving_video(capsys: pytest.CaptureFixture[str], clip: Path) -> None:
    before = digest(clip)
    (clip.parent / "soft.mp4").symlink_to(clip)
    os.link(clip, clip.parent / "hard.mp4")
    for output in (clip, clip.parent / "soft.mp4", clip.parent / "hard.mp4", clip.parent / "." / "talk.mp4"):
        code, err = cli(capsys, "animate", "-s", DEMO_SOURCE, "-d", clip, "-o", output, "--max-frames", 2)
        assert code == 2 and err.count("\n") == 1 and err.startswith("dagan: error: --output")
        assert "same file as --driving" in err
    assert digest(clip) == before


def test_animate_refuses_to_overwrite_a_source_video(capsys: pytest.CaptureFixture[str], clip: Path) -> None:
    src = clip.parent / "source.mp4"
    shutil.copy(clip, src)
    before = digest(src)
    code, err = cli(capsys, "animate", "-s", src, "-d", clip, "-o", src, "--max-frames", 2)
    assert code == 2 and "same file as --source" in err
    assert digest(src) == before


def test_animate_frames_out_never_replaces_an_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A frame folder that holds only images is replaced by --frames-out; a source image in it would be lost."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    face = folder / "face.png"
    shutil.copy(DEMO_SOURCE, face)
    before = digest(folder)
    code, err = cli(capsys, "animate", "-s", face, "-d", DEMO_DRIVING, "-o", tmp_path / "out.mp4",
                    "--frames-out", folder, "--max-frames", 2)
    assert code == 2 and "would be replaced" in err and "--source" in err
    assert digest(folder) == before and not (tmp_path / "out.mp4").exists()


def test_demo_refuses_its_own_earlier_result_as_driving(capsys: pytest.CaptureFixture[str], clip: Path) -> None:
    out = clip.parent / "demo_output"
    out.mkdir()
    earlier = out / "result.mp4"
    shutil.copy(clip, earlier)
    before = digest(earlier)
    code, err = cli(capsys, "demo", "-o", out, "--driving", earlier, "--max-frames", 2, "--no-progress")
    assert code == 2 and "result.mp4" in err and "same file as --driving" in err
    assert digest(earlier) == before


def test_depth_refuses_to_write_into_its_input_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DEMO_SOURCE, photos / "a.png")
    before = digest(photos)
    for out in (photos, photos / "depth"):
        code, err = cli(capsys, "depth", photos, "-o", out, "--checkpoint", DEMO_CHECKPOINT)
        assert code == 2 and "input folder INPUT" in err
    assert digest(photos) == before


def test_training_and_data_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    shutil.copy(DEMO_DRIVING, data / "train" / "a.mp4")
    shutil.copy(DEMO_CHECKPOINT, data / "model.pt")  # a failing guard must not damage the bundled model
    before = digest(data)
    cases = [
        ("train", "--config", TINY, "--data", data, "--out", data / "run"),
        ("train-depth", "--config", TINY, "--data", data, "--out", data),
        ("evaluate", "--protocol", "video", "--checkpoint", DEMO_CHECKPOINT, "--data", data, "-o",
         data / "results.json"),
        ("evaluate", "--protocol", "video", "--checkpoint", DEMO_CHECKPOINT, "--data", data, "-o",
         tmp_path / "r.json",
         "--save-frames", data / "frames"),
        ("prepare-data", data / "train", "-o", data / "train" / "prepared"),
        ("import-official", "--checkpoint", data / "model.pt", "-o", data / "model.pt"),
    ]
    for argv in cases:
        code, err = cli(capsys, *argv)
        assert code == 2 and err.startswith("dagan: error:") and "refusing" in err, (argv, err)
        assert err.count("\n") == 1
    assert digest(data) == before


def test_compare_refuses_to_overwrite_a_results_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text("{}")
    code, err = cli(capsys, "compare", results, "-o", results)
    assert code == 2 and "same file as RESULTS.json" in err
    assert results.read_text() == "{}"


def test_python_api_refuses_too(clip: Path) -> None:
    from dagan import Animator

    before = digest(clip)
    animator = Animator.from_checkpoint(DEMO_CHECKPOINT, device="cpu")
    with pytest.raises(InputError, match="same file as driving video"):
        animator.animate(DEMO_SOURCE, clip, clip, max_frames=2, progress=False)
    assert digest(clip) == before


def test_depth_outputs_named_after_the_input(capsys: pytest.CaptureFixture[str], clip: Path) -> None:
    """`dagan depth v.mp4 -o . --png` replaces ./v_disp/: an input in there (or any other file) is refused."""
    folder = clip.parent / "talk_disp"
    folder.mkdir()
    model = folder / "model.pt"
    shutil.copy(DEMO_CHECKPOINT, model)
    code, err = cli(capsys, "depth", clip, "-o", clip.parent, "--png", "--checkpoint", model, "--max-frames", 2)
    assert code == 2 and "would be replaced" in err and err.count("\n") == 1
    assert model.is_file()
    # a folder of someone's files with that name, not an input: refused too
    shutil.move(model, clip.parent / "model.pt")
    (folder / "notes.txt").write_text("mine")
    code, err = cli(capsys, "depth", clip, "-o", clip.parent, "--png", "--checkpoint", clip.parent / "model.pt")
    assert code == 2 and "holds other files" in err
    assert (folder / "notes.txt").read_text() == "mine"


def test_depth_refuses_two_images_with_one_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DEMO_SOURCE, photos / "a.png")
    (photos / "a.jpg").write_bytes((photos / "a.png").read_bytes())
    code, err = cli(capsys, "depth", photos, "-o", tmp_path / "out", "--checkpoint", DEMO_CHECKPOINT)
    assert code == 2 and "would write the same outputs" in err
    assert not (tmp_path / "out").exists()


def test_frames_out_never_replaces_a_photo_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    holiday = tmp_path / "holiday"
    holiday.mkdir()
    for name in ("beach.jpg", "0000000.jpg"):
        (holiday / name).write_bytes(DEMO_SOURCE.read_bytes())
    before = digest(holiday)
    code, err = cli(capsys, "animate", "-s", DEMO_SOURCE, "-d", DEMO_DRIVING, "-o", tmp_path / "out.mp4",
                    "--frames-out", holiday, "--max-frames", 2, "--quiet")
    assert code == 2 and "holds other files" in err
    assert digest(holiday) == before


def test_train_leaves_a_config_in_its_out_folder_alone(tmp_path: Path) -> None:
    """--out is the folder holding --config: the run's config.yaml is the user's file, never rewritten."""
    from dagan.config import load_config
    from dagan.train.run import TrainingRun

    config = tmp_path / "config.yaml"
    config.write_text(f"base: {TINY}\n# my notes\n")
    with TrainingRun.create(out=tmp_path, config=load_config(config), config_path=config, echo=False) as run:
        pass
    assert config.read_text() == f"base: {TINY}\n# my notes\n"
    assert "left as it is" in (run.dir / "log.txt").read_text()
    other = tmp_path / "run"
    with TrainingRun.create(out=other, config=load_config(config), config_path=config, echo=False):
        pass
    assert load_config(other / "config.yaml").arch == load_config(config).arch
