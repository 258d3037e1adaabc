"""The bundled demo (``dagan demo``): a public-domain photo animated by a real driving clip.

:func:`run_demo` animates the source with face crop and paste-back (``result.mp4``, driving audio kept),
writes the source's disparity as a colour PNG (``source_depth.png``) and a four-panel comparison video
(``side_by_side.mp4``: source | driving | result | source depth, the driving audio kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.errors import InputError

PathLike = str | os.PathLike[str]


@dataclass
class DemoResult:
    result: Path
    side_by_side: Path
    source_depth: Path
    num_frames: int
    has_audio: bool
    seconds: float


def depth_preview(disparity: torch.Tensor, size: int) -> np.ndarray:
    """1×1×R×R disparity → size×size×3 uint8 colour preview (bilinear up-sampling; near is bright)."""
    from dagan.infer.depth_export import colorize

    up = F.interpolate(disparity.float(), size=(size, size), mode="bilinear", align_corners=False)
    return colorize(up[0, 0].cpu().numpy())


def run_demo(
    out_dir: PathLike,
    checkpoint: PathLike = DEMO_CHECKPOINT,
    source: PathLike = DEMO_SOURCE,
    driving: PathLike = DEMO_DRIVING,
    max_frames: int | None = None,
    progress: bool = True,
) -> DemoResult:
    """Animate ``source`` with ``driving`` into ``out_dir`` (created if needed); see the module docstring."""
    import time

    from dagan.data.video import VideoWriter, iter_frames, probe_video
    from dagan.infer.animator import PANEL_HEIGHT, Animator, stack_panels
    from dagan.infer.depth_export import write_png

    start = time.perf_counter()
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {max_frames}")
    for path, what in ((checkpoint, "demo checkpoint"), (source, "source image"), (driving, "driving video")):
        if not Path(path).is_file():
            raise InputError(f"{what} not found: {path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    animator = Animator.from_checkpoint(checkpoint, device="cpu")
    if animator.models.depth_net is None:
        raise InputError(f"{checkpoint} is a depth-free model; the demo needs a depth-aware one")

    work = Path(tempfile.mkdtemp(prefix=".demo-", dir=out))
    try:
        result = animator.animate(
            source, driving, out / "result.mp4", crop=True, paste_back=True, frames_out=work / "frames",
            max_frames=max_frames, progress=progress,
        )
        state = animator.prepare_source(source, crop=True)
        depth = depth_preview(state.disparity, PANEL_HEIGHT)
        write_png(out / "source_depth.png", depth)

        # Four panels per frame; the driving frames are shown whole, as they come.
        from dagan.data.video import list_frame_files, read_image

        info = probe_video(driving)
        generated = list_frame_files(work / "frames")
        audio = driving if info.has_audio else None
        with VideoWriter(out / "side_by_side.mp4", info.rate, audio_from=audio) as w:
            for drive, frame_path in zip(iter_frames(driving), generated):
                w.write(stack_panels([state.full_image, drive, read_image(frame_path), depth]))
            if w.frames_written != result.num_frames:
                raise InputError(f"driving video '{driving}' ended after {w.frames_written} frames")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DemoResult(
        out / "result.mp4", out / "side_by_side.mp4", out / "source_depth.png", result.num_frames,
        result.has_audio, time.perf_counter() - start,
    )
