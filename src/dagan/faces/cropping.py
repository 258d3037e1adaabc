"""The face-crop policy of ``dagan animate`` and ``dagan depth``, in one place.

* A picture: the largest detected face, and a square of ``scale`` × its box around it
  (:func:`~dagan.faces.boxes.square_crop_box`).
* A video: the largest face of every frame, smoothed over time (:func:`~dagan.faces.smoothing.smooth_boxes`)
  into a stable crop tube, one square per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from dagan.faces.boxes import CropBox, FaceBox, largest_face, square_crop_box
from dagan.faces.detect import FaceDetector
from dagan.faces.smoothing import smooth_boxes


def face_crop_box(detector: FaceDetector, image: np.ndarray, scale: float) -> tuple[CropBox, FaceBox] | None:
    """(square crop box, face box) around the largest face in ``image``; None when there is no face."""
    face = largest_face(detector.detect(image))
    if face is None:
        return None
    return square_crop_box(face, image.shape[:2], scale=scale), face


def detect_faces(detector: FaceDetector, frames: Iterable[np.ndarray]) -> list[np.ndarray | None]:
    """The largest face box of each frame as an (x0, y0, x1, y1) array, None where there is none."""
    faces: list[np.ndarray | None] = []
    for frame in frames:
        face = largest_face(detector.detect(frame))
        faces.append(None if face is None else face.as_array())
    return faces


def crop_tube(faces: Sequence[np.ndarray | None], image_size: tuple[int, int], scale: float) -> list[CropBox]:
    """One square crop box per frame from per-frame face boxes (None: no face in that frame), smoothed over
    time; ``image_size`` is (height, width). The faces must not all be None."""
    return [square_crop_box(b, image_size, scale=scale) for b in smooth_boxes(list(faces))]
