"""The source face: reading the picture, finding and cropping the face, and encoding it once.

The crop is a square around the largest detected face (``crop_scale`` × the face box, like a VoxCeleb crop)
resized to the model resolution; without cropping the whole picture is resized. :func:`prepare_source`
returns the :class:`dagan.infer.engine.SourceState` every generated frame is made from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dagan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, iter_frames, read_image, resize_rgb
from dagan.errors import InputError
from dagan.faces.boxes import DEFAULT_CROP_SCALE
from dagan.infer.engine import Engine, SourceState, encode_source
from dagan.paths import PathLike

__all__ = ["FaceModels", "as_rgb_uint8", "load_source_image", "prepare_source"]


def load_source_image(source: PathLike | np.ndarray) -> np.ndarray:
    """The source picture as H×W×3 uint8 RGB: an image file, the first frame of a video (or frame folder),
    or an array. Grayscale is replicated to RGB and transparency is composited on white (converted, never
    refused)."""
    if isinstance(source, np.ndarray):
        return as_rgb_uint8(source, "source image")
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in VIDEO_EXTENSIONS:
        return next(iter_frames(path))
    if path.suffix.lower() in IMAGE_EXTENSIONS or not path.exists():
        return read_image(path)
    try:  # unknown extension: an image, else a video
        return read_image(path)
    except InputError:
        return next(iter_frames(path))


def as_rgb_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """An image array as H×W×3 uint8: float in [0, 1] is scaled and rounded, grey is replicated, RGBA is
    composited on white; anything else is an :class:`InputError` naming ``what``."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise InputError(f"{what} must be uint8 or float in [0, 1], got {arr.dtype}")
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:  # composite on white, as read_image does
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{what} must be an H×W×3 RGB image, got shape {arr.shape}")
    return arr


class FaceModels:
    """The face detector and the 68-point landmark predictor, each created on first use and then kept
    (creating them loads models; they need the ``faces`` extra)."""

    def __init__(self) -> None:
        self._detector: Any = None
        self._landmarks: Any = None

    def detector(self, name: str = "auto") -> Any:
        """The face detector ``name`` (``auto``: the best installed)."""
        if self._detector is None or (name != "auto" and self._detector.name != name):
            from dagan.faces import create_detector

            self._detector = create_detector(name)
        return self._detector

    def landmarker(self, detector: str = "auto") -> Any:
        """dlib's 68-point landmark predictor, over faces found by ``detector``."""
        if self._landmarks is None:
            from dagan.faces import Landmarks68

            self._landmarks = Landmarks68(self.detector(detector))
        return self._landmarks

    def crop_face(
        self,
        image: np.ndarray,
        size: int,
        crop_scale: float = DEFAULT_CROP_SCALE,
        detector: str = "auto",
        what: str = "source",
    ) -> tuple[np.ndarray, Any, Any]:
        """(size×size crop, CropBox, FaceBox) around the largest face of ``image``; InputError if there is
        none."""
        from dagan.faces import crop_and_resize
        from dagan.faces.cropping import face_crop_box

        found = face_crop_box(self.detector(detector), image, crop_scale)
        if found is None:
            raise InputError(f"no face found in the {what} image (use --no-crop to animate the whole picture)")
        box, face = found
        return crop_and_resize(image, box, size, pad="edge"), box, face


def prepare_source(
    engine: Engine,
    faces: FaceModels,
    source: PathLike | np.ndarray,
    crop: bool = True,
    crop_scale: float = DEFAULT_CROP_SCALE,
    detector: str = "auto",
) -> SourceState:
    """Read ``source``, crop its face (or resize the whole picture without ``crop``) and compute its
    disparity, keypoints and generator encodings — once."""
    full = load_source_image(source)
    crop_box = face_box = None
    if crop:
        crop_img, crop_box, face_box = faces.crop_face(full, engine.resolution, crop_scale, detector)
    else:
        crop_img = resize_rgb(full, engine.resolution)
    return encode_source(engine, crop_img, full, crop_box, face_box)
