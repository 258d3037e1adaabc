"""Export of depth-net outputs: 16-bit disparity PNGs, colour-mapped previews and coloured point clouds.

* 16-bit PNG: the sigmoid disparity σ ∈ (0, 1) is stored as round(σ·65535) — an absolute encoding (no
  per-frame normalisation), so values are comparable across frames and σ = png / 65535 recovers the net's
  output to within 1/131070.
* Colour maps are tabulated here (viridis, magma; 11 control points each, linear interpolation) because
  matplotlib is not a dependency.
* Point clouds are binary little-endian PLY with per-vertex uchar RGB, readable by MeshLab, Open3D, Blender.

All writers go through a temporary file in the target folder and rename it, so no half-written file is
left under the final name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dagan.atomic_files import atomic_output, write_png_atomic

__all__ = [
    "COLORMAPS",
    "DepthPredictor",
    "apply_colormap",
    "colorize",
    "depth_to_points",
    "disparity_to_uint16",
    "point_cloud",
    "uint16_to_disparity",
    "write_png",
    "write_png16",
    "write_ply",
]

# Colour-map control points at t = 0, 0.1, …, 1 (RGB in [0, 1]) of matplotlib's perceptually uniform maps.
COLORMAPS: dict[str, np.ndarray] = {
    "viridis": np.array(
        [
            [0.267004, 0.004874, 0.329415],
            [0.282623, 0.140926, 0.457517],
            [0.253935, 0.265254, 0.529983],
            [0.206756, 0.371758, 0.553117],
            [0.163625, 0.471133, 0.558148],
            [0.127568, 0.566949, 0.550556],
            [0.134692, 0.658636, 0.517649],
            [0.266941, 0.748751, 0.440573],
            [0.477504, 0.821444, 0.318195],
            [0.741388, 0.873449, 0.149561],
            [0.993248, 0.906157, 0.143936],
        ]
    ),
    "magma": np.array(
        [
            [0.001462, 0.000466, 0.013866],
            [0.078815, 0.054184, 0.211667],
            [0.232077, 0.059889, 0.437695],
            [0.390384, 0.100379, 0.501864],
            [0.550287, 0.161158, 0.505719],
            [0.716387, 0.214982, 0.475290],
            [0.868793, 0.287728, 0.409303],
            [0.967671, 0.439703, 0.359810],
            [0.994738, 0.624350, 0.427397],
            [0.995680, 0.812706, 0.572645],
            [0.987053, 0.991438, 0.749504],
        ]
    ),
}


def apply_colormap(values: np.ndarray, name: str = "magma") -> np.ndarray:
    """Map values in [0, 1] (any shape S) to RGB floats in [0, 1] (shape S×3) by piecewise-linear lookup.

    Values outside [0, 1] are clipped; NaNs map to 0.
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    table = COLORMAPS[name]
    t = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0).clip(0.0, 1.0)
    pos = t * (len(table) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(table) - 2)
    frac = (pos - lo)[..., None]
    return ((1.0 - frac) * table[lo] + frac * table[lo + 1]).astype(np.float32)


def colorize(
    disparity: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    name: str = "magma",
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """H×W disparity → H×W×3 uint8 preview; near (high disparity) is bright.

    The display range is [vmin, vmax], by default the ``percentiles`` of the map (robust to outliers).
    Pass a fixed range (e.g. from the first frame) to keep a video's colours from flickering.
    """
    d = np.asarray(disparity, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"colorize expects an H×W map, got shape {d.shape}")
    lo = float(np.percentile(d, percentiles[0])) if vmin is None else float(vmin)
    hi = float(np.percentile(d, percentiles[1])) if vmax is None else float(vmax)
    t = (d - lo) / max(hi - lo, 1e-8)
    return (apply_colormap(t, name) * 255.0 + 0.5).astype(np.uint8)


def disparity_to_uint16(disparity: np.ndarray) -> np.ndarray:
    """σ ∈ [0, 1] → round(σ·65535) as uint16 (values outside [0, 1] are clipped)."""
    d = np.nan_to_num(np.asarray(disparity, dtype=np.float64), nan=0.0)
    return np.rint(d.clip(0.0, 1.0) * 65535.0).astype(np.uint16)


def uint16_to_disparity(png: np.ndarray) -> np.ndarray:
    """Inverse of :func:`disparity_to_uint16`: σ = png / 65535 (float32)."""
    return (np.asarray(png, dtype=np.float64) / 65535.0).astype(np.float32)


def write_png16(path: str | Path, disparity: np.ndarray) -> Path:
    """Write an H×W disparity in [0, 1] as a 16-bit grayscale PNG (see :func:`disparity_to_uint16`)."""
    data = disparity_to_uint16(disparity)
    if data.ndim != 2:
        raise ValueError(f"a 16-bit disparity PNG needs an H×W map, got shape {data.shape}")
    return write_png_atomic(path, data)  # uint16 → Pillow mode "I;16"


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an H×W×3 uint8 image as an 8-bit PNG."""
    return write_png_atomic(path, np.asarray(rgb, dtype=np.uint8))


def depth_to_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Back-project every pixel: P = D(u, v)·K⁻¹·(u, v, 1)ᵀ → H×W×3 camera-frame points.

    Pixel centres are at integer (u, v) = (column, row), as in :mod:`dagan.geometry.camera`; the camera
    looks along +z with y pointing down (OpenCV convention).
    """
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)  # H×W×3
    rays = pix @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T
    return (rays * depth[..., None]).astype(np.float32)


def point_cloud(
    depth: np.ndarray, K: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Coloured points (N×3 float32, N×3 uint8) from an H×W depth map, intrinsics K and an H×W×3 image.

    ``mask`` (H×W bool) keeps a subset of pixels (e.g. the face).
    """
    pts = depth_to_points(depth, K).reshape(-1, 3)
    cols = np.asarray(image, dtype=np.uint8).reshape(-1, 3)
    if pts.shape[0] != cols.shape[0]:
        raise ValueError(f"image {np.shape(image)} does not match depth {np.shape(depth)}")
    if mask is not None:
        keep = np.asarray(mask, dtype=bool).reshape(-1)
        pts, cols = pts[keep], cols[keep]
    return pts, cols


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY: float x, y, z (and uchar red, green, blue when ``colors`` is given)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    props = ["property float x", "property float y", "property float z"]
    if colors is not None:
        cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if cols.shape[0] != pts.shape[0]:
            raise ValueError(f"{pts.shape[0]} points but {cols.shape[0]} colours")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        props += ["property uchar red", "property uchar green", "property uchar blue"]
    record = np.empty(pts.shape[0], dtype=fields)
    record["x"], record["y"], record["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        record["red"], record["green"], record["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    header = "\n".join(
        ["ply", "format binary_little_endian 1.0", f"element vertex {pts.shape[0]}", *props, "end_header"]
    )

    with atomic_output(path) as tmp, tmp.open("wb") as fh:
        fh.write(header.encode("ascii") + b"\n")
        fh.write(record.tobytes())
    return Path(path)


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read back a PLY written by :func:`write_ply` (points N×3, colours N×3 or None) — for tests/tools."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    count = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    has_color = any(line.endswith(" red") for line in header)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if has_color:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    record = np.frombuffer(data[end:], dtype=fields, count=count)
    pts = np.stack([record["x"], record["y"], record["z"]], axis=1)
    cols = np.stack([record["red"], record["green"], record["blue"]], axis=1) if has_color else None
    return pts, cols


# --------------------------------------------------------------------------- prediction


class DepthPredictor:
    """Run a loaded depth net (and pose net) on uint8 RGB frames of any size.

    Frames are resized to ``size``×``size`` (a multiple of 32, ≥ 64) for the networks; outputs are resized
    back to the frame size. Disparity is the net's sigmoid output σ ∈ (0, 1); depth (for point clouds) is
    1 / (1/max_depth + (1/min_depth − 1/max_depth)·σ), known only up to scale.
    """

    def __init__(self, models: Any, size: int | None = None, device: str | Any = "cpu") -> None:
        import torch

        from dagan.errors import InputError

        self.models = models
        self.size = int(size if size is not None else models.config.resolution)
        if self.size < 64 or self.size % 32:
            raise InputError(f"--size must be a multiple of 32 and at least 64, got {self.size}")
        self.device = torch.device(device)
        models.depth_net.to(self.device)
        if models.pose_net is not None:
            models.pose_net.to(self.device)
        dp = models.config.model_params.depth_params
        self.min_depth, self.max_depth = dp.min_depth, dp.max_depth

    @property
    def has_uncertainty(self) -> bool:
        return self.models.pose_net is not None and self.models.pose_net.predicts_uncertainty

    def _to_tensor(self, frames: np.ndarray) -> Any:
        import torch
        import torch.nn.functional as F

        arr = np.ascontiguousarray(frames)
        if not arr.flags.writeable:  # e.g. crops that view a Pillow image; torch wants writable memory
            arr = arr.copy()
        x = torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _back(self, maps: Any, height: int, width: int) -> np.ndarray:
        import torch.nn.functional as F

        if maps.shape[-2:] != (height, width):
            maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
        return maps[:, 0].float().cpu().numpy()

    def disparity(self, frames: np.ndarray) -> np.ndarray:
        """N×H×W×3 uint8 → N×H×W disparity in (0, 1)."""
        import torch

        with torch.no_grad():
            disp = self.models.depth_net(self._to_tensor(frames))
        return self._back(disp, frames.shape[1], frames.shape[2])

    def pair_outputs(self, frames: np.ndarray, next_frames: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Uncertainty N×H×W (None without an uncertainty head) and intrinsics N×3×3 in pixels of the
        frames, from the pose net on (frame, next frame). Without a pose net K is the default camera."""
        import torch

        from dagan.models.pose import DEFAULT_FOCAL_OVER_WIDTH

        n, h, w = frames.shape[:3]
        pose_net = self.models.pose_net
        if pose_net is None:
            f = DEFAULT_FOCAL_OVER_WIDTH * w
            K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f * 1.0, (h - 1) / 2], [0.0, 0.0, 1.0]])
            return None, np.repeat(K[None], n, axis=0)
        with torch.no_grad():
            out = pose_net(self._to_tensor(frames), self._to_tensor(next_frames))
        K = out["intrinsics"].double().cpu().numpy().copy()
        K[:, 0, :] *= w / self.size  # rescale the pixel units from the net's input to the frame size
        K[:, 1, :] *= h / self.size
        unc = out["uncertainty"]
        return (self._back(unc, h, w) if unc is not None else None), K

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """σ → depth (Monodepth2 conversion with the checkpoint's min/max depth)."""
        min_disp, max_disp = 1.0 / self.max_depth, 1.0 / self.min_depth
        return 1.0 / (min_disp + (max_disp - min_disp) * np.asarray(disparity, dtype=np.float64))
