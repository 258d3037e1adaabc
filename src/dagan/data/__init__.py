"""Data: streaming video/image IO (PyAV), training/evaluation datasets, synthetic talking heads with GT."""

from dagan.data.video import (
    VideoInfo,
    VideoWriter,
    is_frame_folder,
    iter_frames,
    probe_video,
    read_frames,
    read_image,
    write_png_frames,
)

__all__ = [
    "VideoInfo",
    "VideoWriter",
    "is_frame_folder",
    "iter_frames",
    "probe_video",
    "read_frames",
    "read_image",
    "write_png_frames",
]
