"""How one video is animated: :class:`AnimateOptions`, the options of ``dagan animate`` (and of the web
page), checked without any file or model work so a command can refuse them before loading a model."""

from __future__ import annotations

from dataclasses import dataclass

from dagan.errors import DaganError
from dagan.faces.boxes import DEFAULT_CROP_SCALE

__all__ = ["AnimateOptions", "default_batch_size"]

#: Driving frames per generator call when none is given: on a CPU, batching buys no speed but costs memory
#: (``dagan bench`` at 256², 2 cores: DaGAN++ 1,095 ms/frame at batch 1 vs 1,098 at batch 8 with 1.8 vs
#: 2.8 GB; FOMM and DaGAN-SPADE are faster at batch 1); a GPU needs batches to be kept busy.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 1, 8


def default_batch_size(device_type: str) -> int:
    """The batch size used when none is given: :data:`GPU_BATCH_SIZE` on CUDA, else :data:`CPU_BATCH_SIZE`."""
    return GPU_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


@dataclass(frozen=True)
class AnimateOptions:
    """The options of one animation; the defaults are those of ``dagan animate`` (see its ``--help``)."""

    relative: bool = True  # relative motion from an anchor frame; False: the driving keypoints as they are
    adapt_scale: bool = True  # scale relative motion by the faces' keypoint-hull size ratio
    find_best_frame: bool = False  # anchor at the driving frame whose landmarks best match the source
    best_frame: int | None = None  # anchor at this driving frame (default: 0)
    crop: bool = True  # crop the faces (the source's square, the driving video's smoothed tube)
    crop_scale: float = DEFAULT_CROP_SCALE  # crop side / face-box size
    detector: str = "auto"  # face detector backend
    paste_back: bool | None = None  # None: paste the face back whenever there is a crop (see pastes_back)
    smooth: float = 0.0  # One-Euro minimum cutoff (Hz) for the keypoints; 0 = off
    batch_size: int | None = None  # driving frames per generator call (None: default_batch_size)
    side_by_side: bool = False  # output source | driving crop | result
    audio: bool = True  # copy the driving video's audio
    max_frames: int | None = None  # animate only the first N driving frames
    crf: int = 18  # H.264 quality (lower is better)

    @property
    def pastes_back(self) -> bool:
        """Whether the generated face goes back into the full source picture: ``paste_back``, or when
        unset, whenever the faces are cropped."""
        return self.crop if self.paste_back is None else self.paste_back

    def check(self) -> None:
        """Refuse values and combinations that cannot be animated (:class:`DaganError`, one line)."""
        if self.batch_size is not None and self.batch_size < 1:
            raise DaganError(f"batch size must be >= 1, got {self.batch_size}")
        if self.smooth < 0:
            raise DaganError(f"smoothing must be >= 0 (0 = off), got {self.smooth}")
        if self.paste_back and not self.crop:  # only an explicit request; the default (None) follows crop
            raise DaganError(
                "--paste-back needs face cropping: with --no-crop the whole picture is animated, so there is "
                "nothing to paste back into (drop one of them)"
            )
        if self.find_best_frame and self.best_frame is not None:
            raise DaganError("give either --find-best-frame or --best-frame, not both")
        if self.max_frames is not None and self.max_frames < 1:
            raise DaganError(f"max frames must be >= 1, got {self.max_frames}")
