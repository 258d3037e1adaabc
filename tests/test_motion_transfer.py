"""Motion-transfer measure: amplitude ratio and correlation on synthetic series, and dlib on real frames."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from dagan.errors import InputError
from dagan.eval.motion_transfer import (
    SIGNALS,
    MotionSeries,
    amplitude,
    amplitude_ratio,
    compare_motion,
    constant_flag,
    correlation,
    mouth_opening,
)

T = np.arange(120) * (2 * math.pi / 40)  # three full periods of 40 frames


def series(**signals: np.ndarray) -> MotionSeries:
    """A MotionSeries with the given signals, the others a (non-constant) ramp."""
    ramp = np.linspace(-1.0, 1.0, len(T))
    return MotionSeries(*(signals.get(name, ramp) for name in SIGNALS))


# ------------------------------------------------------------------------------------------ pure measures


def test_scaled_shifted_copy_has_the_scale_as_ratio_and_correlation_one():
    d = 20 * np.sin(T)
    g = 0.5 * d + 7.0  # half the motion, around another mean (another face, another offset)
    assert amplitude(d) == pytest.approx(20 / math.sqrt(2))
    assert amplitude_ratio(d, g) == pytest.approx(0.5)
    assert correlation(d, g) == pytest.approx(1.0)
    assert correlation(d, -g) == pytest.approx(-1.0)


@pytest.mark.parametrize("phase", [0.0, math.pi / 3, math.pi / 2, 2.0])
def test_phase_shift_gives_cosine_of_the_phase_as_correlation(phase):
    # Over whole periods sin(t) and sin(t + φ) have the sample correlation cos φ; the amplitude is unchanged.
    d, g = np.sin(T), 3 * np.sin(T + phase)
    assert correlation(d, g) == pytest.approx(math.cos(phase), abs=1e-9)
    assert amplitude_ratio(d, g) == pytest.approx(3.0)


def test_frames_missing_in_either_series_are_dropped():
    d, g = np.sin(T), 0.25 * np.sin(T + 0.5)
    keep = np.ones(len(T), bool)
    keep[[3, 10, 11, 50]] = False
    d_gaps, g_gaps = d.copy(), g.copy()
    d_gaps[[3, 10]] = np.nan
    g_gaps[[11, 50]] = np.nan
    g_gaps[[3, 10]] = 1e6  # values paired with a missing driving frame must not count
    assert amplitude_ratio(d_gaps, g_gaps) == pytest.approx(amplitude_ratio(d[keep], g[keep]))
    assert correlation(d_gaps, g_gaps) == pytest.approx(correlation(d[keep], g[keep]))
    assert amplitude_ratio(d_gaps, g_gaps) != pytest.approx(amplitude_ratio(d, g))


def test_constant_series_give_undefined_values_with_a_reason_not_an_error():
    d, still = np.sin(T), np.full(len(T), 0.1)  # 0.1: its mean has rounding residue
    assert amplitude(still) == 0.0
    assert amplitude_ratio(d, still) == 0.0
    assert math.isnan(correlation(d, still))
    assert constant_flag(d, still) == "generated constant"
    assert math.isnan(amplitude_ratio(still, d))
    assert math.isnan(correlation(still, d))
    assert constant_flag(still, d) == "driving constant"
    assert constant_flag(d, d) is None
    one = np.full(len(T), np.nan)
    one[0] = 1.0
    assert math.isnan(correlation(one, one))
    assert constant_flag(one, one) == "fewer than 2 frames with a face in both"


def test_series_of_different_lengths_are_refused():
    with pytest.raises(InputError, match="equal length"):
        correlation(np.zeros(3), np.zeros(4))
    with pytest.raises(InputError, match="frame counts"):
        compare_motion(series(), MotionSeries(*(np.zeros(5) for _ in SIGNALS)))


def test_mouth_opening_is_the_inner_lip_gap_over_the_outer_eye_corner_distance():
    lm = np.zeros((68, 2))
    lm[36], lm[45] = (100, 100), (160, 100)  # 60 px between the outer eye corners
    for upper, lower, gap in ((61, 67, 3.0), (62, 66, 6.0), (63, 65, 3.0)):
        lm[upper], lm[lower] = (120 + upper, 150), (120 + upper, 150 + gap)
    assert mouth_opening(lm) == pytest.approx(4.0 / 60)
    assert mouth_opening(lm * 3) == pytest.approx(4.0 / 60)  # independent of the face's size in pixels
    with pytest.raises(InputError):
        mouth_opening(lm[:67])


# ------------------------------------------------------------------------------------------ report


def test_report_counts_frames_and_reports_each_signal():
    d = series(yaw=20 * np.sin(T), pitch=5 * np.cos(T), mouth=0.1 + 0.05 * np.sin(2 * T))
    g_yaw, g_pitch = 12 * np.sin(T), 1 * np.cos(T)
    d.yaw[[0, 1]] = np.nan  # no face in the driving video
    g_pitch[[1, 2, 3]] = np.nan  # no face (pose) in the generated one
    g = series(yaw=g_yaw, pitch=g_pitch, mouth=np.full(len(T), 0.2))
    report = compare_motion(d, g)
    assert (report.frames, report.frames_used, report.frames_dropped) == (120, 116, 4)
    assert (report.no_face_driving, report.no_face_generated) == (2, 3)
    assert report.signals["yaw"].ratio == pytest.approx(0.6, abs=0.02)
    assert report.signals["yaw"].correlation == pytest.approx(1.0)
    assert report.signals["roll"].ratio == pytest.approx(1.0)
    assert report.signals["mouth"].ratio == 0.0
    assert report.signals["mouth"].flag == "generated constant"
    assert report.meets_targets() == {"yaw": True, "pitch": False, "mouth": False}

    data = report.as_dict()
    json.dumps(data, allow_nan=False)  # NaN are written as null
    assert data["signals"]["mouth"]["correlation"] is None
    assert data["frames_used"] == 116
    table = report.to_markdown()
    yaw = report.signals["yaw"]
    assert f"| yaw (°) | {yaw.driving_amplitude:.2f} | {yaw.generated_amplitude:.2f} | 0.60 | 1.00 |" in table
    assert "– (generated constant)" in table
    assert "frames used: 116 of 120 (no face in driving: 2, in generated: 3)" in table


# ------------------------------------------------------------------------------------------ real frames


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    pytest.importorskip("dlib")
    from dagan.assets import DEMO_DRIVING
    from dagan.data.video import iter_frames

    return list(itertools.islice(iter_frames(DEMO_DRIVING), 60))


def test_real_clip_against_itself_transfers_all_motion(clip):
    from dagan.eval.motion_transfer import measure_motion_transfer

    report = measure_motion_transfer(clip, clip)
    assert report.frames == 60 and report.frames_used >= 50
    assert report.no_face_driving == report.no_face_generated
    for name in SIGNALS:
        s = report.signals[name]
        assert s.driving_amplitude > 0, name
        assert s.ratio == pytest.approx(1.0) and s.correlation == pytest.approx(1.0), name
    assert report.signals["yaw"].driving_amplitude > 3.0  # the person turns their head in these frames


def test_real_clip_against_its_frozen_first_frame_transfers_none(clip):
    from dagan.eval.motion_transfer import head_motion_series

    frozen = MotionSeries.still(clip[0], len(clip))  # = head_motion_series of 60 copies, analysed once
    assert np.isfinite(frozen.yaw).all()
    report = compare_motion(head_motion_series(clip), frozen)
    assert report.no_face_generated == 0 and report.frames_used >= 50
    for name in SIGNALS:
        s = report.signals[name]
        assert s.driving_amplitude > 0, name
        assert s.ratio == 0.0 and s.generated_amplitude == 0.0, name
        assert math.isnan(s.correlation) and s.flag == "generated constant", name
    assert report.as_dict()["meets_targets"] == {"yaw": False, "pitch": False, "mouth": False}


def test_followed_face_ignores_a_false_face_elsewhere_in_the_picture():
    # dlib finds a face-sized false box on the astronaut's collar ring, as large as her face. Once her face
    # is hidden, the followed face is gone (no face), rather than the collar measured instead.
    pytest.importorskip("dlib")
    from dagan.assets import DEMO_SOURCE
    from dagan.data.video import read_image
    from dagan.eval.motion_transfer import FollowedFace, head_motion_series, main_face
    from dagan.faces import DlibHogDetector

    photo = read_image(DEMO_SOURCE)
    face = main_face(photo)
    assert face is not None and face.y1 < 200  # the face, not the collar (y ≈ 335–426)
    hidden = photo.copy()
    hidden[int(face.y0) - 40 : int(face.y1) + 40, int(face.x0) - 40 : int(face.x1) + 40] = 128
    assert DlibHogDetector().detect(hidden)  # the collar: a largest-face analyzer would measure it
    motion = head_motion_series([photo, hidden, photo], FollowedFace())
    assert np.isfinite(motion.yaw[[0, 2]]).all()
    assert np.isnan(motion.yaw[1]) and np.isnan(motion.mouth[1])
    assert motion.yaw[0] == motion.yaw[2]


def test_a_sliding_face_is_not_a_turning_face() -> None:
    """Landmarks shifted across the picture give the same pose (the pose fit sees them centred)."""
    from dagan.eval.face_metrics import head_pose
    from dagan.eval.motion_transfer import centred_on_image

    pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    face = np.stack([np.linspace(200, 300, 68), 250 + 40 * np.sin(np.linspace(0, 6, 68))], 1)
    face = face + rng.normal(0, 2, (68, 2))
    size = (512, 512)
    poses = [head_pose(centred_on_image(face + [dx, 0], size), size) for dx in (-60, 0, 60)]
    assert all(p is not None for p in poses)
    assert np.allclose(poses[0], poses[1], atol=1e-6) and np.allclose(poses[2], poses[1], atol=1e-6)
