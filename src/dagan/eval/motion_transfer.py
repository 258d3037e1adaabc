"""Motion transfer: does the generated video move like the driving video?

Per frame, each video gives four signals from dlib's 68 iBUG landmarks (0-based indices):

* yaw, pitch, roll in degrees — :func:`dagan.eval.face_metrics.head_pose` (six landmarks fitted to a generic
  3-D face by ``cv2.solvePnP`` with SQPNP, the PRMSE machinery), on landmarks moved to the image centre
  (:func:`centred_on_image`) so that a face sliding across the picture does not read as a turn;
* mouth opening — :func:`mouth_opening`: the mean inner-lip gap ``(|p61−p67| + |p62−p66| + |p63−p65|) / 3``
  divided by the inter-ocular distance ``|p36−p45|`` (outer eye corners).

Landmarks come from one face followed through each video (:class:`FollowedFace`): dlib's HOG detector finds
false faces in some pictures (in the bundled astronaut photo, a face-sized box on the spacesuit's collar ring,
as large as the real face), and a blurry generated face is often missed while the false one is not — taking the
largest box per frame would then measure the collar. A frame whose boxes do not overlap the followed face
counts as a frame without a face, unless a second, more permissive search in a window around the followed
face finds it (the demo model's blurry faces are often missed by dlib's default threshold).

The two videos are compared signal by signal over the frames where both have a face (the others are dropped
and counted): the amplitude ratio ``σ_G / σ_D`` (:func:`amplitude_ratio`) says how much of the driving motion
comes through, Pearson's correlation (:func:`correlation`) whether it follows the driving video in time. A
still video (e.g. the source photo copied) scores ratio 0 and no correlation; the driving video against itself
scores 1 and 1. The identities differ, so absolute values (a yaw offset from a face that is not centred in
the picture, a person whose lips are thicker) are not compared: both measures ignore the series' means.

Why the inter-ocular distance normalises the mouth: the generated video is usually the paste-back output at
the source photo's size while the driving clip is a face crop, so the gap in pixels is not comparable; the
normaliser must not move when the mouth opens (the nose-to-chin or face-height distances do), and the outer
eye corners are the standard face-size reference of 68-point benchmarks (300-W), unaffected by blinks. It
shrinks as cos(yaw) when the head turns: a ±20° turn scales the measured opening by at most 6 %, and a
closed mouth stays 0 (the error is proportional to the opening, it adds no motion of its own).

The amplitude is the standard deviation ``σ = sqrt(mean((x − x̄)²))`` of the series, not a robust range
(5–95 %): it matches the Pearson correlation, which is computed from the same de-meaned series, and a still
video then gives exactly 0 (identical frames give identical landmarks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dagan.errors import InputError
from dagan.eval.face_metrics import LandmarkDetector, head_pose, to_uint8_rgb
from dagan.faces import DlibHogDetector, FaceBox, FaceDetector, Landmarks68, iou

#: The compared signals, in table order.
SIGNALS = ("yaw", "pitch", "roll", "mouth")
#: Units of each signal (for tables).
UNITS = {"yaw": "°", "pitch": "°", "roll": "°", "mouth": "× inter-ocular"}
#: Inner-lip landmark pairs (upper, lower) of the 68-point scheme, 0-based.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: Outer eye corners, whose distance is the face size that normalises the mouth opening.
OUTER_EYE_CORNERS = (36, 45)
#: Targets for a model that transfers motion well: signal → (minimum ratio, minimum correlation).
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "yaw": (0.5, 0.7),
    "pitch": (0.5, 0.7),
    "mouth": (None, 0.5),
}


@dataclass(frozen=True)
class MotionSeries:
    """Per-frame yaw, pitch, roll (degrees) and mouth opening of one video; NaN where no face was found (or,
    for the three angles, where the pose fit failed)."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    mouth: np.ndarray

    def __post_init__(self) -> None:
        lengths = {len(np.asarray(getattr(self, name))) for name in SIGNALS}
        if len(lengths) != 1:
            raise InputError(f"motion series of unequal lengths: {sorted(lengths)}")
        for name in SIGNALS:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))

    def __len__(self) -> int:
        return len(self.yaw)

    def signal(self, name: str) -> np.ndarray:
        """The series of one of :data:`SIGNALS`."""
        if name not in SIGNALS:
            raise InputError(f"unknown motion signal {name!r} (one of {', '.join(SIGNALS)})")
        return getattr(self, name)

    @property
    def has_face(self) -> np.ndarray:
        """Boolean mask of the frames where every signal was measured."""
        return np.all([np.isfinite(self.signal(name)) for name in SIGNALS], axis=0)

    @classmethod
    def still(cls, frame: np.ndarray, count: int, analyzer: LandmarkDetector | None = None) -> MotionSeries:
        """The series of ``count`` copies of one frame (a video without motion), analysed once."""
        one = head_motion_series([frame], analyzer)
        return cls(*(np.repeat(one.signal(name), count) for name in SIGNALS))


def mouth_opening(landmarks: np.ndarray) -> float:
    """``mean_{(u,l) ∈ INNER_LIP_PAIRS} |p_u − p_l| / |p36 − p45|``: the inner-lip gap in inter-ocular
    distances (0 = lips closed). NaN when the eye corners coincide."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise InputError(f"landmarks must be 68×2, got shape {lm.shape}")
    gap = np.mean([np.linalg.norm(lm[u] - lm[l]) for u, l in INNER_LIP_PAIRS])
    eyes = np.linalg.norm(lm[OUTER_EYE_CORNERS[0]] - lm[OUTER_EYE_CORNERS[1]])
    return float(gap / eyes) if eyes > 0 else math.nan


def main_face(image: np.ndarray, detector: FaceDetector | None = None) -> FaceBox | None:
    """The detection with the highest score in ``image`` (None without any): unlike the largest box, it
    prefers a real face over an equally large false one. ``detector`` defaults to dlib's HOG detector."""
    boxes = (detector if detector is not None else DlibHogDetector()).detect(image)
    return max(boxes, key=lambda b: b.score) if boxes else None


class FollowedFace:
    """68 landmarks of one face followed through a video, frame by frame (a :class:`LandmarkDetector`; use
    one instance per video, it keeps state).

    The face starts at ``anchor`` (e.g. the :func:`main_face` of the source photo of a pasted-back output),
    else at the highest-scoring detection of the first frame with one. In each frame the detection with the
    largest IoU with the face's last box is taken, when that IoU is at least ``min_iou``. When there is none,
    the window around the last box (half a box of margin on each side) is searched again by dlib's HOG
    detector with its SVM threshold lowered to ``near_threshold`` (None: no second search): near a face
    that was just seen, a weak detection is most likely that face (a blurry generated face often scores
    below dlib's default 0). Still nothing overlapping: the frame has no face (None), the last box is kept.
    ``detector`` defaults to dlib's HOG detector; landmarks come from dlib's 68-point shape predictor (the
    ``faces`` extra)."""

    def __init__(
        self,
        anchor: FaceBox | None = None,
        detector: FaceDetector | None = None,
        min_iou: float = 0.3,
        near_threshold: float | None = -0.5,
    ) -> None:
        self.detector = detector if detector is not None else DlibHogDetector()
        self.box = anchor
        self.min_iou = min_iou
        self._near = (
            None
            if near_threshold is None
            else DlibHogDetector(upsample=1, retry_upsample=1, threshold=near_threshold)
        )
        self._shape = Landmarks68(self.detector)

    def _overlapping(self, boxes: list[FaceBox]) -> FaceBox | None:
        if not boxes or self.box is None:
            return None
        overlap, found = max(((iou(self.box, b), b) for b in boxes), key=lambda pair: pair[0])
        return found if overlap >= self.min_iou else None

    def _search_near(self, image: np.ndarray) -> FaceBox | None:
        if self._near is None or self.box is None:
            return None
        b, (h, w) = self.box, image.shape[:2]
        margin = 0.5 * max(b.width, b.height)
        x0, y0 = int(max(0.0, b.x0 - margin)), int(max(0.0, b.y0 - margin))
        x1, y1 = int(min(w, b.x1 + margin)), int(min(h, b.y1 + margin))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        found = self._near.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
        return self._overlapping([FaceBox(f.x0 + x0, f.y0 + y0, f.x1 + x0, f.y1 + y0, f.score) for f in found])

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        img = to_uint8_rgb(image)
        boxes = self.detector.detect(img)
        if self.box is None:
            found = max(boxes, key=lambda b: b.score) if boxes else None
        else:
            found = self._overlapping(boxes) or self._search_near(img)
        if found is None:
            return None
        self.box = found
        return self._shape.landmarks(img, found)


def head_motion_series(frames: Iterable[np.ndarray], analyzer: LandmarkDetector | None = None) -> MotionSeries:
    """:class:`MotionSeries` of uint8 H×W×3 RGB frames (any size). ``analyzer``: anything with
    ``landmarks(image) -> 68×2 array | None``, called on the frames in order (default: a new
    :class:`FollowedFace`; needs the ``faces`` extra)."""
    analyzer = analyzer if analyzer is not None else FollowedFace()
    rows: list[tuple[float, ...]] = []
    for frame in frames:
        landmarks = analyzer.landmarks(frame)
        if landmarks is None:
            rows.append((math.nan,) * 4)
            continue
        size = (frame.shape[0], frame.shape[1])
        pose = head_pose(centred_on_image(landmarks, size), size)
        angles = (math.nan,) * 3 if pose is None else tuple(float(a) for a in pose)
        rows.append((*angles, mouth_opening(landmarks)))
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return MotionSeries(*table.T)


def centred_on_image(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``p − mean(p) + c`` with ``c = ((W − 1)/2, (H − 1)/2)``: the landmarks moved so the face is at the image
    centre before the pose fit. With a fixed pinhole camera, a face that slides sideways without turning
    is fitted as a head that turns (about 2.4° of yaw per 20 px in a 512² picture, measured on the
    astronaut photo); a generated face that moves with the driver instead of rotating would then be scored
    as yaw, possibly of the opposite sign. Centring makes the angles depend on the face's shape alone."""
    h, w = image_size
    pts = np.asarray(landmarks, dtype=np.float64)
    return pts - pts.mean(axis=0) + np.array([(w - 1) / 2.0, (h - 1) / 2.0])


# ------------------------------------------------------------------------------------------ pure measures


def _paired(driving: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d, g = np.asarray(driving, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if d.shape != g.shape or d.ndim != 1:
        raise InputError(f"series must be 1-D and of equal length, got shapes {d.shape} and {g.shape}")
    both = np.isfinite(d) & np.isfinite(g)
    return d[both], g[both]


def _std(x: np.ndarray) -> float:
    # Exactly 0 for a constant series (np.std can leave rounding residue of the mean).
    return float(np.std(x)) if x.size and np.ptp(x) > 0 else 0.0


def amplitude(series: np.ndarray) -> float:
    """``σ = sqrt(mean((x − x̄)²))`` over the finite values (exactly 0 for a constant series, NaN when there
    are no finite values)."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    return _std(x) if x.size else math.nan


def amplitude_ratio(driving: np.ndarray, generated: np.ndarray) -> float:
    """``σ_G / σ_D`` over the frames where both series are finite: 1 = the full driving motion, 0 = none.
    NaN when the driving series is constant there (nothing to transfer) or no frame is shared."""
    d, g = _paired(driving, generated)
    sd = _std(d)
    return _std(g) / sd if sd > 0 else math.nan


def correlation(driving: np.ndarray, generated: np.ndarray) -> float:
    """Pearson's ``r = Σ(d − d̄)(g − ḡ) / sqrt(Σ(d − d̄)² · Σ(g − ḡ)²)`` over the frames where both series
    are finite. NaN when either is constant there or fewer than two frames are shared (see
    :func:`constant_flag`)."""
    d, g = _paired(driving, generated)
    if d.size < 2 or np.ptp(d) == 0 or np.ptp(g) == 0:
        return math.nan
    dd, gg = d - d.mean(), g - g.mean()
    denom = math.sqrt(float(np.sum(dd**2)) * float(np.sum(gg**2)))
    return float(np.sum(dd * gg)) / denom if denom > 0 else math.nan


def constant_flag(driving: np.ndarray, generated: np.ndarray) -> str | None:
    """Why :func:`correlation` (or :func:`amplitude_ratio`) is undefined for this pair, or None."""
    d, g = _paired(driving, generated)
    if d.size < 2:
        return "fewer than 2 frames with a face in both"
    if np.ptp(d) == 0:
        return "driving constant"
    if np.ptp(g) == 0:
        return "generated constant"
    return None


# ------------------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class SignalTransfer:
    """One signal compared: amplitudes (σ over the shared frames), ratio, correlation, and ``flag`` saying
    why a value is NaN (None when all are defined)."""

    driving_amplitude: float
    generated_amplitude: float
    ratio: float
    correlation: float
    flag: str | None = None


@dataclass(frozen=True)
class MotionTransferReport:
    """Per-signal :class:`SignalTransfer`, and the frame counts: ``frames`` in each video, ``frames_used``
    with a face in both, ``no_face_driving`` / ``no_face_generated`` dropped for lack of a face (or pose) in
    that video (a frame missing in both counts in both)."""

    signals: dict[str, SignalTransfer]
    frames: int
    frames_used: int
    no_face_driving: int
    no_face_generated: int
    targets: dict[str, tuple[float | None, float | None]] = field(default_factory=lambda: dict(TARGETS))

    @property
    def frames_dropped(self) -> int:
        return self.frames - self.frames_used

    def meets_targets(self) -> dict[str, bool]:
        """Signal → whether its ratio and correlation reach :attr:`targets` (NaN never does)."""
        out = {}
        for name, (min_ratio, min_corr) in self.targets.items():
            s = self.signals[name]
            ok_ratio = min_ratio is None or (not math.isnan(s.ratio) and s.ratio >= min_ratio)
            ok_corr = min_corr is None or (not math.isnan(s.correlation) and s.correlation >= min_corr)
            out[name] = ok_ratio and ok_corr
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "frames": self.frames,
            "frames_used": self.frames_used,
            "frames_dropped": self.frames_dropped,
            "no_face_driving": self.no_face_driving,
            "no_face_generated": self.no_face_generated,
            "signals": {
                name: {
                    "unit": UNITS[name],
                    "driving_amplitude": clean(s.driving_amplitude),
                    "generated_amplitude": clean(s.generated_amplitude),
                    "ratio": clean(s.ratio),
                    "correlation": clean(s.correlation),
                    "flag": s.flag,
                }
                for name, s in self.signals.items()
            },
            "meets_targets": self.meets_targets(),
        }

    def markdown_rows(self, prefix: str = "") -> list[str]:
        """Table rows ``| signal | driving σ | generated σ | ratio | correlation |`` (``prefix`` cells first,
        e.g. ``"| model "``)."""

        def num(v: float, digits: int) -> str:
            return "–" if math.isnan(v) else f"{v:.{digits}f}"

        rows = []
        for name, s in self.signals.items():
            digits = 3 if name == "mouth" else 2
            corr = num(s.correlation, 2) + (f" ({s.flag})" if s.flag else "")
            rows.append(
                f"{prefix}| {name} ({UNITS[name]}) | {num(s.driving_amplitude, digits)} | "
                f"{num(s.generated_amplitude, digits)} | {num(s.ratio, 2)} | {corr} |"
            )
        return rows

    def frames_line(self) -> str:
        return (
            f"frames used: {self.frames_used} of {self.frames} (no face in driving: {self.no_face_driving}, "
            f"in generated: {self.no_face_generated})"
        )

    def to_markdown(self) -> str:
        """A Markdown table of the signals, then the frame counts."""
        head = [
            "| signal | driving amplitude (σ) | generated amplitude (σ) | ratio | correlation |",
            "|---|---:|---:|---:|---:|",
        ]
        return "\n".join([*head, *self.markdown_rows(), "", self.frames_line()])


def compare_motion(driving: MotionSeries, generated: MotionSeries) -> MotionTransferReport:
    """Compare two series frame by frame (same frame count) over the frames where both have a face."""
    if len(driving) != len(generated):
        raise InputError(
            f"the driving and generated videos have different frame counts ({len(driving)} vs {len(generated)})"
        )
    d_ok, g_ok = driving.has_face, generated.has_face
    both = d_ok & g_ok
    signals = {}
    for name in SIGNALS:
        # Mask with the frames where *every* signal is measured in both, so all four use the same frames.
        d = np.where(both, driving.signal(name), np.nan)
        g = np.where(both, generated.signal(name), np.nan)
        signals[name] = SignalTransfer(
            driving_amplitude=amplitude(d),
            generated_amplitude=amplitude(g),
            ratio=amplitude_ratio(d, g),
            correlation=correlation(d, g),
            flag=constant_flag(d, g),
        )
    return MotionTransferReport(
        signals=signals,
        frames=len(driving),
        frames_used=int(both.sum()),
        no_face_driving=int((~d_ok).sum()),
        no_face_generated=int((~g_ok).sum()),
    )


def measure_motion_transfer(
    driving_frames: Iterable[np.ndarray],
    generated_frames: Iterable[np.ndarray],
    *,
    generated_anchor: FaceBox | None = None,
    detector: FaceDetector | None = None,
) -> MotionTransferReport:
    """:func:`compare_motion` of the :func:`head_motion_series` of two videos' uint8 RGB frames (any sizes,
    same frame count), e.g. the driving clip and ``dagan animate``'s output, each with its own
    :class:`FollowedFace`. ``generated_anchor``: where the generated face starts (for a pasted-back output,
    the :func:`main_face` of the source photo), when a false face could be found first."""
    driving = head_motion_series(driving_frames, FollowedFace(detector=detector))
    generated = head_motion_series(generated_frames, FollowedFace(generated_anchor, detector=detector))
    return compare_motion(driving, generated)
