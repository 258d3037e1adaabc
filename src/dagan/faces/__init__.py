"""Face tools: detection, 68 landmarks, identity embeddings, crop boxes and tubes, paste-back.

Importing this package needs only numpy, scipy and Pillow; the detectors and dlib models import their
optional packages (the ``faces`` extra) when created, and raise :class:`dagan.errors.MissingExtraError`
naming the package when it is missing. See :mod:`dagan.faces.boxes` for the box and image conventions.
"""

from dagan.faces.boxes import (
    DEFAULT_CROP_SCALE,
    CropBox,
    FaceBox,
    box_array,
    crop_and_resize,
    iou,
    largest_face,
    split_by_initial_iou,
    square_crop_box,
    tube_crop_box,
    union_box,
)
from dagan.faces.detect import (
    BACKENDS,
    FACES_EXTRA,
    DlibHogDetector,
    FaceDetector,
    MediaPipeDetector,
    OpenCVHaarDetector,
    available_detectors,
    create_detector,
)
from dagan.faces.dlib_models import IdentityEmbedder, Landmarks68, identity_distance
from dagan.faces.landmarks import best_frame_index, landmark_distance, landmarks_box, normalized_landmarks
from dagan.faces.paste import PasteBack, paste_back, paste_mask
from dagan.faces.smoothing import BoxSmoother, interpolate_missing, smooth_boxes
from dagan.faces.tubes import (
    Tube,
    frame_histogram,
    histogram_distance,
    link_tubes,
    scene_cuts,
    scene_cuts_in_frames,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_CROP_SCALE",
    "FACES_EXTRA",
    "BoxSmoother",
    "CropBox",
    "DlibHogDetector",
    "FaceBox",
    "FaceDetector",
    "IdentityEmbedder",
    "Landmarks68",
    "MediaPipeDetector",
    "OpenCVHaarDetector",
    "PasteBack",
    "Tube",
    "available_detectors",
    "best_frame_index",
    "box_array",
    "create_detector",
    "crop_and_resize",
    "frame_histogram",
    "histogram_distance",
    "identity_distance",
    "interpolate_missing",
    "iou",
    "landmark_distance",
    "landmarks_box",
    "largest_face",
    "link_tubes",
    "normalized_landmarks",
    "paste_back",
    "paste_mask",
    "scene_cuts",
    "scene_cuts_in_frames",
    "smooth_boxes",
    "split_by_initial_iou",
    "square_crop_box",
    "tube_crop_box",
    "union_box",
]
