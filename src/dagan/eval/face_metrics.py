"""Face metrics: AKD, AED, CSIM and PRMSE, with dlib stand-ins for the literature's networks.

The literature's networks (face-alignment 2D-FAN, OpenFace nn4.small2, ArcFace, a head-pose CNN) need weights
from the internet. Offline we use dlib (``dlib-bin`` + ``face-recognition-models``, the ``faces`` extra) and
label every number with the network that produced it — a proxy is never reported as the paper's metric:

* ``AKD[dlib68]`` — dlib's 68 iBUG landmarks (same indexing as FAN). ``AKD[FAN]`` when ``face_alignment`` is
  installed (and can load its weights): :class:`FANLandmarks`.
* ``AED[dlib]`` / ``CSIM[dlib]`` — dlib's 128-d face-recognition ResNet.
* ``PRMSE[dlib68+SQPNP]`` — head pose from six of the 68 landmarks fitted to a generic 3-D face by
  ``cv2.solvePnP(..., SOLVEPNP_SQPNP)`` (the default iterative solver can converge to a mirrored pose).

Per-frame definitions (D driving / ground truth, G generated, S source):

* AKD = mean over the 68×2 coordinates of |p_D − p_G| (per-coordinate L1, not Euclidean), in pixels of a
  256×256 frame (coordinates are rescaled from the frame's own size, as the protocol evaluates 256² frames).
* AED = ‖u_D − u_G‖² with u the embedding scaled to unit length (OpenFace's embedding is unit-length; dlib's
  has norm ≈ 1.4, so it is normalised to keep the reference's scale: AED ∈ [0, 4]).
* CSIM = cos(e_S, e_G).
* PRMSE = sqrt(mean of the squared (yaw, pitch, roll) differences) in degrees.

PRMSE[dlib68+SQPNP] is a coarse proxy: on ~80-pixel faces an in-plane rotation of 10° moves the estimated
roll by 10 ± 0.4° but the yaw and pitch of the six-point fit by up to a few degrees as well (dlib landmark
noise), and pitch carries an offset from the generic model; compare it between methods, not with papers.

Frames where the generated (or the reference) image has no detectable face are skipped and counted
(``skipped`` in the results), never scored as 0.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from dagan.errors import InputError, MissingExtraError
from dagan.eval.results import MetricAccumulator

if TYPE_CHECKING:
    from dagan.faces import FaceDetector

AKD_DLIB = "AKD[dlib68]"
AKD_FAN = "AKD[FAN]"
AED_DLIB = "AED[dlib]"
CSIM_DLIB = "CSIM[dlib]"
PRMSE_DLIB = "PRMSE[dlib68+SQPNP]"
AKD_FRAME_SIZE = 256

# Generic 3-D face for head pose: six iBUG-68 points with the widely used model coordinates of
# S. Mallick's "Head Pose Estimation using OpenCV and Dlib" (LearnOpenCV, 2016), arbitrary units, nose tip at
# the origin. The published values are y-up / z-towards-the-viewer; here y and z are negated (a 180° turn
# about x) so that a frontal face looking at the camera has the identity rotation in OpenCV's camera frame
# (x right, y down, z forward) and yaw, pitch, roll are all near 0 — far from the ±180° wrap-around.
POSE_LANDMARK_INDICES = (30, 8, 36, 45, 48, 54)  # nose tip, chin, eye outer corners, mouth corners
GENERIC_FACE_MODEL = np.array(
    [
        [0.0, 0.0, 0.0],  # 30 nose tip
        [0.0, 330.0, 65.0],  # 8 chin
        [-225.0, -170.0, 135.0],  # 36 outer corner of the eye on the image's left
        [225.0, -170.0, 135.0],  # 45 outer corner of the eye on the image's right
        [-150.0, 150.0, 125.0],  # 48 mouth corner, image left
        [150.0, 150.0, 125.0],  # 54 mouth corner, image right
    ]
)


class LandmarkDetector(Protocol):
    """Anything returning 68 (x, y) landmarks of the main face of a uint8 RGB image, or None."""

    def landmarks(self, image: np.ndarray) -> np.ndarray | None: ...


def to_uint8_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 H×W×3 RGB from a float image in [0, 1] (numpy H×W×3 or torch 3×H×W) or a uint8 array."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise InputError(f"image tensor must be 3×H×W, got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).double().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be H×W×3 RGB, got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype.kind != "f":
        raise InputError(f"image must be float in [0, 1] or uint8, got dtype {image.dtype}")
    return np.ascontiguousarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------------------ pure metrics


def _check_landmarks(lm: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(lm, dtype=np.float64)
    if arr.shape != (68, 2):
        raise InputError(f"{what} must be 68×2 landmarks, got shape {arr.shape}")
    return arr


def scale_landmarks(
    landmarks: np.ndarray, image_size: tuple[int, int], size: int = AKD_FRAME_SIZE
) -> np.ndarray:
    """Landmarks of an H×W frame (``image_size`` = (H, W)) expressed in pixels of a size×size frame."""
    h, w = image_size
    return np.asarray(landmarks, dtype=np.float64) * np.array([size / w, size / h])


def keypoint_distance(reference: np.ndarray, generated: np.ndarray) -> float:
    """AKD of one frame: ``mean_{k,xy} |p_D − p_G|`` over 68 landmarks × 2 coordinates (per-coordinate L1)."""
    d, g = (
        _check_landmarks(reference, "reference landmarks"),
        _check_landmarks(generated, "generated landmarks"),
    )
    return float(np.abs(d - g).mean())


def unit(v: np.ndarray) -> np.ndarray:
    """``v / ‖v‖``."""
    v = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("cannot normalise a zero embedding")
    return v / norm


def embedding_distance(reference: np.ndarray, generated: np.ndarray) -> float:
    """AED of one frame: ``‖u_D − u_G‖²`` with unit-length embeddings (= 2 − 2·cos)."""
    return float(np.sum((unit(reference) - unit(generated)) ** 2))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """CSIM: ``a·b / (‖a‖‖b‖)``."""
    return float(np.dot(unit(a), unit(b)))


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """Pinhole intrinsics for an uncalibrated frame: focal length = width in pixels, principal point at the
    image centre (pixel centres at integer coordinates)."""
    h, w = image_size
    return np.array([[w, 0.0, (w - 1) / 2], [0.0, w, (h - 1) / 2], [0.0, 0.0, 1.0]])


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of ``R = Rz(roll) · Ry(yaw) · Rx(pitch)`` (camera frame: x right,
    y down, z forward): yaw turns about the vertical axis, pitch nods about x, roll tilts in the image."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    pitch = math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return np.degrees([yaw, pitch, roll])


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | None:
    """(yaw, pitch, roll) in degrees of a face from its 68 landmarks (``image_size`` = (H, W)): the six
    :data:`POSE_LANDMARK_INDICES` fitted to :data:`GENERIC_FACE_MODEL` by ``cv2.solvePnP`` with SQPNP. Returns
    None when the solver fails or puts the face behind the camera."""
    import cv2

    pts = _check_landmarks(landmarks, "landmarks")[list(POSE_LANDMARK_INDICES)]
    ok, rvec, tvec = cv2.solvePnP(
        GENERIC_FACE_MODEL, pts, camera_matrix(image_size), np.zeros(4), flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok or float(tvec[2, 0]) <= 0:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation_to_euler(rotation)


def pose_rmse(reference: np.ndarray, generated: np.ndarray) -> float:
    """PRMSE of one pair: ``sqrt(mean((Δyaw², Δpitch², Δroll²)))`` with differences wrapped to (−180, 180]."""
    diff = (np.asarray(generated, dtype=np.float64) - np.asarray(reference, dtype=np.float64) + 180.0) % 360.0
    diff = 180.0 - diff  # sign is irrelevant below
    return float(np.sqrt(np.mean(diff**2)))


# ------------------------------------------------------------------------------------------ face models


@dataclass
class FaceAnalysis:
    """What the face models found in one frame (None where no face was found)."""

    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    image_size: tuple[int, int] = (0, 0)


class DlibFaceAnalyzer:
    """dlib HOG face detection once per frame, then 68 landmarks and/or the 128-d embedding of the largest
    face (:class:`dagan.faces.Landmarks68`, :class:`dagan.faces.IdentityEmbedder`). Needs the ``faces``
    extra. The HOG detector is the default so that every number comes from dlib alone; any
    :class:`dagan.faces.FaceDetector` may be passed instead."""

    def __init__(self, detector: FaceDetector | None = None, landmarks: bool = True, identity: bool = True) -> None:
        from dagan.faces import DlibHogDetector, IdentityEmbedder, Landmarks68

        self.detector: FaceDetector = detector if detector is not None else DlibHogDetector()
        self._landmarks = Landmarks68(self.detector) if landmarks else None
        self._identity = IdentityEmbedder(self.detector) if identity else None

    def analyze(self, image: np.ndarray | torch.Tensor) -> FaceAnalysis:
        from dagan.faces import largest_face

        img = to_uint8_rgb(image)
        out = FaceAnalysis(image_size=(img.shape[0], img.shape[1]))
        box = largest_face(self.detector.detect(img))
        if box is None:
            return out
        if self._landmarks is not None:
            out.landmarks = self._landmarks.landmarks(img, box)
        if self._identity is not None:
            out.embedding = self._identity.embed(img, box)
        return out

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        return self.analyze(image).landmarks


def fan_available() -> bool:
    """Whether the ``face_alignment`` package (2D-FAN) is installed."""
    return importlib.util.find_spec("face_alignment") is not None


class FANLandmarks:
    """face-alignment's 2D-FAN (the AKD network of the literature): frames resized to 256×256,
    ``flip_input=False``; landmarks returned in the original frame's pixels. FAN downloads its weights on
    first use (needs internet once). Raises MissingExtraError when ``face_alignment`` is not installed."""

    def __init__(self, device: str = "cpu") -> None:
        try:
            import face_alignment
        except ImportError as err:
            raise MissingExtraError("AKD with 2D-FAN", "fan", "face-alignment") from err
        types = face_alignment.LandmarksType  # TWO_D since face-alignment 1.4, _2D before
        kind = types.TWO_D if hasattr(types, "TWO_D") else types._2D
        try:
            self._fa = face_alignment.FaceAlignment(kind, flip_input=False, device=device)
        except Exception as err:  # weight download / model construction failures
            raise MissingExtraError(
                f"AKD with 2D-FAN (its weights could not be loaded: {err})", "fan", "face-alignment"
            ) from err

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        import cv2

        img = to_uint8_rgb(image)
        h, w = img.shape[:2]
        resized = cv2.resize(img, (AKD_FRAME_SIZE, AKD_FRAME_SIZE), interpolation=cv2.INTER_AREA)
        found = self._fa.get_landmarks(resized)
        if not found:
            return None
        lm = np.asarray(found[0], dtype=np.float64)[:, :2]
        return lm * np.array([w / AKD_FRAME_SIZE, h / AKD_FRAME_SIZE])


# ------------------------------------------------------------------------------------------ streaming


class FaceMetrics:
    """Streams frames into a :class:`MetricAccumulator` under the proxy labels.

    ``add_pair(video, generated, driving)`` — same-identity reconstruction: AKD, AED, PRMSE (and AKD[FAN]
    when a FAN model is given). ``add_cross(video, generated, source, driving=None)`` — CSIM (source vs
    generated) and, with a driving frame, PRMSE. Frames without a face in either image are counted as skipped
    for every metric that needed it. Images: float [0, 1] (numpy H×W×3, torch 3×H×W) or uint8 RGB.
    """

    def __init__(
        self,
        accumulator: MetricAccumulator,
        analyzer: DlibFaceAnalyzer | None = None,
        fan: LandmarkDetector | None = None,
        metrics: Sequence[str] = (AKD_DLIB, AED_DLIB, PRMSE_DLIB, CSIM_DLIB),
    ) -> None:
        self.acc = accumulator
        self.analyzer = analyzer if analyzer is not None else DlibFaceAnalyzer()
        self.fan = fan
        self.metrics = set(metrics)
        self._source_cache: tuple[int, np.ndarray | None] | None = None

    def _record(self, video: str, label: str, value: float | None) -> None:
        if label not in self.metrics and label != AKD_FAN:
            return
        if value is None:
            self.acc.skip(video, label)
        else:
            self.acc.add(video, label, value)

    def add_pair(
        self, video: str, generated: np.ndarray | torch.Tensor, driving: np.ndarray | torch.Tensor
    ) -> dict[str, float | None]:
        """Score one generated frame against its ground truth; returns the values (None = skipped)."""
        g, d = self.analyzer.analyze(generated), self.analyzer.analyze(driving)
        values: dict[str, float | None] = {}
        if g.landmarks is not None and d.landmarks is not None:
            values[AKD_DLIB] = keypoint_distance(
                scale_landmarks(d.landmarks, d.image_size), scale_landmarks(g.landmarks, g.image_size)
            )
            pose_d, pose_g = head_pose(d.landmarks, d.image_size), head_pose(g.landmarks, g.image_size)
            values[PRMSE_DLIB] = None if pose_d is None or pose_g is None else pose_rmse(pose_d, pose_g)
        else:
            values[AKD_DLIB] = values[PRMSE_DLIB] = None
        values[AED_DLIB] = (
            embedding_distance(d.embedding, g.embedding)
            if g.embedding is not None and d.embedding is not None
            else None
        )
        if self.fan is not None:
            gi, di = to_uint8_rgb(generated), to_uint8_rgb(driving)
            lg, ld = self.fan.landmarks(gi), self.fan.landmarks(di)
            values[AKD_FAN] = (
                None
                if lg is None or ld is None
                else keypoint_distance(scale_landmarks(ld, di.shape[:2]), scale_landmarks(lg, gi.shape[:2]))
            )
        for label in (AKD_DLIB, AED_DLIB, PRMSE_DLIB, AKD_FAN):
            if label in values:
                self._record(video, label, values[label])
        return values

    def add_cross(
        self,
        video: str,
        generated: np.ndarray | torch.Tensor,
        source: np.ndarray | torch.Tensor,
        driving: np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, float | None]:
        """Cross-identity frame: CSIM(source, generated) and, given the driving frame, PRMSE."""
        src = to_uint8_rgb(source)
        key = hash(src.tobytes())  # the source image is the same for a whole video: embed it once
        if self._source_cache is None or self._source_cache[0] != key:
            self._source_cache = (key, self.analyzer.analyze(src).embedding)
        e_src = self._source_cache[1]
        g = self.analyzer.analyze(generated)
        values: dict[str, float | None] = {
            CSIM_DLIB: None if e_src is None or g.embedding is None else cosine_similarity(e_src, g.embedding)
        }
        if driving is not None:
            d = self.analyzer.analyze(driving)
            pose_d = head_pose(d.landmarks, d.image_size) if d.landmarks is not None else None
            pose_g = head_pose(g.landmarks, g.image_size) if g.landmarks is not None else None
            values[PRMSE_DLIB] = None if pose_d is None or pose_g is None else pose_rmse(pose_d, pose_g)
        for label, value in values.items():
            self._record(video, label, value)
        return values
