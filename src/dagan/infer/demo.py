"""The bundled demo (``dagan demo``): a public-domain photo animated by a real driving clip.

:func:`run_demo` animates the source with face crop and paste-back (``result.mp4``, driving audio kept) and,
in the same pass, a four-panel comparison video (``side_by_side.mp4``: source | driving | result | source
depth, the driving audio kept); the source's disparity is written as a colour PNG (``source_depth.png``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.errors import InputError
from dagan.paths import PathLike


@dataclass
class DemoResult:
    result: Path
    side_by_side: Path
    source_depth: Path
    num_frames: int
    has_audio: bool
    seconds: float


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

    from dagan.infer.animator import Animator
    from dagan.infer.depth_export import write_png
    from dagan.infer.options import AnimateOptions
    from dagan.infer.sinks import SideBySideSink, VideoFileSink, depth_preview

    start = time.perf_counter()
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {max_frames}")
    for path, what in ((checkpoint, "demo checkpoint"), (source, "source image"), (driving, "driving video")):
        if not Path(path).is_file():
            raise InputError(f"{what} not found: {path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    animator = Animator.from_checkpoint(checkpoint, device="cpu")
    if animator.models is None or animator.models.depth_net is None:
        raise InputError(f"{checkpoint} is a depth-free model; the demo needs a depth-aware one")

    options = AnimateOptions(crop=True, paste_back=True, max_frames=max_frames)
    job = animator.video_job(source, driving, out / "result.mp4", options)
    assert job.state.disparity is not None
    depth = depth_preview(job.state.disparity)
    # four panels per frame; the driving frames are shown whole, as they come
    audio = driving if job.info.has_audio else None
    side_by_side = SideBySideSink(
        [VideoFileSink(out / "side_by_side.mp4", job.info.rate, audio_from=audio)],
        job.source_panel,
        whole_driving=True,
        extra=[depth],
    )
    result = job.run([side_by_side], progress=progress)
    write_png(out / "source_depth.png", depth)
    return DemoResult(
        out / "result.mp4", out / "side_by_side.mp4", out / "source_depth.png", result.num_frames,
        result.has_audio, time.perf_counter() - start,
    )
