"""Training data from raw videos (``dagan prepare-data``): face tubes → square crops in the
``ROOT/{train,test}/<person>#<video>#<tube>`` layout, or the standard VoxCeleb crops from their metadata.

:mod:`dagan.prepare.tubes` is the per-video pipeline, :mod:`dagan.prepare.metadata` the VoxCeleb metadata
format, :mod:`dagan.prepare.planning` turns the inputs into jobs, :mod:`dagan.prepare.runner` is the
parallel, resumable batch driver.
"""

from dagan.prepare.metadata import MetadataRow, frame_range, read_metadata, scaled_box
from dagan.prepare.planning import (
    MetadataJob,
    VideoJob,
    collect_videos,
    held_out_identities,
    plan_metadata_jobs,
    plan_video_jobs,
)
from dagan.prepare.runner import PrepareOptions, PrepareSummary, VideoResult, prepare, run_job
from dagan.prepare.tubes import (
    END_CAUSES,
    Segment,
    TubeOptions,
    VideoAnalysis,
    analyse_video,
    segment_crop,
    write_segments,
)

__all__ = [
    "END_CAUSES",
    "MetadataJob",
    "MetadataRow",
    "PrepareOptions",
    "PrepareSummary",
    "Segment",
    "TubeOptions",
    "VideoAnalysis",
    "VideoJob",
    "VideoResult",
    "analyse_video",
    "collect_videos",
    "frame_range",
    "held_out_identities",
    "plan_metadata_jobs",
    "plan_video_jobs",
    "prepare",
    "read_metadata",
    "run_job",
    "scaled_box",
    "segment_crop",
    "write_segments",
]
