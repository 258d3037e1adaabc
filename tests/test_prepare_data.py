"""``dagan prepare-data``: face tubes from raw videos, VoxCeleb metadata crops, batch driver and CLI.

The raw test video is built from the real webcam clip (``src/dagan/assets/hello_face_176.mp4``, CC BY-SA 4.0): its
first 14 frames (the head holds still there), played back and forth, pasted into a 320×240 canvas at a
position that moves 1 px per frame, over three shots with different backgrounds (scene cuts at frames 30 and
56). The face box inside the clip is known (measured with MediaPipe and dlib, which agree within 2 px), so
the true face box of every canvas frame is known, and with it the crop the VoxCeleb recipe should produce.
A small white square that moves 4 px per frame under the chin stamps each frame, so a written clip can be
checked frame by frame against the source.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dagan.assets import DEMO_DRIVING
from dagan.cli import main
from dagan.data.datasets import FramePairDataset
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.video import VideoWriter, iter_frames, probe_video, read_image
from dagan.errors import DaganError, InputError
from dagan.faces import available_detectors, create_detector, crop_and_resize, iou
from dagan.prepare import (
    MetadataRow,
    PrepareOptions,
    TubeOptions,
    VideoJob,
    analyse_video,
    collect_videos,
    frame_range,
    held_out_identities,
    plan_metadata_jobs,
    plan_video_jobs,
    prepare,
    read_metadata,
    scaled_box,
)
from dagan.prepare.runner import fingerprint

HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
W, H = 320, 240
# face box (x0, y0, x1, y1) in frames 0-13 of the clip: MediaPipe (43.6, 53.3, 120.7, 130.4) and dlib
# (45, 55, 121, 131) on average, in the dlib box convention every detector backend returns
CLIP_FACE = np.array([44.5, 54.0, 121.0, 131.0])
STILL = 14
# shots: (frames, background colour, paste position of shot frame 0, motion per frame in x; y moves half)
SHOTS = [
    (30, (20, 60, 140), (20, 10), 1),
    (26, (210, 120, 40), (50, 25), -1),
    (5, (40, 170, 60), (100, 40), 0),
]
CUTS = [30, 56]
SIZE = 64


def _still_index(t: int) -> int:
    """0, 1, …, 13, 12, …, 1, 0, 1, …: the clip's still frames played back and forth."""
    period = 2 * (STILL - 1)
    k = t % period
    return k if k < STILL else period - k


def _canvas_frames() -> tuple[list[np.ndarray], np.ndarray]:
    clip = [f for _, f in zip(range(STILL), iter_frames(HELLO))]
    frames, truth = [], []
    t = 0
    ramp = np.linspace(0.7, 1.0, W)[None, :, None]
    for n, colour, (x0, y0), dx in SHOTS:
        for i in range(n):
            canvas = (np.array(colour, dtype=np.float64)[None, None, :] * ramp).repeat(H, 0).astype(np.uint8)
            x, y = x0 + dx * i, y0 + dx * (i // 2)
            face = clip[_still_index(t)].copy()
            mx = 10 + 4 * i
            face[150:160, mx : mx + 10] = 255  # the frame stamp, on the shirt under the chin
            canvas[y : y + 176, x : x + 176] = face
            frames.append(canvas)
            truth.append(CLIP_FACE + [x, y, x, y])
            t += 1
    return frames, np.array(truth)


@pytest.fixture(scope="module")
def canvas(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("raw")
    frames, truth = _canvas_frames()
    path = folder / "canvas.mp4"
    with VideoWriter(path, 25, crf=12) as w:
        w.write_all(frames)
    return {"path": path, "frames": [f for f in iter_frames(path)], "truth": truth, "folder": folder}


@pytest.fixture(scope="module")
def detector():
    return create_detector("auto")


def _expected_crop(face_boxes: np.ndarray, box_scale: float = 1.5, increase: float = 0.1) -> np.ndarray:
    """The recipe written out: enlarge each box by box_scale about its centre, take the union, make it a
    square of side (1 + 2·increase)·max(w, h) on the union's centre, shift it inside the W×H frame."""
    c = 0.5 * (face_boxes[:, :2] + face_boxes[:, 2:])
    half = 0.5 * box_scale * (face_boxes[:, 2:] - face_boxes[:, :2])
    lo, hi = (c - half).min(0), (c + half).max(0)
    side = (1 + 2 * increase) * (hi - lo).max()
    start = 0.5 * (lo + hi) - side / 2
    start = np.minimum(np.maximum(start, 0), np.array([W, H]) - side)
    return np.array([start[0], start[1], start[0] + side, start[1] + side])


# --------------------------------------------------------------------------- tubes on the canvas video


def test_tubes_found_split_at_cut_and_cropped_like_the_truth(canvas: dict, tmp_path: Path, detector) -> None:
    root = tmp_path / "ds"
    options = PrepareOptions(root=root, tube=TubeOptions(size=SIZE, min_frames=12))
    summary = prepare(plan_video_jobs([canvas["path"]]), options)
    (result,) = summary.results
    assert result.status == "done" and result.frames == 61 and summary.ok
    assert [c.name for c in result.clips] == ["canvas#canvas#000", "canvas#canvas#001"]
    shots = [(0, 30), (30, 56)]
    for clip, (a, b) in zip(result.clips, shots):
        # one tube per shot: cut exactly at the scene change, nearly every frame of the shot
        assert a <= clip.start and clip.stop <= b and clip.stop - clip.start >= 0.9 * (b - a)
        assert clip.ended_by == "scene cut" and clip.split == "train"
        truth = _expected_crop(canvas["truth"][clip.start : clip.stop])
        assert iou(truth, clip.crop) >= 0.8, (clip.crop, truth)
        # the written frames are the source frames cropped with that box, in order
        info = probe_video(root / clip.path)
        assert info.rate == 25 and info.width == SIZE and not info.has_audio
        out = list(iter_frames(root / clip.path))
        assert len(out) == clip.stop - clip.start and out[0].shape == (SIZE, SIZE, 3)
        for k, frame in enumerate(out):
            diffs = {
                j: np.abs(frame.astype(float) - crop_and_resize(canvas["frames"][j], clip.crop, SIZE)).mean()
                for j in range(max(clip.start, clip.start + k - 1), min(clip.stop, clip.start + k + 2))
            }
            assert min(diffs, key=diffs.get) == clip.start + k and diffs[clip.start + k] < 6.0
    # the 5-frame last shot is found but too short; it ends with the video
    assert [(d.reason, d.ended_by) for d in result.dropped] == [("too short", "end of video")]
    assert result.ends["scene cut"] == 2
    text = summary.format()
    assert "2 clip(s)" in text and "too short 1" in text and "scene cut 2" in text

    # the prepared folder is a training dataset: pairs of frames of one clip
    data = FramePairDataset(root, "train", frame_shape=SIZE, id_sampling=False)
    assert len(data) == 2 and data.identities == ["canvas"]
    item = data[1]
    assert item["source"].shape == (3, SIZE, SIZE) and item["name"] == "canvas#canvas#001"
    ref = crop_and_resize(canvas["frames"][30], result.clips[1].crop, SIZE)
    assert abs(item["source"].mean().item() - ref.mean() / 255) < 0.1


def test_lost_track_two_faces_and_detect_every(tmp_path: Path, detector) -> None:
    """Two faces give two tubes; one face vanishing (its pixels shuffled: same histogram, no cut) ends its
    tube as a lost track. With --detect-every 3 the same tubes come out, boxes interpolated between."""
    clip = [f for _, f in zip(range(STILL), iter_frames(HELLO))]
    rng = np.random.default_rng(0)
    frames = []
    for t in range(30):
        canvas = np.full((H, W, 3), 90, np.uint8)
        left = crop_and_resize(clip[_still_index(t)], (0, 0, 176, 176), 150)
        right = crop_and_resize(clip[_still_index(t + 7)], (0, 0, 176, 176), 150)
        if t >= 18:  # the right face is gone: same pixels in random places
            right = rng.permutation(right.reshape(-1, 3)).reshape(right.shape)
        canvas[45:195, 5:155], canvas[45:195, 165:315] = left, right
        frames.append(canvas)
    path = tmp_path / "two.mp4"
    with VideoWriter(path, 25, crf=12) as w:
        w.write_all(frames)
    for every in (1, 3):
        analysis = analyse_video(path, detector, TubeOptions(size=SIZE, min_frames=8, detect_every=every))
        assert analysis.cuts == []
        segs = sorted(analysis.segments, key=lambda s: s.crop[0])
        assert len(segs) == 2, analysis
        left_seg, right_seg = segs
        assert left_seg.crop[2] < 175 and right_seg.crop[0] > 150  # one crop per face
        assert left_seg.ended_by == "end of video" and left_seg.stop == 30 and left_seg.start <= 1
        assert right_seg.ended_by == "lost track" and 15 <= right_seg.stop <= 18
        if every == 3:
            assert analysis.detected_frames <= 12


def test_low_iou_split_and_too_small(tmp_path: Path, detector) -> None:
    """A face sliding 4 px per frame leaves its first box: the tube splits (VoxCeleb's IoU ≥ 0.25 rule);
    --min-face drops every piece with a smaller face."""
    clip = [f for _, f in zip(range(STILL), iter_frames(HELLO))]
    frames = []
    for t in range(40):
        canvas = np.full((H, W, 3), 90, np.uint8)
        canvas[30:206, 4 * t // 2 : 4 * t // 2 + 176] = clip[_still_index(t)]
        frames.append(canvas)
    path = tmp_path / "slide.mp4"
    with VideoWriter(path, 25, crf=12) as w:
        w.write_all(frames)
    analysis = analyse_video(path, detector, TubeOptions(size=SIZE, min_frames=5, max_gap=5))
    pieces = sorted([*analysis.segments, *analysis.dropped], key=lambda s: s.start)
    assert len(analysis.segments) >= 2 and [p.ended_by for p in pieces][:-1] == ["low IoU"] * (
        len(pieces) - 1
    )
    assert pieces[-1].ended_by == "end of video"
    for p in pieces:  # within a piece the face moves < 0.75 of its width
        assert (p.stop - p.start) * 2 < 0.75 * 77 + 2
    small = analyse_video(path, detector, TubeOptions(size=SIZE, min_frames=5, min_face=200))
    assert not small.segments and {d.reason for d in small.dropped} == {"too small"}


# --------------------------------------------------------------------------- CLI, resume, bad videos


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_parallel_resumable_and_bad_videos(
    canvas: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "canvas.mp4").write_bytes(canvas["path"].read_bytes())
    (raw / "broken.mp4").write_bytes(canvas["path"].read_bytes()[:3000])
    with VideoWriter(raw / "empty_room.mp4", 25) as w:
        w.write_all([np.full((120, 160, 3), 40 + 5 * i, np.uint8) for i in range(6)])
    root = tmp_path / "ds"
    args = [
        "prepare-data",
        str(raw),
        "-o",
        str(root),
        "--size",
        str(SIZE),
        "--min-frames",
        "12",
        "--no-progress",
    ]
    code, out, err = _run([*args, "--workers", "2"], capsys)
    assert code == 1  # a video failed, the others were done
    assert "2 clip(s)" in out and "unreadable 1" in out and "no face 1" in out and "done 1" in out
    assert "broken.mp4" in out
    clips = sorted(p.name for p in (root / "train").iterdir())
    assert clips == ["canvas#canvas#000.mp4", "canvas#canvas#001.mp4"]
    assert not (root / "test").exists() or not any((root / "test").iterdir())
    marker = json.loads((root / ".dagan-prepare" / "video-canvas.json").read_text())
    assert len(marker["result"]["clips"]) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "train").iterdir()}

    # run again: finished videos are skipped (clips untouched), the bad one is retried and reported again
    code, out, _ = _run([*args, "--workers", "1"], capsys)
    assert code == 1 and "skipped 2" in out and "unreadable 1" in out and "2 clip(s)" in out
    assert {p: p.stat().st_mtime_ns for p in (root / "train").iterdir()} == mtimes

    # other settings: the stale clips are replaced
    (raw / "broken.mp4").unlink()
    code, out, _ = _run([*args, "--workers", "1", "--format", "png", "--size", "32"], capsys)
    assert code == 0 and "done 1" in out
    clips = sorted(p.name for p in (root / "train").iterdir())
    assert clips == ["canvas#canvas#000", "canvas#canvas#001"]
    assert read_image(root / "train" / clips[0] / "0000000.png").shape == (32, 32, 3)

    code, _, err = _run(["prepare-data", str(tmp_path / "nope.mp4"), "-o", str(root)], capsys)
    assert code == 2 and err.strip() == f"dagan: error: input not found: '{tmp_path / 'nope.mp4'}'"


def test_cli_subprocess_smoke(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "dagan.cli", "prepare-data", str(tmp_path / "raw"), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dagan: error: no videos")


# --------------------------------------------------------------------------- planning


def test_names_identities_and_splits(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "talk#1.mp4").write_bytes(b"x")
    (tmp_path / "a" / "solo.mov").write_bytes(b"x")
    write_png_frames(tmp_path / "b" / "frames", [np.zeros((8, 8, 3), np.uint8)])
    found = collect_videos([tmp_path])
    # colliding stems get their relative path; '#' would break the identity prefix
    names = dict((p.relative_to(tmp_path).as_posix(), n) for p, n in found)
    assert names == {
        "a/talk#1.mp4": "a_talk_1",
        "b/talk#1.mp4": "b_talk_1",
        "a/solo.mov": "solo",
        "b/frames": "frames",
    }

    ids = tmp_path / "ids.csv"
    ids.write_text("video,person\nsolo.mov,alice\na_talk_1,alice\nframes,bob\n")
    jobs = {j.name: j for j in plan_video_jobs([tmp_path], identities_csv=ids)}
    assert {n: j.person for n, j in jobs.items()} == {
        "a_talk_1": "alice",
        "b_talk_1": "b_talk_1",
        "solo": "alice",
        "frames": "bob",
    }
    assert {j.split for j in jobs.values()} == {"train"}
    # a test fraction holds out whole identities, at least one
    jobs = plan_video_jobs([tmp_path], test_fraction=0.2, identities_csv=ids)
    by_person: dict[str, set[str]] = {}
    for j in jobs:
        by_person.setdefault(j.person, set()).add(j.split)
    assert all(len(s) == 1 for s in by_person.values())
    assert sum(s == {"test"} for s in by_person.values()) == 1
    assert held_out_identities(["p1"], 0.5) == set()
    assert len(held_out_identities([f"p{i}" for i in range(10)], 0.3)) == 3

    split = tmp_path / "split.csv"
    split.write_text("video,split,person\nsolo,test,carol\na_talk_1,train,\nb_talk_1,train,\nframes,test,\n")
    jobs = {j.name: j for j in plan_video_jobs([tmp_path], split_csv=split)}
    assert (jobs["solo"].split, jobs["solo"].person, jobs["frames"].split) == ("test", "carol", "test")
    split.write_text("video,split\nsolo,test\n")
    with pytest.raises(InputError, match="has no split in"):
        plan_video_jobs([tmp_path], split_csv=split)
    with pytest.raises(InputError, match="needs a header with a 'video' column"):
        plan_video_jobs([tmp_path], identities_csv=split)


def test_fingerprint_follows_source_and_options(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"abc")
    job, options = VideoJob(video, "v", "v", "train"), PrepareOptions(root=tmp_path)
    before = fingerprint(job, options)
    stat = video.stat()
    video.write_bytes(b"abcd")
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time stamp, other content size
    assert fingerprint(job, options) != before
    assert fingerprint(job, replace(options, tube=TubeOptions(size=128))) != fingerprint(job, options)
    assert fingerprint(job, options) == fingerprint(job, PrepareOptions(root=tmp_path))


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(DaganError, match="even crop size"):
        PrepareOptions(root=tmp_path, tube=TubeOptions(size=65))
    with pytest.raises(DaganError, match="min_iou"):
        TubeOptions(min_iou=1.5)
    with pytest.raises(InputError, match="no videos"):
        collect_videos([tmp_path])


# --------------------------------------------------------------------------- VoxCeleb metadata


def test_metadata_math() -> None:
    row = MetadataRow("vid", 10, 20, (41, 21, 201, 181), Fraction(25), 320, 240, "train", "id1")
    assert row.clip_name == "id1#vid#000010#000020"
    assert frame_range(row, Fraction(25)) == (10, 20)
    # 30 fps download: frame i is in iff 10/25 ≤ i/30 < 20/25  →  12 ≤ i < 24
    assert frame_range(row, Fraction(30)) == (12, 24)
    assert frame_range(row, Fraction(30000, 1001)) == (12, 24)  # 11.99 → 12, 23.98 → 24
    # half-size download: coordinates halved and rounded down
    assert scaled_box(row, 160, 120) == (20, 10, 100, 90)
    assert scaled_box(row, 320, 240) == (41, 21, 201, 181)
    wide = MetadataRow("vid", 0, 5, (300, 200, 400, 300), Fraction(25), 320, 240, "train", "id1")
    assert scaled_box(wide, 320, 240) == (300, 200, 320, 240)  # clipped to the frame
    outside = MetadataRow("vid", 0, 5, (330, 0, 400, 50), Fraction(25), 320, 240, "train", "id1")
    assert scaled_box(outside, 320, 240) is None


def test_metadata_crops_documented_box_and_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 30 fps, 160×120 'download' of a 25 fps, 320×240 original. Inside the documented box the frame is grey
    with level 20 + 5·i (i = frame index) and a white marker at the box's top-left; outside it is red."""
    videos = tmp_path / "youtube"
    videos.mkdir()
    box = (20, 10, 100, 90)  # (41, 21, 201, 181) in the 320×240 original, halved and rounded down
    frames = []
    for i in range(40):
        f = np.zeros((120, 160, 3), np.uint8)
        f[..., 0] = 200
        x0, y0, x1, y1 = box
        f[y0:y1, x0:x1] = 20 + 5 * i
        f[y0 + 8 : y0 + 24, x0 + 8 : x0 + 24] = 255
        frames.append(f)
    with VideoWriter(videos / "abcDEF_123.mp4", 30, crf=0) as w:
        w.write_all(frames)
    (videos / "unrelated.mp4").write_bytes(b"not used")
    meta = tmp_path / "vox-metadata.csv"
    rows = [
        ["abcDEF_123", 10, 20, "41-21-201-181", 25, 320, 240, "train", "id10001"],
        ["abcDEF_123", 0, 5, "0-0-400-300", 25, 320, 240, "test", "id10001"],  # clipped to the frame
        ["abcDEF_123", 30, 40, "41-21-201-181", 25, 320, 240, "train", "id10001"],  # frames 36..47 of 40
        ["abcDEF_123", 34, 40, "41-21-201-181", 25, 320, 240, "train", "id10001"],  # after the video's end
        ["abcDEF_123", 1, 5, "500-0-600-100", 25, 320, 240, "train", "id10001"],  # outside the frame
        ["missingVid", 0, 5, "0-0-10-10", 25, 320, 240, "train", "id10002"],
    ]
    with open(meta, "w", newline="") as f:
        csv.writer(f).writerows(
            [["video_id", "start", "end", "bbox", "fps", "width", "height", "partition", "person_id"], *rows]
        )
    assert len(read_metadata(meta)) == 6
    notes: list[str] = []
    jobs = plan_metadata_jobs([videos], meta, notes)
    assert [j.video_id for j in jobs] == ["abcDEF_123"] and len(jobs[0].rows) == 5
    assert any("missingVid" in n for n in notes) and any("unrelated" in n for n in notes)

    root = tmp_path / "vox"
    code, out, _ = _run(
        [
            "prepare-data",
            str(videos),
            "-o",
            str(root),
            "--metadata",
            str(meta),
            "--size",
            "64",
            "--format",
            "png",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, out
    assert "3 clip(s)" in out and "after the video's end 1" in out and "box outside the frame 1" in out
    # a span the video ends inside keeps the frames it has
    assert len(list((root / "train" / "id10001#abcDEF_123#000030#000040").iterdir())) == 4
    clip = root / "train" / "id10001#abcDEF_123#000010#000020"
    got = [read_image(p) for p in sorted(clip.iterdir())]
    assert len(got) == 12  # frames 12..23 of the 30 fps video
    source = list(iter_frames(videos / "abcDEF_123.mp4"))
    for k, frame in enumerate(got):
        i = 12 + k
        assert np.abs(frame.astype(int) - crop_and_resize(source[i], box, 64).astype(int)).max() <= 1
        centre = frame[40:56, 40:56].astype(int)
        assert abs(centre.mean() - (20 + 5 * i)) < 3  # the right frame
        assert np.abs(centre[..., 0] - centre[..., 2]).max() < 4  # grey: no red from outside the box
        assert frame[8:18, 8:18].min() > 230  # the marker at the box's corner: 8..24 of 80 → 6.4..19.2 of 64
    test_clip = root / "test" / "id10001#abcDEF_123#000000#000005"
    first = read_image(test_clip / "0000000.png")
    assert len(list(test_clip.iterdir())) == 6 and first.shape == (64, 64, 3)  # 0 ≤ i < 6 at 30 fps
    assert first[0, 0, 0] > 150 and first[0, 0, 1] < 60  # the whole (red) frame, squashed to a square
    data = FramePairDataset(root, "train", frame_shape=64)
    assert data.identities == ["id10001"]
    with pytest.raises(InputError, match="partition must be train or test"):
        bad = tmp_path / "bad.csv"
        bad.write_text(
            "video_id,start,end,bbox,fps,width,height,partition,person_id\n"
            "v,0,5,0-0-10-10,25,320,240,val,id1\n"
        )
        read_metadata(bad)


# --------------------------------------------------------------------------- prepared data trains


TRAIN_CONFIG = """\
base: {base}
dataset_params: {{id_sampling: true, frame_shape: [64, 64, 3]}}
train_params:
  num_epochs: 1
  num_repeats: 4
  batch_size: 2
  num_workers: 0
  scales: [1, 0.5, 0.25]
  epoch_milestones: [1]
  checkpoint_freq: 1
  log_freq: 1
  visual_freq: 100
"""


def test_prepared_data_trains(canvas: dict, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from dagan.config import load_config
    from dagan.models.vgg import VGGFeatures, freeze
    from dagan.train.trainer import train_reenactment

    root = tmp_path / "ds"
    summary = prepare(
        plan_video_jobs([canvas["path"]]),
        PrepareOptions(root=root, fmt="png", tube=TubeOptions(size=SIZE, min_frames=12)),
    )
    assert len(summary.clips) == 2
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TRAIN_CONFIG.format(base=Path(__file__).parents[1] / "configs/tiny/fomm-64.yaml"))
    torch.manual_seed(1)
    result = train_reenactment(
        load_config(cfg_path),
        root,
        None,
        out=tmp_path / "run",
        max_steps=2,
        vgg=freeze(VGGFeatures("vgg16")),
        echo=False,
        show_progress=False,
    )
    assert result.step == 2
    assert any((tmp_path / "run" / "checkpoints").iterdir())


def test_detector_backends_listed() -> None:
    # the tests need a detector that finds the clip's face reliably; dlib is part of the test extra
    assert {"mediapipe", "dlib"} & set(available_detectors())
