"""Frame-by-frame animation for real-time use (a webcam): ``session(frame) -> generated frame``.

Unlike a video job, a live session never sees the whole driving video: the first frame (or the one given to
:meth:`LiveSession.set_anchor`) is the relative-motion anchor, and the driving face is followed by a
streaming One-Euro box smoother instead of a zero-phase crop tube.
"""

from __future__ import annotations

import numpy as np

from dagan.data.video import resize_rgb
from dagan.errors import DaganError
from dagan.faces.boxes import DEFAULT_CROP_SCALE
from dagan.infer.engine import Engine, SourceState, frame_keypoints, generate_frames, motion_transfer, to_uint8
from dagan.infer.motion import MotionTransfer
from dagan.infer.smoothing import KeypointSmoother
from dagan.infer.source import FaceModels, as_rgb_uint8

__all__ = ["LiveSession"]


class LiveSession:
    """Animate ``state`` (a prepared source) one camera frame at a time; each call returns a uint8 frame.

    With ``crop_driving`` every frame's face is detected and its box smoothed (One-Euro at ``fps``); with
    ``paste_back`` (needs a cropped source) the output is the full source picture with the face replaced.
    ``smooth`` > 0 smooths the keypoints too (One-Euro minimum cutoff in Hz).
    """

    def __init__(
        self,
        engine: Engine,
        faces: FaceModels,
        state: SourceState,
        relative: bool = True,
        adapt_scale: bool = True,
        smooth: float = 0.0,
        fps: float = 30.0,
        crop_driving: bool = False,
        crop_scale: float = DEFAULT_CROP_SCALE,
        paste_back: bool = False,
        detector: str = "auto",
    ) -> None:
        self.engine, self.faces, self.state = engine, faces, state
        self.relative, self.adapt_scale = relative, adapt_scale
        self.smoother = KeypointSmoother(fps, min_cutoff=smooth) if smooth > 0 else None
        self.crop_scale, self.detector_name = crop_scale, detector
        self.box_smoother = None
        if crop_driving:
            from dagan.faces import BoxSmoother

            self.box_smoother = BoxSmoother(fps=fps)
        self.paster = None
        if paste_back:
            if state.crop_box is None:
                raise DaganError("paste-back needs a source prepared with crop=True")
            from dagan.faces import PasteBack

            self.paster = PasteBack(state.full_image, state.crop_box, engine.resolution)
        self.transfer: MotionTransfer | None = None if relative else motion_transfer(engine, state, None, False)

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The model-resolution driving crop of one camera frame."""
        frame = as_rgb_uint8(frame, "driving frame")
        resolution = self.engine.resolution
        if self.box_smoother is None:
            return resize_rgb(frame, resolution)
        from dagan.faces import crop_and_resize, largest_face, square_crop_box

        box = self.box_smoother.update(largest_face(self.faces.detector(self.detector_name).detect(frame)))
        if box is None:
            return resize_rgb(frame, resolution)
        crop_box = square_crop_box(box, frame.shape[:2], scale=self.crop_scale)
        return crop_and_resize(frame, crop_box, resolution, pad="edge")

    def set_anchor(self, frame: np.ndarray) -> None:
        """Use ``frame`` (a camera frame) as the relative-motion anchor."""
        kp = frame_keypoints(self.engine, self.crop(frame)[None])
        self.transfer = motion_transfer(self.engine, self.state, kp, self.relative, self.adapt_scale)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        driving = self.crop(frame)[None]
        rows: list[int] = []
        if self.transfer is None:
            kp = frame_keypoints(self.engine, driving)
            self.transfer = motion_transfer(self.engine, self.state, kp, self.relative, self.adapt_scale)
            rows = [0]
        generated = generate_frames(self.engine, driving, self.state, self.transfer, self.smoother, rows)
        out = to_uint8(generated)[0]
        return self.paster(out) if self.paster is not None else out
