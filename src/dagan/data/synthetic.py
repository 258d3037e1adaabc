"""Synthetic talking heads with exact ground truth (depth, head mask, head pose, camera intrinsics).

A textured 3-D head moves rigidly in front of a static textured background plane and is rendered by our
own vectorised numpy z-buffer rasteriser (no OpenGL, no GPU). Everything is in metres, in OpenCV camera
coordinates (x right, y down, z forward), and deterministic per seed.

Scene:

* **Head**: a triangle mesh of an ellipsoid (semi-axes 8.2 × 10.8 × 9.5 cm) with a tapered jaw, a nose
  (bridge + tip), brow ridge, eye sockets and chin, in head coordinates with the face looking along −z.
  Its texture is the face of ``skimage.data.astronaut()`` projected along z onto the front, blended into
  hair (a patch of the same photo, mirrored-tiled around the head) elsewhere, times a shading term baked
  in head coordinates (so brightness is constant under head motion, as photometric losses assume).
* **Non-rigid motion** (scaled by ``non_rigid``; 0 disables it): a jaw drop that moves the vertices below
  the mouth down and opens a dark mouth cavity in the stretched lip band, and eyelid blinks.
* **Rigid motion**: smooth random yaw/pitch/roll (±26°/±14°/±9°) and translation (±3/±2/±4 cm) made of
  a few low-frequency sinusoids; ``poses[t]`` is the 4×4 camera-from-head transform, so a head point X_h
  is at ``R_t X_h + t_t`` in the camera. Between frames t and t+1 every rigid head point moves by
  ``poses[t+1] @ inv(poses[t])``.
* **Background**: a plane about 1 m away, tilted a few degrees, textured with another scikit-image photo.
* **Camera**: pinhole, ``fx = fy = 1.15·S``, principal point at the image centre ``((S−1)/2, (S−1)/2)``
  with pixel *centres* at integer coordinates (OpenCV convention): pixel (u, v) sees the ray
  ``K⁻¹ [u, v, 1]ᵀ``. ``depth`` is the camera z of the visible surface (head or background) at each
  pixel centre, exact for the rendered mesh (perspective-correct interpolation).

Rendering speed at 256² is measured by ``benchmarks/synth_speed.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from dagan.atomic_files import atomic_output
from dagan.errors import MissingExtraError

FPS = 25.0
FOCAL_FACTOR = 1.15  # fx = fy = FOCAL_FACTOR · image size

# Head geometry (metres, head coordinates: x right, y down, z away from the camera; face at z < 0).
HEAD_AXES = (0.082, 0.108, 0.095)
EYE_X, EYE_Y, EYE_HALF_W, EYE_HALF_H = 0.035, 0.008, 0.013, 0.0065
MOUTH_Y, MOUTH_HALF_W = 0.067, 0.030
JAW_DROP = 0.013  # chin displacement at full mouth opening

# Where the head's canonical (x, y) lands in astronaut() pixels: u = U0 + x·PX_PER_M, v = V0 + y·PX_PER_M.
# Measured on the photo: eyes at (203, 101) and (256, 101), nose tip (232, 125), mouth (232, 146).
PHOTO_U0, PHOTO_V0, PHOTO_PX_PER_M = 229.5, 95.0, 762.0


@dataclass
class SyntheticClip:
    """A rendered clip with ground truth. T frames of S×S pixels."""

    frames: np.ndarray  # T×S×S×3 uint8 RGB
    depth: np.ndarray  # T×S×S float32, camera z in metres (head or background)
    mask: np.ndarray  # T×S×S bool, pixels showing the head
    poses: np.ndarray  # T×4×4 float64, camera-from-head
    intrinsics: np.ndarray  # 3×3 float64, pixels
    fps: float
    mouth_open: np.ndarray  # T float32 in [0, 1] (after non_rigid scaling)
    blink: np.ndarray  # T float32 in [0, 1] (after non_rigid scaling)


# --------------------------------------------------------------------------- small math


def intrinsics_matrix(size: int, focal_factor: float = FOCAL_FACTOR) -> np.ndarray:
    """K = [[f, 0, c], [0, f, c], [0, 0, 1]] with f = focal_factor·size and c = (size − 1)/2."""
    f, c = focal_factor * size, (size - 1) / 2.0
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = R_z(roll) · R_x(pitch) · R_y(yaw) (angles in radians, camera axes x right, y down, z forward)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_z @ r_x @ r_y


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """3t² − 2t³ with t = clip((x − e0)/(e1 − e0), 0, 1)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _mirror(t: np.ndarray, length: float) -> np.ndarray:
    """Mirrored repeat into [0, length]: a seamless tiling coordinate."""
    t = np.mod(t, 2.0 * length)
    return length - np.abs(t - length)


def bilinear_sample(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample an H×W×C float image at pixel coordinates (u = column, v = row), clamped to the border."""
    h, w = image.shape[:2]
    u = np.clip(u, 0.0, w - 1.0)
    v = np.clip(v, 0.0, h - 1.0)
    u0 = np.minimum(np.floor(u).astype(np.int64), w - 2)
    v0 = np.minimum(np.floor(v).astype(np.int64), h - 2)
    du, dv = (u - u0)[:, None], (v - v0)[:, None]
    top = image[v0, u0] * (1 - du) + image[v0, u0 + 1] * du
    bottom = image[v0 + 1, u0] * (1 - du) + image[v0 + 1, u0 + 1] * du
    return top * (1 - dv) + bottom * dv


# --------------------------------------------------------------------------- rasteriser


def rasterize(screen: np.ndarray, z: np.ndarray, faces: np.ndarray, height: int, width: int,
              eps: float = 1e-7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of triangles sampled at integer pixel centres.

    ``screen`` N×2 projected vertices (u, v) in pixels, ``z`` N camera depths (> 0), ``faces`` M×3.
    For pixel p inside triangle (a, b, c) with screen-space barycentrics (w_a, w_b, w_c) the depth is
    ``1/z_p = Σ w_i / z_i`` (1/z is affine in screen space for a planar triangle) and the nearest triangle
    wins. Returns per pixel (flattened, row-major): triangle id (−1 = empty), depth (inf = empty), and
    perspective-correct barycentrics ``λ_i = z_p · w_i / z_i`` (which interpolate any vertex attribute
    linearly on the 3-D triangle).
    """
    npix = height * width
    tri_a, tri_b, tri_c = screen[faces[:, 0]], screen[faces[:, 1]], screen[faces[:, 2]]
    xs = np.stack([tri_a[:, 0], tri_b[:, 0], tri_c[:, 0]], 1)
    ys = np.stack([tri_a[:, 1], tri_b[:, 1], tri_c[:, 1]], 1)
    x0 = np.maximum(np.ceil(xs.min(1)), 0).astype(np.int64)
    x1 = np.minimum(np.floor(xs.max(1)), width - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(ys.min(1)), 0).astype(np.int64)
    y1 = np.minimum(np.floor(ys.max(1)), height - 1).astype(np.int64)
    area2 = (xs[:, 1] - xs[:, 0]) * (ys[:, 2] - ys[:, 0]) - (xs[:, 2] - xs[:, 0]) * (ys[:, 1] - ys[:, 0])
    extent = np.maximum(x1 - x0, y1 - y0) + 1
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area2) > 1e-12)
    # Bucket triangles by bounding-box size so each bucket is one dense (triangles × K²) array.
    kbucket = np.where(keep, 2 ** np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64), 0)
    pix_l, z_l, tri_l, w_l = [], [], [], []
    for k in np.unique(kbucket[kbucket > 0]):
        ids = np.nonzero(kbucket == k)[0]
        gy, gx = np.divmod(np.arange(k * k), k)
        px = x0[ids, None] + gx[None, :]
        py = y0[ids, None] + gy[None, :]
        valid = (px <= x1[ids, None]) & (py <= y1[ids, None])
        tx, ty, ar = xs[ids], ys[ids], area2[ids, None]
        w0 = ((tx[:, 1:2] - px) * (ty[:, 2:3] - py) - (tx[:, 2:3] - px) * (ty[:, 1:2] - py)) / ar
        w1 = ((tx[:, 2:3] - px) * (ty[:, 0:1] - py) - (tx[:, 0:1] - px) * (ty[:, 2:3] - py)) / ar
        w2 = 1.0 - w0 - w1
        inside = valid & (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
        r, c = np.nonzero(inside)
        if r.size == 0:
            continue
        t = ids[r]
        w = np.stack([w0[r, c], w1[r, c], w2[r, c]], 1)
        inv_z = (w / z[faces[t]]).sum(1)
        pix_l.append(py[r, c] * width + px[r, c])
        z_l.append(1.0 / inv_z)
        tri_l.append(t)
        w_l.append(w)
    tri_id = np.full(npix, -1, dtype=np.int64)
    zbuf = np.full(npix, np.inf)
    bary = np.zeros((npix, 3))
    if not pix_l:
        return tri_id, zbuf, bary
    pix, zf, tri, w = (np.concatenate(a) for a in (pix_l, z_l, tri_l, w_l))
    np.minimum.at(zbuf, pix, zf)
    win = zf <= zbuf[pix]
    pix, zf, tri, w = pix[win], zf[win], tri[win], w[win]
    tri_id[pix] = tri
    bary[pix] = w * zf[:, None] / z[faces[tri]]
    return tri_id, zbuf, bary


# --------------------------------------------------------------------------- head model


@dataclass
class HeadMesh:
    vertices: np.ndarray  # N×3 rest shape, head coordinates (metres)
    faces: np.ndarray  # M×3, outward (counter-clockwise seen from outside)
    shade: np.ndarray  # N baked shading factor
    jaw_weight: np.ndarray  # N in [0, 1]: how much a vertex follows the jaw drop


@dataclass(frozen=True)
class HeadShape:
    """Shape parameters of :func:`build_head_mesh`; the defaults give the original head exactly.

    ``width``/``height``/``depth`` scale the ellipsoid's semi-axes ``HEAD_AXES``; ``jaw_taper`` is how much
    narrower the head gets at the chin (x · (1 − taper · smoothstep(0, a_y, y))); ``nose_size`` scales the
    nose's height off the face and ``nose_length`` its vertical extent; ``brow`` and ``chin`` are the heights
    (metres) of the brow ridges and the chin bump; ``cheek`` the height of two cheek bumps (0 = none).
    Facial features stay at the same head (x, y), so a face texture calibrated on them fits every shape.
    """

    width: float = 1.0
    height: float = 1.0
    depth: float = 1.0
    jaw_taper: float = 0.22
    nose_size: float = 1.0
    nose_length: float = 1.0
    brow: float = 0.004
    chin: float = 0.004
    cheek: float = 0.0


def build_head_mesh(n_lat: int = 72, n_lon: int = 96, shape: HeadShape | None = None) -> HeadMesh:
    """Ellipsoid head with jaw taper, nose, brows, eye sockets, chin and cheeks; face towards −z."""
    shape = shape if shape is not None else HeadShape()
    theta = np.linspace(0.0, np.pi, n_lat)  # 0 = top of the head
    phi = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)  # 0 = the face
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    ax, ay, az = HEAD_AXES[0] * shape.width, HEAD_AXES[1] * shape.height, HEAD_AXES[2] * shape.depth
    x = ax * np.sin(th) * np.sin(ph)
    y = -ay * np.cos(th)
    z = -az * np.sin(th) * np.cos(ph)
    x = x * (1.0 - shape.jaw_taper * smoothstep(0.0, ay, y))  # narrower jaw
    front = smoothstep(0.0, 0.5 * az, -z)  # 1 on the face, 0 at the sides and back
    nose = 0.011 * shape.nose_size
    relief = (
        nose * _gauss(x, y, 0.0, 0.020 * shape.nose_length, 0.0065, 0.016 * shape.nose_length)  # bridge
        + nose * _gauss(x, y, 0.0, 0.037 * shape.nose_length, 0.0095, 0.008)  # nose tip
        + shape.brow * (_gauss(x, y, -EYE_X, -0.010, 0.016, 0.006) + _gauss(x, y, EYE_X, -0.010, 0.016, 0.006))
        - 0.005 * (_gauss(x, y, -EYE_X, EYE_Y, 0.012, 0.008) + _gauss(x, y, EYE_X, EYE_Y, 0.012, 0.008))
        + shape.chin * _gauss(x, y, 0.0, 0.095, 0.018, 0.010)  # chin
        + 0.003 * _gauss(x, y, 0.0, MOUTH_Y, 0.028, 0.007)  # lips
    )
    if shape.cheek:  # skipped at 0 so that the default head stays bit-identical
        relief = relief + shape.cheek * (_gauss(x, y, -0.042, 0.038, 0.018, 0.020)
                                         + _gauss(x, y, 0.042, 0.038, 0.018, 0.020))
    z = z - relief * front
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    idx = np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1], nxt[:-1], idx[1:], nxt[1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    faces = _orient_outward(verts, faces)
    normals = _vertex_normals(verts, faces)
    light = np.array([0.35, -0.45, -0.82])
    light /= np.linalg.norm(light)
    shade = 0.55 + 0.45 * np.clip(normals @ light, 0.0, 1.0)
    jaw = (smoothstep(MOUTH_Y - 0.002, MOUTH_Y + 0.012, y) * np.exp(-((x / 0.055) ** 2)) * front).reshape(-1)
    return HeadMesh(verts, faces, shade, jaw)


def _orient_outward(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip faces whose normal points towards the head centre (the mesh is star-shaped about it)."""
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    inward = (n * verts[faces].mean(1)).sum(1) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return faces


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    acc = np.zeros_like(verts)
    for i in range(3):
        np.add.at(acc, faces[:, i], n)
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- textures


def _skimage_data() -> object:
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - exercised only without scikit-image
        raise MissingExtraError("synthetic talking heads", "synth", "scikit-image") from None
    return data


def prefilter_texture(texture: np.ndarray, minification: float) -> np.ndarray:
    """Gaussian pre-blur, σ = 0.8·max(1, texels per screen pixel) (a one-level mip-map): frames sampled at
    pixel centres are then nearly band-limited, so resampling them (as a warping loss does) is accurate."""
    sigma = 0.8 * max(1.0, minification)
    return ndimage.gaussian_filter(texture, (sigma, sigma, 0), mode="nearest")


def _load_textures(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(face photo, background photo, background texels per metre), float32 RGB in [0, 1], pre-filtered
    for the typical on-screen scale at ``size`` (head ≈ 0.4 m away, background ≈ 1.1 m)."""
    data = _skimage_data()
    face = data.astronaut().astype(np.float32) / 255.0  # type: ignore[attr-defined]
    choices: list[Callable[[], np.ndarray]] = [
        data.coffee, data.chelsea, data.rocket]  # type: ignore[attr-defined]
    background = choices[int(rng.integers(len(choices)))]().astype(np.float32) / 255.0
    bg_px_per_m = float(rng.uniform(400.0, 600.0))
    focal = FOCAL_FACTOR * size
    face = prefilter_texture(face, PHOTO_PX_PER_M / (focal / 0.4))
    background = prefilter_texture(background, bg_px_per_m / (focal / 1.1))
    return face, background, bg_px_per_m


def _head_colour(canon: np.ndarray, shade: np.ndarray, face: np.ndarray, mouth: float,
                 blink: float) -> np.ndarray:
    """RGB in [0, 1] of head surface points given their rest-shape (canonical) coordinates."""
    x, y, z = canon[:, 0], canon[:, 1], canon[:, 2]
    photo = bilinear_sample(face, PHOTO_U0 + x * PHOTO_PX_PER_M, PHOTO_V0 + y * PHOTO_PX_PER_M)
    # hair: a patch of the photo's hair, mirrored-tiled over (arc length around the head, height)
    arc = np.arctan2(x, -z) * 0.09
    hair = bilinear_sample(face, 200.0 + _mirror(arc * 700.0, 65.0), 38.0 + _mirror(y * 700.0, 24.0))
    r = (x / 0.066) ** 2 + ((y - 0.012) / 0.098) ** 2
    w_face = (smoothstep(1.25, 0.85, r) * smoothstep(-0.02, -0.06, z))[:, None]
    colour = w_face * photo + (1.0 - w_face) * hair
    if blink > 0.0:  # upper eyelid (skin from above the eye) slides down over the eye
        for ex in (-EYE_X, EYE_X):
            in_eye = ((x - ex) / (EYE_HALF_W * 1.1)) ** 2 + ((y - EYE_Y) / (EYE_HALF_H * 1.3)) ** 2 < 1.0
            lid_edge = EYE_Y - EYE_HALF_H * 1.3 + 2.6 * EYE_HALF_H * blink
            cover = in_eye & (y < lid_edge)
            if cover.any():
                lid_row = PHOTO_V0 + (EYE_Y - 1.9 * EYE_HALF_H) * PHOTO_PX_PER_M  # skin above the eye
                lid = bilinear_sample(face, PHOTO_U0 + x[cover] * PHOTO_PX_PER_M,
                                      np.full(int(cover.sum()), lid_row))
                colour[cover] = 0.9 * lid  # lids are a little darker than the skin above them
    if mouth > 0.1:  # dark cavity in the lip band that the jaw drop stretches open
        half_h = 0.0055 * (mouth - 0.1) / 0.9
        d = (x / MOUTH_HALF_W) ** 2 + ((y - (MOUTH_Y + 0.005)) / max(half_h, 1e-6)) ** 2
        cavity = np.clip((1.0 - d) * 4.0, 0.0, 1.0)[:, None]
        colour = colour * (1.0 - cavity) + np.array([0.16, 0.04, 0.05]) * cavity
    return colour * shade[:, None]


# --------------------------------------------------------------------------- motion


def _smooth_signal(rng: np.random.Generator, t: np.ndarray, fmin: float, fmax: float,
                   n: int = 3) -> np.ndarray:
    """Sum of ``n`` sinusoids with random frequencies in [fmin, fmax] Hz and phases, scaled to [−1, 1]."""
    freqs = rng.uniform(fmin, fmax, n)
    phases = rng.uniform(0.0, 2.0 * np.pi, n)
    weights = rng.uniform(0.5, 1.0, n)
    s = (weights[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return s / weights.sum()


def _trajectory(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """T×4×4 camera-from-head poses: smooth random rotation and translation around a frontal head."""
    t = np.arange(frames) / fps
    yaw = 0.45 * _smooth_signal(rng, t, 0.08, 0.5)
    pitch = 0.25 * _smooth_signal(rng, t, 0.08, 0.5)
    roll = 0.15 * _smooth_signal(rng, t, 0.08, 0.5)
    distance = rng.uniform(0.37, 0.43)
    tx = 0.03 * _smooth_signal(rng, t, 0.05, 0.4)
    ty = 0.02 * _smooth_signal(rng, t, 0.05, 0.4) + 0.005
    tz = 0.04 * _smooth_signal(rng, t, 0.05, 0.3) + distance
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = rotation_matrix(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = (tx[i], ty[i], tz[i])
    return poses


def _expressions(rng: np.random.Generator, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mouth opening (talking-like, in [0, 1]) and blinks (0.25 s closures every 2–4 s)."""
    t = np.arange(frames) / fps
    talk = np.clip(0.3 + 0.8 * _smooth_signal(rng, t, 1.5, 4.0, n=4), 0.0, 1.0)
    pauses = smoothstep(-0.3, 0.3, _smooth_signal(rng, t, 0.1, 0.3))
    mouth = talk * pauses
    blink = np.zeros(frames)
    tb = rng.uniform(0.3, 2.0)
    while tb < t[-1] + 1.0:
        blink = np.maximum(blink, np.exp(-(((t - tb) / 0.07) ** 2)))
        tb += rng.uniform(2.0, 4.0)
    return mouth, blink


# --------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, size: int, k: np.ndarray, texture: np.ndarray,
                px_per_m: float) -> tuple[np.ndarray, np.ndarray]:
    tilt_x, tilt_y = rng.uniform(-0.25, 0.25, 2)
    dist = rng.uniform(0.95, 1.3)
    return background_plane(size, k, texture, px_per_m, tilt_x, tilt_y, dist)


def background_plane(size: int, k: np.ndarray, texture: np.ndarray, px_per_m: float, tilt_x: float,
                     tilt_y: float, dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour (S×S×3) and depth (S×S) of a textured plane through (0, 0, ``dist``) whose normal is −z turned
    by yaw ``tilt_y`` and pitch ``tilt_x`` (radians), its texture mirrored-tiled at ``px_per_m`` texels per
    metre: ray r = K⁻¹[u, v, 1]ᵀ meets n·X = d at X = r·d/(n·r), so the camera z (r_z = 1) is d/(n·r)."""
    normal = rotation_matrix(tilt_y, tilt_x, 0.0) @ np.array([0.0, 0.0, -1.0])
    point = np.array([0.0, 0.0, dist])
    d = float(normal @ point)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    depth = d / (rays @ normal)
    pts = rays * depth[:, None]
    e1 = np.cross(normal, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e1, normal)  # image rows go down, like camera y
    h, w = texture.shape[:2]
    uu = _mirror((pts - point) @ e1 * px_per_m + w / 2, w - 1.0)
    vv = _mirror((pts - point) @ e2 * px_per_m + h / 2, h - 1.0)
    colour = bilinear_sample(texture, uu, vv)
    return colour.reshape(size, size, 3), depth.reshape(size, size)


def render_video(seed: int, frames: int = 64, size: int = 256, non_rigid: float = 1.0,
                 fps: float = FPS, mesh: HeadMesh | None = None) -> SyntheticClip:
    """Render a synthetic talking-head clip with ground truth; identical output for identical arguments.

    ``non_rigid`` scales the mouth opening and blinks (0 = a purely rigid head, 1 = full expressions).
    """
    if frames < 1 or size < 8:
        raise ValueError(f"need frames ≥ 1 and size ≥ 8, got frames={frames}, size={size}")
    rng = np.random.default_rng(seed)
    face_tex, bg_tex, bg_px_per_m = _load_textures(rng, size)
    k = intrinsics_matrix(size)
    bg_colour, bg_depth = _background(rng, size, k, bg_tex, bg_px_per_m)
    poses = _trajectory(rng, frames, fps)
    mouth, blink = _expressions(rng, frames, fps)
    mouth = np.clip(mouth * non_rigid, 0.0, 1.0)
    blink = np.clip(blink * non_rigid, 0.0, 1.0)
    mesh = mesh if mesh is not None else _default_mesh()

    out_rgb = np.empty((frames, size, size, 3), np.uint8)
    out_depth = np.empty((frames, size, size), np.float32)
    out_mask = np.empty((frames, size, size), bool)
    bg_flat = bg_colour.reshape(-1, 3)
    for i in range(frames):
        rgb, depth, covered = render_frame(mesh, poses[i], k, size, face_tex, bg_flat, bg_depth.reshape(-1),
                                           mouth=float(mouth[i]), blink=float(blink[i]))
        out_rgb[i] = rgb
        out_depth[i] = depth
        out_mask[i] = covered
    return SyntheticClip(out_rgb, out_depth, out_mask, poses, k, fps, mouth.astype(np.float32),
                         blink.astype(np.float32))


_MESH_CACHE: dict[str, HeadMesh] = {}


def _default_mesh() -> HeadMesh:
    if "default" not in _MESH_CACHE:
        _MESH_CACHE["default"] = build_head_mesh()
    return _MESH_CACHE["default"]


def render_frame(mesh: HeadMesh, pose: np.ndarray, k: np.ndarray, size: int, face_tex: np.ndarray,
                 bg_colour: np.ndarray, bg_depth: np.ndarray, mouth: float = 0.0,
                 blink: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame: (S×S×3 uint8, S×S float32 depth, S×S bool head mask). Background arrays are flattened."""
    head = rasterize_head(mesh, pose, k, size, mouth)
    colour = bg_colour.copy()
    colour[head.pixels] = _head_colour(head.canonical, head.shade, face_tex, mouth, blink)
    return composite_frame(head, colour, bg_depth, size)


@dataclass
class HeadFragments:
    """The head's visible surface in one frame, one entry per covered pixel."""

    pixels: np.ndarray  # P flat pixel indices (row-major), ascending
    canonical: np.ndarray  # P×3 rest-shape head point seen there (texture follows the surface)
    shade: np.ndarray  # P baked shading factor
    depth: np.ndarray  # P camera z (metres)


def rasterize_head(mesh: HeadMesh, pose: np.ndarray, k: np.ndarray, size: int,
                   mouth: float = 0.0) -> HeadFragments:
    """Pose the mesh (jaw dropped by ``mouth``), cull back faces and z-buffer it into an S×S image."""
    verts = mesh.vertices
    if mouth > 0.0:
        verts = verts.copy()
        verts[:, 1] += JAW_DROP * mouth * mesh.jaw_weight
        verts[:, 2] += 0.3 * JAW_DROP * mouth * mesh.jaw_weight  # the chin swings back a little
    cam = verts @ pose[:3, :3].T + pose[:3, 3]
    faces = mesh.faces
    tri = cam[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    facing = (normal * tri[:, 0]).sum(1) < 0  # outward normal points at the camera (back-face culling)
    faces = faces[facing & (tri[:, :, 2].min(1) > 1e-3)]
    z = cam[:, 2]
    screen = np.stack([k[0, 0] * cam[:, 0] / z + k[0, 2], k[1, 1] * cam[:, 1] / z + k[1, 2]], 1)
    tri_id, zbuf, bary = rasterize(screen, z, faces, size, size)
    pix = np.nonzero(tri_id >= 0)[0]
    corners = faces[tri_id[pix]]  # P×3 vertex ids
    lam = bary[pix][:, :, None]
    canon = (mesh.vertices[corners] * lam).sum(1)
    shade = (mesh.shade[corners] * lam[..., 0]).sum(1)
    return HeadFragments(pix, canon, shade, zbuf[pix])


def composite_frame(head: HeadFragments, colour: np.ndarray, bg_depth: np.ndarray,
                    size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S×S×3 uint8 RGB of the flat float ``colour``, S×S float32 depth, S×S bool head mask)."""
    depth = bg_depth.copy()
    depth[head.pixels] = head.depth
    covered = np.zeros(size * size, bool)
    covered[head.pixels] = True
    rgb = np.clip(np.rint(colour * 255.0), 0, 255).astype(np.uint8).reshape(size, size, 3)
    return rgb, depth.astype(np.float32).reshape(size, size), covered.reshape(size, size)


# --------------------------------------------------------------------------- dataset writer


def _video_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_synthetic_dataset(out: str | os.PathLike[str], videos: int, frames: int, size: int = 256,
                            seed: int = 0, test_fraction: float = 0.2, non_rigid: float = 1.0,
                            video_format: Literal["mp4", "png"] = "mp4", crf: int = 4) -> list[Path]:
    """Render ``videos`` clips into the standard layout ``OUT/{train,test}/synth<seed>#<k>.mp4`` (or a PNG
    frame folder ``synth<seed>#<k>/`` with ``video_format="png"``) plus ``OUT/<split>/<name>.npz`` holding
    ``depth`` (T×S×S float16, metres), ``mask`` (T×S×S bool), ``pose`` (T×4×4 float32 camera-from-head),
    ``intrinsics`` (3×3 float32, pixels), ``fps``, ``mouth_open`` and ``blink``.

    MP4 uses libx264 with ``crf`` (default 4, visually lossless, plain High profile). The RGB → yuv420p
    conversion itself (4:2:0 chroma) changes pixels by ≈1.5 grey levels on average at 256² (crf 0, 4 and 10
    measured 1.49, 1.52, 1.62), about the size of the resampling error of a GT-pose warp (≈0.8): fine for
    depth training. Choose ``png`` frame folders when bit-exact frames matter (e.g. exact photometric
    checks).
    All clips of one seed show the same synthetic person, so they share the identity ``synth<seed>``.
    The last ``round(videos·test_fraction)`` clips (at least one when the fraction is positive and there are
    two or more clips) form the test split. Returns the written video paths.
    """
    from dagan.data.frame_folder_writer import write_png_frames
    from dagan.data.video import VideoWriter

    if videos < 1 or frames < 2:
        raise ValueError(f"need videos ≥ 1 and frames ≥ 2, got videos={videos}, frames={frames}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    n_test = int(round(videos * test_fraction))
    if test_fraction > 0 and videos >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, videos - 1)
    out = Path(out)
    written = []
    for k in range(videos):
        split = "test" if k >= videos - n_test else "train"
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        name = f"synth{seed}#{k:03d}"
        clip = render_video(_video_seed(seed, k), frames, size, non_rigid=non_rigid)
        if video_format == "mp4":
            path = folder / f"{name}.mp4"
            with VideoWriter(path, clip.fps, crf=crf, preset="medium") as writer:
                writer.write_all(clip.frames)
        elif video_format == "png":
            path = folder / name
            write_png_frames(path, clip.frames)
        else:
            raise ValueError(f"video_format must be 'mp4' or 'png', got {video_format!r}")
        save_ground_truth(folder / f"{name}.npz", clip)
        written.append(path)
    return written


def save_ground_truth(path: str | os.PathLike[str], clip: SyntheticClip,
                      metadata: dict[str, str] | None = None) -> None:
    """Write a clip's ground truth as a compressed ``.npz`` (atomically: temp file + rename). Each
    ``metadata`` string is stored as a 0-d string array (``str(gt[key])`` reads it back)."""
    extra = {key: np.array(value, dtype=str) for key, value in (metadata or {}).items()}
    with atomic_output(path, keep_extension=True) as tmp:  # numpy adds ".npz" to a name without it
        # allow_pickle named: every array is plain (load_ground_truth refuses pickles) and no metadata key can
        # land in that parameter instead of the file.
        np.savez_compressed(tmp, allow_pickle=False, depth=clip.depth.astype(np.float16), mask=clip.mask,
                            pose=clip.poses.astype(np.float32), intrinsics=clip.intrinsics.astype(np.float32),
                            fps=np.float32(clip.fps), mouth_open=clip.mouth_open, blink=clip.blink, **extra)


def load_ground_truth(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ground-truth ``.npz`` written by :func:`save_ground_truth` (no pickles are loaded)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
