"""Outputs that appear only complete: the atomic file writers, the frame-folder writer and the resumable-units
store shared by ``dagan evaluate`` and ``dagan prepare-data``."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dagan.atomic_files import (
    atomic_output,
    atomic_torch_save,
    write_json_atomic,
    write_png_atomic,
    write_text_atomic,
)
from dagan.data.frame_folder_writer import FrameFolderWriter, write_png_frames
from dagan.data.video import iter_frames, list_frame_files, probe_video, read_image
from dagan.errors import InputError
from dagan.resumable import ResumableUnits, unit_file_stem


@pytest.fixture()
def umask_022() -> Iterator[None]:
    """A known umask, so "the usual permissions" are 0644 for files and 0755 for folders."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _frames(count: int, size: int = 8) -> list[np.ndarray]:
    return [np.full((size, size + 2, 3), 20 * i, np.uint8) for i in range(count)]


# --------------------------------------------------------------------------- atomic files


def test_atomic_writers_give_public_files_and_leave_no_temporary(tmp_path: Path, umask_022: None) -> None:
    text = write_text_atomic(tmp_path / "sub" / "a.txt", "héllo\n")  # the folder is created
    data = write_json_atomic(tmp_path / "b.json", {"x": [1, 2.5], "name": "é"}, indent=2)
    png = write_png_atomic(tmp_path / "c.png", np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    ckpt = atomic_torch_save({"w": torch.arange(3)}, tmp_path / "d.pt")
    assert text.read_text(encoding="utf-8") == "héllo\n"
    assert json.loads(data.read_text(encoding="utf-8")) == {"x": [1, 2.5], "name": "é"}
    assert data.read_text(encoding="utf-8").endswith("}\n")
    np.testing.assert_array_equal(read_image(png), np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    assert torch.equal(torch.load(ckpt, weights_only=True)["w"], torch.arange(3))
    for path in (text, data, png, ckpt):
        assert _mode(path) == 0o644, path  # mkstemp alone would give 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "c.png", "d.pt", "sub"]


def test_16_bit_png(tmp_path: Path) -> None:
    depth = np.array([[0, 1000], [40000, 65535]], np.uint16)
    from PIL import Image

    with Image.open(write_png_atomic(tmp_path / "d.png", depth)) as img:
        assert img.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(img), depth)


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = write_text_atomic(tmp_path / "a.json", "old\n")
    with pytest.raises(ValueError):
        write_json_atomic(target, {"x": float("nan")})  # strict JSON: NaN is refused
    with pytest.raises(RuntimeError, match="disk full"), atomic_output(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_temporary_name_keeps_the_extension_only_when_asked(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "clip.mp4") as plain, atomic_output(tmp_path / "gt.npz", keep_extension=True) as kept:
        assert plain.name.startswith(".clip.mp4.") and plain.suffix == ".part"  # no "*.mp4" listing sees it
        assert kept.name.startswith(".gt.") and kept.name.endswith(".part.npz")
        np.savez(kept, a=np.arange(3))
        plain.write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "gt.npz"]
    with np.load(tmp_path / "gt.npz") as data:
        np.testing.assert_array_equal(data["a"], np.arange(3))


# --------------------------------------------------------------------------- frame folders


def test_frame_folder_appears_only_complete(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "out" / "frames"
    with FrameFolderWriter(target) as writer:
        for frame in _frames(3):
            writer.write(frame)
            assert not target.exists()  # built beside it, under a hidden name
        hidden = [p for p in target.parent.iterdir() if p.name.startswith(".frames.")]
        assert len(hidden) == 1 and _mode(hidden[0]) == 0o755  # not mkdtemp's 0700
    assert [p.name for p in target.parent.iterdir()] == ["frames"]
    assert [p.name for p in list_frame_files(target)] == ["0000000.png", "0000001.png", "0000002.png"]
    assert _mode(target) == 0o755 and all(_mode(p) == 0o644 for p in target.iterdir())
    assert writer.frames_written == 3 and probe_video(target).num_frames == 3
    np.testing.assert_array_equal(np.stack(list(iter_frames(target))), np.stack(_frames(3)))


def test_failed_frame_folder_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "frames"
    with pytest.raises(RuntimeError, match="decoder died"), FrameFolderWriter(target) as writer:
        writer.write(_frames(1)[0])
        raise RuntimeError("decoder died")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no frames were written"), FrameFolderWriter(target):
        pass
    assert list(tmp_path.iterdir()) == []


def test_existing_frame_folder_kept_unless_replace(tmp_path: Path) -> None:
    target = tmp_path / "frames"
    write_png_frames(target, _frames(4))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(InputError, match="already exists"):
        FrameFolderWriter(target)
    # replace=True: the old folder stays until the new one is complete, and survives a failed write
    with pytest.raises(RuntimeError), FrameFolderWriter(target, replace=True) as writer:
        writer.write(_frames(1)[0])
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
        raise RuntimeError("stop")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert write_png_frames(target, _frames(2)[::-1]) == 2
    assert sorted(p.name for p in target.iterdir()) == ["0000000.png", "0000001.png"]
    np.testing.assert_array_equal(read_image(target / "0000000.png"), _frames(2)[1])
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_frame_folder_names_and_pixel_types(tmp_path: Path) -> None:
    target = tmp_path / "pairs"
    with FrameFolderWriter(target, compress_level=1) as writer:
        writer.write(np.full((4, 4, 3), 0.5, np.float32), "0000003-0000001.png")  # float in [0, 1]
        writer.write(np.array([[0, 65535]], np.uint16))  # 16-bit grey
    assert sorted(p.name for p in target.iterdir()) == ["0000001.png", "0000003-0000001.png"]
    assert read_image(target / "0000003-0000001.png")[0, 0].tolist() == [128, 128, 128]
    assert read_image(target / "0000001.png")[0].tolist() == [[0, 0, 0], [255, 255, 255]]


# --------------------------------------------------------------------------- resumable units


def _run_units(
    store: ResumableUnits, out: Path, keys: list[str], signature: dict, fail_at: str | None = None
) -> list[str]:
    """A batch of units, each writing one output file and then its record; returns the keys it did."""
    done = []
    for key in keys:
        if store.finished(key, signature) is not None:
            continue
        write_text_atomic(out / f"{unit_file_stem(key)}.txt", key)
        if key == fail_at:
            raise KeyboardInterrupt  # interrupted after the output, before the record
        store.record(key, signature, {"output": f"{unit_file_stem(key)}.txt"})
        done.append(key)
    return done


def test_interrupted_units_are_redone_and_finished_ones_skipped(tmp_path: Path) -> None:
    store, out = ResumableUnits(tmp_path / "records", "test-unit"), tmp_path / "out"
    keys = ["a", "b/c", "d"]
    signature = {"settings": 1}
    with pytest.raises(KeyboardInterrupt):
        _run_units(store, out, keys, signature, fail_at="b/c")
    assert store.finished("a", signature) == {"output": "a.txt"}
    assert store.finished("b/c", signature) is None  # its output exists, but no record: not finished
    mtime = (out / "a.txt").stat().st_mtime_ns
    assert _run_units(store, out, keys, signature) == ["b/c", "d"]
    assert (out / "a.txt").stat().st_mtime_ns == mtime
    assert _run_units(store, out, keys, signature) == []
    # other settings make every record stale
    assert _run_units(store, out, keys, {"settings": 2}) == keys


def test_resumable_records_on_disk(tmp_path: Path) -> None:
    store = ResumableUnits(tmp_path, "test-unit", version=2)
    path = store.record("id1#clip", {"s": [1, 2]}, {"values": {"L1": [0.5]}})
    assert path == tmp_path / "id1#clip.json"
    assert json.loads(path.read_text()) == {
        "format": "test-unit", "format_version": 2, "key": "id1#clip", "signature": {"s": [1, 2]},
        "values": {"L1": [0.5]},
    }
    unit = store.recorded("id1#clip")
    assert unit is not None and unit.signature == {"s": [1, 2]} and unit.payload == {"values": {"L1": [0.5]}}
    # records of another format, another version, another key, or damaged ones count as absent
    assert ResumableUnits(tmp_path, "other", 2).recorded("id1#clip") is None
    assert ResumableUnits(tmp_path, "test-unit", 1).recorded("id1#clip") is None
    path.write_text(path.read_text()[:-5])
    assert store.recorded("id1#clip") is None
    # unusual keys get a safe file name; payload fields may not overwrite the header
    odd = store.record("../x y", {}, {})
    assert odd.parent == tmp_path and odd.name.startswith("_x_y-") and store.recorded("../x y") is not None
    with pytest.raises(ValueError, match="header"):
        store.record("k", {}, {"signature": 1})
    (tmp_path / "notes.txt").write_text("mine")
    store.forget_all()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
