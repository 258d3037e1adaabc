"""Scoring generated frames: the ``--metrics`` groups and :class:`FrameScorer`, which computes them.

Conventions: generated frames are rounded to 8 bits (what ``--save-frames`` writes) and compared with the
driving frames resized to the model resolution R; face metrics see both upscaled to at least 256×256
(:data:`FACE_METRIC_SIZE`, the size the literature evaluates AKD at; dlib's detector misses small faces);
depth metrics compare the depth the model's frozen depth net sees in the *generated* frame with the ground
truth depth of the driving frame (head pixels of its mask), for videos with a ``<name>.npz`` beside them
(synthetic heads). A metric that cannot be computed (a missing optional package, no depth net) is listed in
:attr:`FrameScorer.unavailable` with the reason instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from dagan.data.video import resize_rgb
from dagan.errors import DaganError
from dagan.eval.depth_metrics import depth_metrics
from dagan.eval.face_metrics import AED_DLIB, AKD_DLIB, AKD_FAN, CSIM_DLIB, PRMSE_DLIB
from dagan.eval.ground_truth import GroundTruthFrames
from dagan.eval.lpips import LPIPS_LABELS
from dagan.eval.metrics import L1_LABEL, PSNR_LABEL, SSIM_PAPER, SSIM_STANDARD, TCM_LABEL, l1, psnr, ssim
from dagan.eval.parts import UnitRecord
from dagan.eval.results import AUCON_UNAVAILABLE_REASON, DEPTH_LABELS, MOTION_LABELS

__all__ = [
    "FACE_METRIC_SIZE",
    "METRIC_GROUPS",
    "SAME_IDENTITY_METRICS",
    "FrameScorer",
    "MotionStream",
    "TemporalStream",
]

#: ``--metrics`` names and the result labels each one produces.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "l1": (L1_LABEL,),
    "psnr": (PSNR_LABEL,),
    "ssim": (SSIM_STANDARD.label, SSIM_PAPER.label),
    "lpips": (LPIPS_LABELS["alex"],),
    "lpips-vgg": (LPIPS_LABELS["vgg"],),
    "akd": (AKD_DLIB,),
    "akd-fan": (AKD_FAN,),
    "aed": (AED_DLIB,),
    "prmse": (PRMSE_DLIB,),
    "csim": (CSIM_DLIB,),
    "tcm": (TCM_LABEL,),
    "aucon": ("AUCON",),
    "depth": tuple(DEPTH_LABELS.values()),
    "motion": tuple(MOTION_LABELS.values()),
}
#: The metric groups of the same-identity protocols (a ground-truth frame for every generated one).
SAME_IDENTITY_METRICS = ("l1", "psnr", "ssim", "lpips", "lpips-vgg", "akd", "akd-fan", "aed", "prmse")
#: Face metrics analyse frames upscaled to at least this size (AKD is defined on 256² frames).
FACE_METRIC_SIZE = 256


def _to_float(frames: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W float64 in [0, 1] (CPU; exact, skimage-comparable metric inputs)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).double() / 255.0


def _face_size(frame: np.ndarray) -> np.ndarray:
    if min(frame.shape[:2]) >= FACE_METRIC_SIZE:
        return frame
    return resize_rgb(frame, FACE_METRIC_SIZE)


class MotionStream:
    """Motion transfer of one unit, fed batch by batch: the head-pose and mouth-opening series of the
    driving and the generated frames (each face followed through its video, frames upscaled to
    :data:`FACE_METRIC_SIZE`), compared when the unit ends (:func:`dagan.eval.motion_transfer.compare_motion`)
    into one value per label and unit."""

    def __init__(self) -> None:
        from dagan.eval.motion_transfer import FollowedFace

        self._trackers = (FollowedFace(), FollowedFace())
        self._series: tuple[list[Any], list[Any]] = ([], [])

    def update(self, driving: np.ndarray, generated: np.ndarray) -> None:
        from dagan.eval.motion_transfer import head_motion_series

        for frames, tracker, series in zip((driving, generated), self._trackers, self._series):
            series.append(head_motion_series((_face_size(f) for f in frames), tracker))

    def finish(self, record: UnitRecord) -> None:
        from dagan.eval.motion_transfer import SIGNALS, MotionSeries, compare_motion

        driving, generated = (
            MotionSeries(*(np.concatenate([s.signal(n) for s in parts]) for n in SIGNALS)) for parts in self._series
        )
        report = compare_motion(driving, generated).as_dict()
        for (signal, measure), label in MOTION_LABELS.items():
            value = report["signals"][signal]["ratio" if measure == "ratio" else "correlation"]
            if value is None or not np.isfinite(value):
                record.skip(record.key, label)
            else:
                record.add(record.key, label, [float(value)])


class TemporalStream:
    """TCM over a video that arrives batch by batch: keeps the last frame pair between batches."""

    def __init__(self) -> None:
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
        from dagan.eval.metrics import tcm_values

        g = generated.astype(np.float64) / 255.0
        r = reference.astype(np.float64) / 255.0
        if self._last is not None:
            g, r = np.concatenate([self._last[0], g]), np.concatenate([self._last[1], r])
        self._last = (g[-1:], r[-1:])
        return tcm_values(g, r) if len(g) >= 2 else np.empty(0)


class FrameScorer:
    """The metrics of one run: sets up what is requested and available, and scores batches into a
    :class:`UnitRecord`. ``unavailable`` maps labels that cannot be computed to the reason."""

    def __init__(self, animator: Any, groups: Sequence[str], device: torch.device) -> None:
        self.animator = animator
        self.device = device
        self.labels = [label for g in groups for label in METRIC_GROUPS[g]]
        self.unavailable: dict[str, str] = {}
        self.lpips: dict[str, torch.nn.Module] = {}
        self.face: Any = None
        self.face_labels: list[str] = []
        self.fan: Any = None
        self.face_error = ""
        self.tcm = False
        self.depth = False
        self.motion = False
        self._setup(set(groups))

    def _mark(self, labels: Iterable[str], reason: str) -> None:
        for label in labels:
            self.unavailable[label] = reason

    def _setup(self, groups: set[str]) -> None:
        from dagan.eval.lpips import load_lpips

        nets: tuple[tuple[Literal["alex", "vgg"], str], ...] = (("alex", "lpips"), ("vgg", "lpips-vgg"))
        for net, group in nets:
            if group in groups:
                try:
                    self.lpips[LPIPS_LABELS[net]] = load_lpips(net).to(self.device)
                except (DaganError, OSError, ImportError, ValueError) as exc:
                    self._mark(METRIC_GROUPS[group], f"LPIPS weights could not be loaded: {_line(exc)}")
        dlib_groups = [g for g in ("akd", "aed", "prmse", "csim") if g in groups]
        if dlib_groups or "akd-fan" in groups:  # FAN frames go through the same pipeline
            from dagan.eval.face_metrics import DlibFaceAnalyzer

            try:
                from dagan.faces import DlibHogDetector

                # frames are face crops of >= 256 px: no slow 2× re-search for tiny faces when none is found
                analyzer = DlibFaceAnalyzer(
                    detector=DlibHogDetector(upsample=1, retry_upsample=1),
                    landmarks=bool({"akd", "prmse"} & groups),
                    identity=bool({"aed", "csim"} & groups),
                )
                self.face_labels = [METRIC_GROUPS[g][0] for g in dlib_groups]
                self.face = analyzer
            except (DaganError, ImportError, OSError, RuntimeError) as exc:
                self._mark([METRIC_GROUPS[g][0] for g in dlib_groups], _line(exc))
                self.face_error = _line(exc)
        if "akd-fan" in groups:
            from dagan.eval.face_metrics import FANLandmarks, fan_available

            if self.face is None:
                self._mark([AKD_FAN], f"AKD[FAN] runs in the dlib face-metric pipeline: {self.face_error}")
            elif not fan_available():
                self._mark(
                    [AKD_FAN],
                    "face-alignment (2D-FAN, the literature's AKD network) is not installed: "
                    "pip install 'dagan[fan]'; AKD[dlib68] is the offline proxy",
                )
            else:
                try:
                    self.fan = FANLandmarks(device=str(self.device))
                except (DaganError, ImportError, OSError, RuntimeError) as exc:
                    self._mark([AKD_FAN], _line(exc))
        if "tcm" in groups:
            try:
                import cv2  # noqa: F401

                self.tcm = True
            except ImportError:
                self._mark([TCM_LABEL], "TCM needs OpenCV (opencv-python-headless) for Farneback flow")
        if "aucon" in groups:
            self._mark(["AUCON"], AUCON_UNAVAILABLE_REASON)
        if "motion" in groups:
            try:
                from dagan.faces import DlibHogDetector

                DlibHogDetector()
                self.motion = True
            except (DaganError, ImportError, OSError, RuntimeError) as exc:
                self._mark(METRIC_GROUPS["motion"], f"motion transfer needs dlib (the 'faces' extra): {_line(exc)}")
        if "depth" in groups:
            if self.animator.models.depth_net is None:
                self._mark(
                    METRIC_GROUPS["depth"], "the model has no depth network (a depth-free architecture)"
                )
            else:
                self.depth = True

    @property
    def computed_labels(self) -> list[str]:
        return [label for label in self.labels if label not in self.unavailable]

    def wants(self, label: str) -> bool:
        return label in self.labels and label not in self.unavailable

    def motion_stream(self) -> MotionStream | None:
        """A :class:`MotionStream` for the next unit when the ``motion`` metrics run, else None."""
        return MotionStream() if self.motion else None

    def face_metrics(self, record: UnitRecord) -> Any:
        from dagan.eval.face_metrics import FaceMetrics

        if self.face is None:
            return None
        return FaceMetrics(record, analyzer=self.face, fan=self.fan, metrics=self.face_labels)

    @torch.inference_mode()
    def same_identity(
        self,
        record: UnitRecord,
        generated: np.ndarray,
        reference: np.ndarray,
        faces: Any,
        gt: GroundTruthFrames | None,
        gt_indices: Sequence[int],
    ) -> None:
        """Score generated frames against their ground truth (both N×R×R×3 uint8)."""
        key = record.key
        g, d = _to_float(generated), _to_float(reference)
        if self.wants(L1_LABEL):
            record.add(key, L1_LABEL, l1(g, d))
        if self.wants(PSNR_LABEL):
            record.add(key, PSNR_LABEL, psnr(g, d))
        for variant in (SSIM_STANDARD, SSIM_PAPER):
            if self.wants(variant.label):
                record.add(key, variant.label, ssim(g, d, variant))
        for label, net in self.lpips.items():
            x, y = g.float().to(self.device), d.float().to(self.device)
            record.add(key, label, net(x, y))
        if faces is not None:
            for gen, ref in zip(generated, reference):
                faces.add_pair(key, _face_size(gen), _face_size(ref))
        if self.depth and gt is not None:
            self._depth(record, g.float(), gt, gt_indices)

    def _depth(
        self, record: UnitRecord, images: torch.Tensor, gt: GroundTruthFrames, indices: Sequence[int]
    ) -> None:
        from dagan.geometry.camera import disparity_to_depth

        dp = self.animator.config.model_params.depth_params
        disp = self.animator.models.disparity(images.to(self.device)).float()
        for i, index in enumerate(indices):
            depth_gt = gt.frame("depth", index).astype(np.float64)
            mask = gt.frame("mask", index).astype(bool)
            d = disp[i : i + 1]
            if d.shape[-2:] != depth_gt.shape:
                d = F.interpolate(d, size=depth_gt.shape, mode="bilinear", align_corners=False)
            pred = disparity_to_depth(d, dp.min_depth, dp.max_depth)[0, 0].double().cpu().numpy()
            try:
                values = depth_metrics(pred, depth_gt, mask)
            except ValueError:  # too few head pixels in this frame
                for label in DEPTH_LABELS.values():
                    record.skip(record.key, label)
                continue
            for name, label in DEPTH_LABELS.items():
                record.add(record.key, label, values[name])

    def cross_identity(
        self, record: UnitRecord, generated: np.ndarray, source: np.ndarray, driving: np.ndarray, faces: Any
    ) -> None:
        if faces is None:
            return
        src = _face_size(source)
        for gen, drv in zip(generated, driving):
            faces.add_cross(
                record.key, _face_size(gen), src, _face_size(drv) if self.wants(PRMSE_DLIB) else None
            )


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
