"""Face detectors behind one interface: ``detect(image_rgb) -> list[FaceBox]``.

Backends (all CPU, all optional — install the ``faces`` extra):

* ``mediapipe`` — MediaPipe's legacy ``solutions.face_detection`` (BlazeFace); the most robust to head turns
  and small faces. Needs ``mediapipe==0.10.21`` (later versions ship no models), installed beside the
  environment (see :mod:`dagan.isolated_packages` and :data:`MEDIAPIPE_INSTALL`). Its C++ graph prints
  TensorFlow Lite / absl log lines on the process's stderr when it starts; they are swallowed.
* ``dlib`` — dlib's HOG + linear SVM frontal detector (package ``dlib-bin``); run on the image upsampled
  once, and again at 2× upsampling when that finds nothing (faces under ~80 px).
* ``opencv`` — OpenCV's Viola–Jones Haar cascade ``haarcascade_frontalface_default.xml`` (shipped in
  ``opencv-python-headless<5``; 5.x removed the cascades), on the histogram-equalised grey image.

``create_detector("auto")`` picks the best installed one: mediapipe > dlib > opencv. Boxes are sorted by
decreasing score; scores are only comparable within one backend.

All backends return boxes in dlib's convention (roughly eyebrows to chin: about the size of the tight box
around the 68 landmarks, centred 0.08 of that size above the landmarks' centre), so that a crop scale frames
the face the same way whatever the backend, and dlib's landmark predictor (trained on dlib boxes) gets the
boxes it expects. MediaPipe's raw boxes are 7 % smaller and lower, the Haar cascade's 10 % larger and higher;
each backend's ``calibration`` = (size factor, downward shift as a fraction of the box height) corrects that
(measured on 165 frames of our two real clips and the astronaut; ``calibrate=False`` gives raw boxes).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from dagan.errors import MissingExtraError
from dagan.faces.boxes import FaceBox, check_image
from dagan.isolated_packages import MEDIAPIPE_RUNTIME, install_command

#: The pip extra that holds the face tools' dependencies.
FACES_EXTRA = "faces"
#: How to install MediaPipe: its metadata pins numpy<2 and protobuf<5, which the code does not need, so it goes
#: into a folder of its own, beside its real run-time dependencies.
MEDIAPIPE_INSTALL = f"{install_command('mediapipe==0.10.21')} && pip install " + " ".join(
    f"'{r}'" if "<" in r else r for r in MEDIAPIPE_RUNTIME
)
#: Preference order of ``create_detector("auto")``.
BACKENDS = ("mediapipe", "dlib", "opencv")


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a uint8 H×W×3 RGB image, best first."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def _sorted(boxes: list[FaceBox]) -> list[FaceBox]:
    return sorted(boxes, key=lambda b: -b.score)


def calibrate_box(box: FaceBox, scale: float, shift: float) -> FaceBox:
    """Box resized by ``scale`` about its centre and moved down by ``shift``·height: (cx, cy + shift·h) ±
    scale·(w, h)/2. Maps one detector's box convention onto another's."""
    cx, cy = box.center
    hw, hh = 0.5 * scale * box.width, 0.5 * scale * box.height
    cy += shift * box.height
    return FaceBox(cx - hw, cy - hh, cx + hw, cy + hh, box.score)


def _import(module: str, feature: str, package: str):  # noqa: ANN202 - returns a module
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, FACES_EXTRA, package) from exc


def backend_available(name: str) -> bool:
    """Whether the backend's package is installed (without importing it)."""
    module = {"mediapipe": "mediapipe", "dlib": "dlib", "opencv": "cv2"}[name]
    try:
        if importlib.util.find_spec(module) is None:
            return False
    except ValueError:  # present in sys.modules as None: import blocked
        return False
    if name == "opencv":
        import cv2

        return hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data")
    return True


def available_detectors() -> list[str]:
    """Installed backends in preference order."""
    return [name for name in BACKENDS if backend_available(name)]


class MediaPipeDetector:
    """MediaPipe BlazeFace. ``model="short"`` is tuned for faces within ~2 m of the camera (webcams, talking
    heads), ``"full"`` for smaller faces further away. Not thread-safe (one graph per detector)."""

    name = "mediapipe"
    calibration = (1.07, -0.066)

    def __init__(self, model: str = "short", min_score: float = 0.5, calibrate: bool = True) -> None:
        if model not in ("short", "full"):
            raise ValueError(f"MediaPipe model must be 'short' or 'full', got {model!r}")
        _silence_protobuf_compat_warning()
        try:
            from mediapipe.python.solutions import face_detection
        except (ImportError, AttributeError) as exc:  # AttributeError: a protobuf/numpy it cannot work with
            # MediaPipe's numpy/protobuf pins keep it out of every extra: it lives in a folder of its own
            from dagan.isolated_packages import install_command

            raise MissingExtraError(
                "face detection with MediaPipe", FACES_EXTRA, "mediapipe==0.10.21",
                install=f"{install_command('mediapipe==0.10.21')} (and its dependencies: see the README's Install)",
            ) from exc
        # The graph's calculators open on a worker thread as soon as it is built, and log from C++ while doing
        # so (and on the first inference); one warm-up image inside the silenced window waits for all of it.
        with _native_stderr_silenced():
            self._graph = face_detection.FaceDetection(
                model_selection=0 if model == "short" else 1, min_detection_confidence=min_score
            )
            self._graph.process(np.zeros((128, 128, 3), np.uint8))
        self.calibrate = calibrate

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        image = np.ascontiguousarray(check_image(_rgb(image)))
        h, w = image.shape[:2]
        result = self._graph.process(image)
        boxes = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            x0, y0 = rb.xmin * w, rb.ymin * h
            box = FaceBox(x0, y0, x0 + rb.width * w, y0 + rb.height * h, float(det.score[0]))
            boxes.append(calibrate_box(box, *self.calibration) if self.calibrate else box)
        return _sorted(boxes)

    def close(self) -> None:
        self._graph.close()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration: C++ libraries (TensorFlow Lite, absl) write their
    log lines straight to it, past Python's ``sys.stderr``."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _silence_protobuf_compat_warning() -> None:
    """MediaPipe 0.10.21's C++ bindings look up ``MessageFactory.GetPrototype`` on import, which protobuf ≥ 5
    removed, and print an ``AttributeError`` line to stderr (harmless). Restore the old name as an alias of
    its replacement so users do not see a spurious error."""
    try:
        from google.protobuf import message_factory
    except ImportError:
        return
    if not hasattr(message_factory.MessageFactory, "GetPrototype") and hasattr(
        message_factory, "GetMessageClass"
    ):
        message_factory.MessageFactory.GetPrototype = lambda self, descriptor: (
            message_factory.GetMessageClass(descriptor)
        )


class DlibHogDetector:
    """dlib's HOG frontal face detector. Boxes come from ``upsample`` upsamplings of the image; if none is
    found and ``retry_upsample`` is larger, the image is searched again at that upsampling (slower, finds
    faces down to ~40 px). ``threshold`` shifts the SVM decision threshold (higher: fewer false faces)."""

    name = "dlib"
    calibration = (1.0, 0.0)  # the reference convention

    def __init__(self, upsample: int = 1, retry_upsample: int = 2, threshold: float = 0.0) -> None:
        dlib = _import("dlib", "face detection with dlib", "dlib-bin")
        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.retry_upsample, self.threshold = upsample, retry_upsample, threshold

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        image = np.ascontiguousarray(check_image(_rgb(image)))
        boxes = self._run(image, self.upsample)
        if not boxes and self.retry_upsample > self.upsample:
            boxes = self._run(image, self.retry_upsample)
        return _sorted(boxes)

    def _run(self, image: np.ndarray, upsample: int) -> list[FaceBox]:
        rects, scores, _ = self._detector.run(image, upsample, self.threshold)
        return [dlib_rect_to_box(r, float(s)) for r, s in zip(rects, scores)]


class OpenCVHaarDetector:
    """OpenCV's frontal-face Haar cascade on the histogram-equalised grey image. Least robust (misses turned
    heads) but needs only OpenCV. Score = the cascade's level weight."""

    name = "opencv"
    calibration = (0.904, 0.065)

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        min_neighbors: int = 4,
        min_size: int = 24,
        calibrate: bool = True,
    ) -> None:
        cv2 = _import("cv2", "face detection with OpenCV", "opencv-python-headless<5")
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise MissingExtraError(
                "face detection with OpenCV Haar cascades", FACES_EXTRA, "opencv-python-headless<5"
            )
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self._cascade.empty():
            raise MissingExtraError(f"the OpenCV cascade {cascade}", FACES_EXTRA, "opencv-python-headless<5")
        self.min_neighbors, self.min_size, self.calibrate = min_neighbors, min_size, calibrate

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        image = check_image(image)
        cv2 = self._cv2
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        grey = cv2.equalizeHist(grey)
        rects, _, weights = self._cascade.detectMultiScale3(
            grey,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        boxes = [
            FaceBox(float(x), float(y), float(x + w), float(y + h), float(s))
            for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), weights)
        ]
        return _sorted([calibrate_box(b, *self.calibration) if self.calibrate else b for b in boxes])


def _rgb(image: np.ndarray) -> np.ndarray:
    """Grey images are replicated to RGB (the dlib and MediaPipe detectors want 3 channels)."""
    return (
        np.repeat(image[:, :, None], 3, axis=2)
        if isinstance(image, np.ndarray) and image.ndim == 2
        else image
    )


def dlib_rect_to_box(rect, score: float = 1.0) -> FaceBox:  # noqa: ANN001 - dlib.rectangle
    """dlib rectangles have inclusive right/bottom pixel indices; FaceBox uses pixel edges."""
    return FaceBox(
        float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1), score
    )


def box_to_dlib_rect(box: FaceBox):  # noqa: ANN201 - dlib.rectangle
    """The dlib rectangle (inclusive corners) nearest to a FaceBox."""
    import dlib

    x0, y0 = int(round(box.x0)), int(round(box.y0))
    return dlib.rectangle(x0, y0, max(int(round(box.x1)) - 1, x0), max(int(round(box.y1)) - 1, y0))


def create_detector(name: str = "auto", **options: object) -> FaceDetector:
    """A face detector by backend name (``"mediapipe"``, ``"dlib"``, ``"opencv"``) or ``"auto"`` for the best
    installed one. ``options`` go to the backend's constructor. Raises MissingExtraError when the requested
    backend (or, for auto, every backend) is not installed, and ValueError for an unknown name."""
    classes = {"mediapipe": MediaPipeDetector, "dlib": DlibHogDetector, "opencv": OpenCVHaarDetector}
    if name == "auto":
        for candidate in available_detectors():
            try:
                return classes[candidate](**options)
            except MissingExtraError:  # installed but unusable (e.g. a broken MediaPipe): try the next one
                continue
        raise MissingExtraError(
            "face detection", FACES_EXTRA, "mediapipe, dlib-bin or opencv-python-headless<5"
        )
    if name not in classes:
        raise ValueError(f"unknown face detector {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    return classes[name](**options)
