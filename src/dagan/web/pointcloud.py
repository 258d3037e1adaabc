"""The source face in 3-D: its disparity back-projected into a coloured point cloud, written as PLY (for
MeshLab, Open3D, Blender) and as binary glTF (``.glb``, what browsers' 3-D viewers load).

Depth is known only up to scale (self-supervised), so the geometry is centred and scaled to a unit size for
viewing; the camera is the default pin-hole one of :mod:`dagan.models.pose` (focal = 1.2 × width).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from dagan.atomic_files import atomic_output
from dagan.infer.depth_export import point_cloud

__all__ = ["grid_triangles", "source_geometry", "write_glb"]

# glTF 2.0 constants (component types, buffer targets, primitive modes)
_FLOAT, _UNSIGNED_BYTE, _UNSIGNED_INT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_POINTS, _TRIANGLES = 0, 4


def source_geometry(
    disparity: np.ndarray, image: np.ndarray, min_depth: float, max_depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (H·W×3 float32, OpenCV axes: x right, y down, z forward) and their colours
    (H·W×3 uint8) from an H×W disparity σ ∈ (0, 1) and the H×W×3 picture it belongs to. Depth is
    1 / (1/max_depth + (1/min_depth − 1/max_depth)·σ), the depth net's own conversion."""
    from dagan.models.pose import DEFAULT_FOCAL_OVER_WIDTH

    disp = np.asarray(disparity, dtype=np.float64)
    h, w = disp.shape
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    depth = 1.0 / (min_disp + (max_disp - min_disp) * disp)
    f = DEFAULT_FOCAL_OVER_WIDTH * w
    K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
    return point_cloud(depth, K, image)


def grid_triangles(height: int, width: int) -> np.ndarray:
    """Two triangles per cell of an H×W pixel grid (row-major vertex order): M×3 uint32 indices, wound
    counter-clockwise as seen from a camera looking at the picture."""
    idx = np.arange(height * width, dtype=np.uint32).reshape(height, width)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()  # top-left, top-right
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()  # bottom-left, bottom-right
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.uint32)


def _viewer_frame(points: np.ndarray) -> np.ndarray:
    """OpenCV camera axes → glTF axes (y up, the viewer looks along −z), centred on the median point and
    scaled so that the central 98 % of the cloud spans about one unit."""
    p = np.asarray(points, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
    centre = np.median(p, axis=0)
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    scale = float(np.max(hi - lo))
    return ((p - centre) / (scale if scale > 0 else 1.0)).astype(np.float32)


def write_glb(
    path: str | os.PathLike[str],
    points: np.ndarray,
    colors: np.ndarray,
    triangles: np.ndarray | None = None,
) -> Path:
    """Binary glTF 2.0 of coloured vertices (N×3 camera-frame points in OpenCV axes, N×3 uint8 colours):
    a point cloud, or a surface when ``triangles`` (M×3 vertex indices) is given. The geometry is moved
    into glTF's axes, centred and scaled for viewing (see :func:`_viewer_frame`); the material is unlit so
    the colours show as they are."""
    pos = _viewer_frame(np.asarray(points).reshape(-1, 3))
    n = pos.shape[0]
    cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if cols.shape[0] != n:
        raise ValueError(f"{n} points but {cols.shape[0]} colours")
    # vertex attributes must be 4-byte aligned: RGBA bytes rather than RGB
    rgba = np.concatenate([cols, np.full((n, 1), 255, np.uint8)], axis=1)
    blobs = [pos.tobytes(), rgba.tobytes()]
    views = [
        {"buffer": 0, "byteLength": len(blobs[0]), "target": _ARRAY_BUFFER},
        {"buffer": 0, "byteLength": len(blobs[1]), "target": _ARRAY_BUFFER},
    ]
    accessors = [
        {"bufferView": 0, "componentType": _FLOAT, "count": n, "type": "VEC3",
         "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()},
        {"bufferView": 1, "componentType": _UNSIGNED_BYTE, "normalized": True, "count": n, "type": "VEC4"},
    ]
    primitive: dict[str, object] = {"attributes": {"POSITION": 0, "COLOR_0": 1}, "material": 0, "mode": _POINTS}
    if triangles is not None:
        tri = np.asarray(triangles, dtype=np.uint32).reshape(-1, 3)
        if tri.size and int(tri.max()) >= n:
            raise ValueError(f"triangle index {int(tri.max())} is out of range for {n} points")
        blobs.append(tri.tobytes())
        views.append({"buffer": 0, "byteLength": len(blobs[2]), "target": _ELEMENT_ARRAY_BUFFER})
        accessors.append({"bufferView": 2, "componentType": _UNSIGNED_INT, "count": int(tri.size), "type": "SCALAR"})
        primitive.update(indices=2, mode=_TRIANGLES)
    offset = 0
    for view, blob in zip(views, blobs):  # every blob is a multiple of 4 bytes long
        view["byteOffset"] = offset
        offset += len(blob)
    gltf = {
        "asset": {"version": "2.0", "generator": "dagan"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "source"}],
        "meshes": [{"primitives": [primitive]}],
        "materials": [{
            "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0, "roughnessFactor": 1},
            "doubleSided": True,
            "extensions": {"KHR_materials_unlit": {}},
        }],
        "extensionsUsed": ["KHR_materials_unlit"],
        "buffers": [{"byteLength": offset}],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned: JSON padded with spaces
    binary = b"".join(blobs)
    total = 12 + 8 + len(text) + 8 + len(binary)
    data = b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(binary), b"BIN\x00"), binary,
    ])

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
