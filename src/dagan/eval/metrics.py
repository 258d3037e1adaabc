"""Pixel-level and temporal metrics: L1, PSNR, SSIM (two labelled variants) and TCM.

Conventions (all functions here):

* Images are float in [0, 1]. A numpy array is H×W×C (or H×W); a torch tensor is C×H×W or N×C×H×W (torch's
  layout). Everything is converted by :func:`to_nchw` to an N×C×H×W tensor; numpy input becomes float64 so
  that values agree with scikit-image to round-off.
* Per-image metrics return a 1-D tensor with one value per image of the batch (length 1 for a single image);
  pool them with :class:`dagan.eval.results.MetricAccumulator`.

SSIM variants (Wang et al. 2004, ``SSIM = ((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))``,
``C1 = (0.01·L)²``, ``C2 = (0.03·L)²``): both use a 7×7 uniform window, unbiased (sample, N−1) local
(co)variances, the mean over the "valid" region (positions whose window lies inside the image — the 3-pixel
border is excluded, exactly as scikit-image crops it), then the mean over channels. They differ only in the
data range ``L``:

* ``SSIM[standard,L=1]`` — the correct range for images in [0, 1];
* ``SSIM[paper,7x7-uniform,L=2]`` — what the FOMM/DaGAN evaluation scripts got from an old scikit-image whose
  float default was L = 2; it inflates the score and is reported only to compare with published numbers.

Each equals ``skimage.metrics.structural_similarity(g, d, win_size=7, gaussian_weights=False,
use_sample_covariance=True, data_range=L, channel_axis=-1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dagan.errors import InputError

ImageLike = np.ndarray | Tensor

L1_LABEL = "L1"
PSNR_LABEL = "PSNR[L=1]"
TCM_LABEL = "TCM[Farneback]"


@dataclass(frozen=True)
class SSIMVariant:
    """One SSIM configuration and the label it is reported under."""

    label: str
    data_range: float
    win_size: int = 7
    k1: float = 0.01
    k2: float = 0.03


SSIM_STANDARD = SSIMVariant("SSIM[standard,L=1]", data_range=1.0)
SSIM_PAPER = SSIMVariant("SSIM[paper,7x7-uniform,L=2]", data_range=2.0)
SSIM_VARIANTS = {"standard": SSIM_STANDARD, "paper": SSIM_PAPER}


def to_nchw(image: ImageLike, what: str = "image") -> Tensor:
    """N×C×H×W float tensor from a numpy H×W×C / H×W array (→ float64) or a torch C×H×W / N×C×H×W tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise InputError(f"{what} must be a numpy H×W×C or H×W array, got shape {image.shape}")
        if image.dtype.kind not in "fiu":
            raise InputError(f"{what} has unsupported dtype {image.dtype}")
        if image.dtype.kind in "iu":
            raise InputError(
                f"{what} must be float in [0, 1], got integer dtype {image.dtype} (divide by 255)"
            )
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64)).permute(2, 0, 1)[None]
    if isinstance(image, Tensor):
        if image.dim() == 3:
            image = image[None]
        if image.dim() != 4:
            raise InputError(f"{what} must be a C×H×W or N×C×H×W tensor, got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise InputError(f"{what} must be a float tensor in [0, 1], got {image.dtype}")
        return image
    raise InputError(f"{what} must be a numpy array or torch tensor, got {type(image).__name__}")


def _pair(generated: ImageLike, reference: ImageLike) -> tuple[Tensor, Tensor]:
    g, r = to_nchw(generated, "generated image"), to_nchw(reference, "reference image")
    if g.shape != r.shape:
        raise InputError(
            f"generated and reference images differ in shape: {tuple(g.shape)} vs {tuple(r.shape)}"
        )
    dtype = torch.promote_types(g.dtype, r.dtype)
    return g.to(dtype), r.to(dtype)


def l1(generated: ImageLike, reference: ImageLike) -> Tensor:
    """Per image: ``mean_{c,h,w} |G − D|``."""
    g, r = _pair(generated, reference)
    return (g - r).abs().flatten(1).mean(dim=1)


def mse(generated: ImageLike, reference: ImageLike) -> Tensor:
    """Per image: ``mean_{c,h,w} (G − D)²``."""
    g, r = _pair(generated, reference)
    return (g - r).pow(2).flatten(1).mean(dim=1)


def psnr(generated: ImageLike, reference: ImageLike, data_range: float = 1.0) -> Tensor:
    """Per image: ``10·log10(L² / MSE)`` in dB with L = ``data_range``; +inf for identical images."""
    err = mse(generated, reference)
    return 10.0 * torch.log10(data_range**2 / err)  # err = 0 gives +inf, as the formula says


def ssim(generated: ImageLike, reference: ImageLike, variant: SSIMVariant | str = SSIM_STANDARD) -> Tensor:
    """Per image SSIM (mean over valid positions, then over channels) for ``variant`` ("standard", "paper"
    or an :class:`SSIMVariant`); see the module docstring for the formula and the exact settings."""
    if isinstance(variant, str):
        if variant not in SSIM_VARIANTS:
            raise ValueError(f"unknown SSIM variant {variant!r}; expected one of {sorted(SSIM_VARIANTS)}")
        variant = SSIM_VARIANTS[variant]
    g, r = _pair(generated, reference)
    win = variant.win_size
    if g.shape[-1] < win or g.shape[-2] < win:
        raise InputError(f"SSIM needs images of at least {win}×{win} pixels, got {tuple(g.shape[-2:])}")
    n, c, h, w = g.shape
    # Channels are independent: fold them into the batch; a stride-1 average pool without padding is the
    # uniform filter evaluated exactly at the valid positions.
    stack = torch.cat([g, r, g * g, r * r, g * r], dim=1).reshape(n * 5 * c, 1, h, w)
    mean = F.avg_pool2d(stack, win, stride=1).reshape(n, 5, c, h - win + 1, w - win + 1)
    mx, my, mxx, myy, mxy = mean.unbind(dim=1)
    cov_norm = win * win / (win * win - 1.0)  # sample (N − 1) covariance
    vx = cov_norm * (mxx - mx * mx)
    vy = cov_norm * (myy - my * my)
    vxy = cov_norm * (mxy - mx * my)
    c1 = (variant.k1 * variant.data_range) ** 2
    c2 = (variant.k2 * variant.data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(2).mean(dim=2).mean(dim=1)


# --------------------------------------------------------------------------------------------------- TCM

class FarnebackParams(TypedDict):
    """Keyword arguments of ``cv2.calcOpticalFlowFarneback`` after the images and the output array."""

    pyr_scale: float
    levels: int
    winsize: int
    iterations: int
    poly_n: int
    poly_sigma: float
    flags: int


#: OpenCV Farneback parameters for TCM's ground-truth flow (OpenCV's documented example values).
FARNEBACK_PARAMS = FarnebackParams(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                   flags=0)
TCM_EPS = 1e-6


def _video_array(video: np.ndarray | Tensor, what: str) -> np.ndarray:
    """T×H×W×3 float64 numpy array in [0, 1] from a numpy T×H×W×3 array or a torch T×3×H×W tensor."""
    if isinstance(video, Tensor):
        if video.dim() != 4 or video.shape[1] != 3:
            raise InputError(f"{what} tensor must be T×3×H×W, got {tuple(video.shape)}")
        video = video.detach().cpu().permute(0, 2, 3, 1).double().numpy()
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(f"{what} must be a T×H×W×3 array, got shape {video.shape}")
    if video.dtype.kind != "f":
        raise InputError(f"{what} must be float in [0, 1], got dtype {video.dtype}")
    return video.astype(np.float64, copy=False)


def _gray_u8(frame: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def backward_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Farneback flow F (H×W×2, pixels) with ``current(x) ≈ previous(x + F(x))``, computed on grey uint8."""
    import cv2

    # OpenCV allocates the output when it is None; its stubs type the optional output array as required.
    return cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]
        _gray_u8(current), _gray_u8(previous), None, **FARNEBACK_PARAMS
    )


def warp_with_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, border replicated)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
    return cv2.remap(
        image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def tcm_step(e_gen: float, e_ref: float, eps: float = TCM_EPS) -> float:
    """``TCM_t = exp(−|(E_gen,t + ε) / (E_ref,t + ε) − 1|)``.

    Yao et al.'s form is ``exp(−|E_gen/(E_ref+ε) − 1|)``; adding ε to the numerator as well changes nothing
    when E_ref ≫ ε but scores a still ground-truth pair (E_ref = 0, e.g. a repeated frame) that the generated
    video also keeps still as 1 instead of e⁻¹.
    """
    return math.exp(-abs((e_gen + eps) / (e_ref + eps) - 1.0))


def tcm_values(
    generated: np.ndarray | Tensor, reference: np.ndarray | Tensor, eps: float = TCM_EPS
) -> np.ndarray:
    """Per-step TCM values (length T−1) of a generated video against its ground truth.

    For t = 1…T−1: the Farneback flow F_t between ground-truth frames t−1 and t (:func:`backward_flow`) warps
    frame t−1 of each video onto frame t; ``E_·,t`` = mean squared warping error over pixels and channels;
    then :func:`tcm_step`. The video's TCM is the mean of these values (range (0, 1], 1 = as temporally
    consistent as the real video). Videos: numpy T×H×W×3 or torch T×3×H×W, float in [0, 1].
    """
    gen, ref = _video_array(generated, "generated video"), _video_array(reference, "reference video")
    if gen.shape != ref.shape:
        raise InputError(f"generated and reference videos differ in shape: {gen.shape} vs {ref.shape}")
    if len(ref) < 2:
        raise InputError("TCM needs videos of at least 2 frames")
    out = np.empty(len(ref) - 1)
    for t in range(1, len(ref)):
        flow = backward_flow(ref[t - 1], ref[t])
        e_ref = float(np.mean((warp_with_flow(ref[t - 1], flow) - ref[t]) ** 2))
        e_gen = float(np.mean((warp_with_flow(gen[t - 1], flow) - gen[t]) ** 2))
        out[t - 1] = tcm_step(e_gen, e_ref, eps)
    return out


def tcm(generated: np.ndarray | Tensor, reference: np.ndarray | Tensor, eps: float = TCM_EPS) -> float:
    """Mean of :func:`tcm_values` over the video (pool videos with a plain mean)."""
    return float(tcm_values(generated, reference, eps).mean())
