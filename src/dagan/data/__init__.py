"""Data: streaming video/image IO (PyAV), training/evaluation datasets, synthetic talking heads with GT."""

from dagan.data.frame_folder_writer import FrameFolderWriter, write_png_frames
from dagan.data.video import (
    VideoInfo,
    VideoWriter,
    is_frame_folder,
    iter_frames,
    probe_video,
    read_frames,
    read_image,
)

__all__ = [
    "FrameFolderWriter",
    "VideoInfo",
    "VideoWriter",
    "is_frame_folder",
    "iter_frames",
    "probe_video",
    "read_frames",
    "read_image",
    "write_png_frames",
]
