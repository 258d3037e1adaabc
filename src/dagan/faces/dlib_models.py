"""dlib's 68-point landmark predictor and 128-d face-recognition network (the evaluation proxies for AKD,
AED and CSIM, and the landmarks behind ``--find-best-frame``).

The model files come from the PyPI package ``face-recognition-models`` (dlib's models; the 68-point
predictor was trained on iBUG 300-W, whose terms exclude commercial use). Its ``__init__`` imports
``pkg_resources`` (gone from recent setuptools), so it is never imported: the files are found through the
import system's metadata only. Both packages belong to the ``faces`` extra.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dagan.errors import MissingExtraError
from dagan.faces.boxes import FaceBox, check_image, largest_face
from dagan.faces.detect import FACES_EXTRA, FaceDetector, box_to_dlib_rect, create_detector

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
#: Euclidean distance between embeddings under which dlib's model calls two faces the same person.
SAME_PERSON_DISTANCE = 0.6


def _dlib(feature: str):  # noqa: ANN202 - the dlib module
    try:
        import dlib
    except ImportError as exc:
        raise MissingExtraError(feature, FACES_EXTRA, "dlib-bin") from exc
    return dlib


def dlib_model_path(filename: str, feature: str = "face landmarks") -> Path:
    """Path of a model file shipped in ``face-recognition-models``; MissingExtraError when not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(feature, FACES_EXTRA, "face-recognition-models")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise MissingExtraError(f"{feature} (model file {filename})", FACES_EXTRA, "face-recognition-models")
    return path


def _face_box(image: np.ndarray, box: FaceBox | None, detector: FaceDetector | None) -> FaceBox | None:
    if box is not None:
        return box
    return largest_face((detector or create_detector("auto")).detect(image))


class Landmarks68:
    """68 facial landmarks (iBUG 300-W indexing: 0–16 jaw, 17–26 brows, 27–35 nose, 36–47 eyes, 48–67
    mouth), as dlib's ensemble-of-regression-trees predictor places them inside a face box.

    ``landmarks(image, box=None)`` returns a 68×2 float array of (x, y) pixel positions (pixel centres at
    integer coordinates), or None when no box is given and no face is found. Without a box, the largest face
    found by ``detector`` (default: the best installed detector, created on first use) is used.
    """

    def __init__(self, detector: FaceDetector | None = None) -> None:
        dlib = _dlib("68-point face landmarks")
        self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_68, "68-point face landmarks")))
        self.detector = detector

    def landmarks(self, image: np.ndarray, box: FaceBox | None = None) -> np.ndarray | None:
        image = np.ascontiguousarray(check_image(image))
        if box is None:
            self.detector = self.detector or create_detector("auto")
        face = _face_box(image, box, self.detector)
        if face is None:
            return None
        shape = self._predictor(image, box_to_dlib_rect(face))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class IdentityEmbedder:
    """128-d identity embedding from dlib's face-recognition ResNet (faces aligned with the 5-point
    predictor to a 150² chip). Two faces of one person lie within ~0.6 (Euclidean) of each other.

    ``embed(image, box=None)`` returns a float64 vector of length 128 (unit-free; dlib's model has
    norm ≈ 1), or None when no box is given and no face is found. ``num_jitters`` > 0 averages over that
    many randomly jittered chips (slower, slightly more stable).
    """

    def __init__(self, detector: FaceDetector | None = None, num_jitters: int = 0) -> None:
        dlib = _dlib("identity embeddings")
        self._aligner = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_5, "identity embeddings")))
        self._net = dlib.face_recognition_model_v1(
            str(dlib_model_path(FACE_RECOGNITION, "identity embeddings"))
        )
        self.detector = detector
        self.num_jitters = num_jitters

    def embed(self, image: np.ndarray, box: FaceBox | None = None) -> np.ndarray | None:
        image = np.ascontiguousarray(check_image(image))
        if box is None:
            self.detector = self.detector or create_detector("auto")
        face = _face_box(image, box, self.detector)
        if face is None:
            return None
        shape = self._aligner(image, box_to_dlib_rect(face))
        return np.array(self._net.compute_face_descriptor(image, shape, self.num_jitters), dtype=np.float64)


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two identity embeddings (< :data:`SAME_PERSON_DISTANCE`: same person)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
