"""How a synthetic identity looks: its textures for one frame size and the colour of its head surface.

Colours are sRGB in [0, 1]; the head's colour is a function of the rest-shape (canonical) head point, so
it moves rigidly with the head, times the head's baked shading (:mod:`dagan.data.synthetic`). Layers, back
to front:

* **skin**: the identity's skin tone times a smooth ±4 % variation, everywhere on the head;
* **face photo** (:mod:`dagan.data.face_photos`) on the face, mapped by its calibration affine and faded
  out towards the temples, the chin and the upper forehead (where photos show hair); its colours are moved
  to the skin tone by :func:`transfer_skin_tone`;
* **hair**: a procedural strand texture over (longitude, height) above a hairline that runs from
  ``hairline`` on the forehead down to ear level at the sides and ``hair_length`` at the back;
* **eyelids** (blink: skin from above the eye slides down) and a dark **mouth cavity** with upper teeth
  centred on the photo's lip gap, in the lip band that the jaw drop (mouth opening) stretches open.

Every texture is Gaussian pre-filtered for its typical on-screen scale (:func:`prefilter_texture`), so
frames are close to band-limited and resampling them (warping losses) stays accurate: a GT-pose warp
between consecutive 128² frames is off by ≈ 1 grey level (``tests/test_identities.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dagan.data.face_photos import MOUTH_GAP_Y, face_photo, head_to_photo, load_face_photo
from dagan.data.identities import PHOTO_BACKGROUNDS, Identity
from dagan.data.synthetic import (
    EYE_HALF_H,
    EYE_HALF_W,
    EYE_X,
    EYE_Y,
    FOCAL_FACTOR,
    MOUTH_HALF_W,
    background_plane,
    bilinear_sample,
    intrinsics_matrix,
    prefilter_texture,
    smoothstep,
)

# Hair/skin-variation textures cover longitude [−π, π) (0 = the face) × head y in [−HAIR_Y, HAIR_Y] metres.
HAIR_U, HAIR_V, HAIR_Y = 512, 256, 0.14
HAIR_TEXELS_PER_M = HAIR_V / (2 * HAIR_Y)  # ≈ the longitude direction's too (0.55 m around the head)
BACKGROUND_SIZE = 384  # procedural backgrounds, texels
# Skin patches (head x, y in metres, half sizes) whose median colour is the photo's skin colour: both
# cheeks, clear of eyes, glasses frames, nostrils and lips, and the forehead (placed below skin_top).
_CHEEKS = ((-0.04, 0.04, 0.008, 0.01), (0.04, 0.04, 0.008, 0.01))


@dataclass
class Appearance:
    """An identity's textures, pre-filtered for frames of one size."""

    face: np.ndarray  # H×W×3 float32, the skin-tone-transferred face photo
    face_affine: np.ndarray  # 2×3: head (x, y, 1) → face pixel (u, v)
    skin_top: float  # head y above which the photo is not forehead
    skin: np.ndarray  # 3, skin tone
    skin_variation: np.ndarray  # HAIR_V×HAIR_U multiplicative, ≈ 1 ± 0.04
    hair: np.ndarray  # HAIR_V×HAIR_U×3 strands
    hair_edge: np.ndarray  # HAIR_U, hairline jitter (metres) over longitude
    hairline: float
    hair_length: float
    background: np.ndarray  # S·S×3 colour of the background plane, flattened
    background_depth: np.ndarray  # S·S camera z of the background plane


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1: c/12.92 for c ≤ 0.04045, else ((c + 0.055)/1.055)^2.4."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_to_linear` (clipped to [0, 1])."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.maximum(c, 0.0031308) ** (1 / 2.4) - 0.055)


def _photo_to_head(affine: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Head (x, y) of every photo pixel centre: the inverse of the calibration affine."""
    v, u = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    inv = np.linalg.inv(affine[:, :2])
    d = np.stack([u - affine[0, 2], v - affine[1, 2]], -1)
    xy = d @ inv.T
    return xy[..., 0], xy[..., 1]


def skin_colour(photo: np.ndarray, affine: np.ndarray, skin_top: float) -> np.ndarray:
    """Median linear-RGB colour of the photo over skin patches: both cheeks and the forehead 12 mm below
    ``skin_top`` (head coordinates)."""
    grid = np.linspace(-1.0, 1.0, 7)
    patches = (*_CHEEKS, (0.0, skin_top + 0.012, 0.012, 0.004))
    points = [(cx + hx * gx, cy + hy * gy) for cx, cy, hx, hy in patches for gx in grid for gy in grid]
    xy = np.array(points)
    uv = np.c_[xy, np.ones(len(xy))] @ affine.T
    samples = bilinear_sample(photo, uv[:, 0], uv[:, 1])
    return np.median(srgb_to_linear(samples), axis=0)


def transfer_skin_tone(photo: np.ndarray, affine: np.ndarray, skin_top: float,
                       tone: tuple[float, float, float]) -> np.ndarray:
    """Move the photo's skin colour to ``tone`` keeping its shading and details.

    In linear RGB every channel is multiplied by g = tone / skin, with ``skin`` the photo's median skin
    colour (:func:`skin_colour`): a change of albedo, under which shading ratios and texture contrast are
    preserved. The eyes (ellipses around the calibrated eye centres) keep their colours. Values above 0.9
    roll off smoothly towards 1 instead of clipping (:func:`soft_clip`), so that lightening a darker face
    keeps the detail of its highlights. Returns a float32 sRGB image in [0, 1].
    """
    lin = srgb_to_linear(photo)
    gain = srgb_to_linear(np.array(tone)) / np.maximum(skin_colour(photo, affine, skin_top), 1e-4)
    x, y = _photo_to_head(affine, photo.shape[:2])
    eyes = np.zeros_like(x)
    for ex in (-EYE_X, EYE_X):
        d = ((x - ex) / EYE_HALF_W) ** 2 + ((y - EYE_Y) / (1.2 * EYE_HALF_H)) ** 2
        eyes = np.maximum(eyes, smoothstep(1.0, 0.4, d))
    g = 1.0 + (gain - 1.0) * (1.0 - eyes)[..., None]
    return linear_to_srgb(soft_clip(lin * g)).astype(np.float32)


def soft_clip(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """x below ``knee``; above it knee + (1 − knee)·(1 − exp(−(x − knee)/(1 − knee))): continuous with slope 1
    at the knee, approaching 1 without reaching it."""
    w = 1.0 - knee
    return np.where(x <= knee, x, knee + w * (1.0 - np.exp(-(np.maximum(x, knee) - knee) / w)))


def periodic_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, float]) -> np.ndarray:
    """White noise of ``shape`` (H×W or H×W×C) Gaussian-filtered with standard deviations ``sigma`` (rows,
    columns; texels), periodically in both directions, scaled to zero mean and unit variance. Filtered in the Fourier
    domain (gain exp(−2π²σ²f²) per axis): fast for wide filters."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * np.pi**2 * ((sigma[0] * fy) ** 2 + (sigma[1] * fx) ** 2))
    if white.ndim == 3:
        gain = gain[..., None]
    noise = np.fft.irfft2(np.fft.rfft2(white, axes=(0, 1)) * gain, s=shape[:2], axes=(0, 1))
    noise -= noise.mean(axis=(0, 1))  # the mean passes the filter unattenuated: it is not a feature
    return noise / noise.std()


def hair_texture(seed: int, colour: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Strands: noise stretched along the head's height (σ 9 × 0.8 texels) over clumps (σ 24 × 5), as a
    brightness factor on ``colour`` with a few lighter strands; plus the hairline jitter (±2.5 mm)."""
    rng = np.random.default_rng([seed, 0x4A])
    strands = periodic_noise(rng, (HAIR_V, HAIR_U), (9.0, 0.8))
    clumps = periodic_noise(rng, (HAIR_V, HAIR_U), (24.0, 5.0))
    n = 0.7 * strands + 0.5 * clumps
    light = np.clip(1.0 + 0.3 * n, 0.35, 1.9)[..., None]
    base = np.asarray(colour, np.float64)
    hair = base * light + 0.12 * smoothstep(1.2, 2.2, n)[..., None] * (1.0 - base)  # sheen on some strands
    edge = ndimage.gaussian_filter1d(rng.standard_normal(HAIR_U), 2.0, mode="wrap")
    return np.clip(hair, 0.0, 1.0).astype(np.float32), 0.0025 * edge / edge.std()


def background_texture(identity: Identity) -> np.ndarray:
    """The background plane's texture, float32 RGB in [0, 1]: a scikit-image photo (grey ones tinted) or a
    procedural gradient or smooth colour noise, drawn from ``identity.background_seed``."""
    rng = np.random.default_rng([identity.background_seed, 0xB6])
    name = identity.background
    if name in PHOTO_BACKGROUNDS:
        from skimage import data

        image = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        if image.ndim == 2:
            image = image[..., None] * rng.uniform(0.6, 1.1, 3).astype(np.float32)
        return np.clip(image[..., :3], 0.0, 1.0)
    v, u = np.mgrid[0:BACKGROUND_SIZE, 0:BACKGROUND_SIZE] / (BACKGROUND_SIZE - 1.0)
    shape = (BACKGROUND_SIZE, BACKGROUND_SIZE)
    if name == "gradient":  # between two muted colours, at any angle, with soft blotches
        angle = rng.uniform(0.0, 2.0 * np.pi)
        t = smoothstep(0.0, 1.0, (np.cos(angle) * (u - 0.5) + np.sin(angle) * (v - 0.5)) + 0.5)
        a, b = rng.uniform(0.1, 0.9, (2, 1)) + rng.uniform(-0.15, 0.15, (2, 3))
        image = a + (b - a) * t[..., None]
        sigma = 8.0
    elif name == "noise":  # mostly brightness noise at three scales, a little colour
        image = np.broadcast_to(rng.uniform(0.25, 0.75) + rng.uniform(-0.15, 0.15, 3), (*shape, 3))
        sigma = 1.5
    else:
        raise ValueError(f"unknown background {name!r}")
    for scale, amp in ((sigma, 0.05), (4 * sigma, 0.08), (16 * sigma, 0.12)):
        grey = periodic_noise(rng, shape, (scale, scale))[..., None]
        image = image + amp * (0.85 * grey + 0.3 * periodic_noise(rng, (*shape, 3), (scale, scale)))
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def build_appearance(identity: Identity, size: int) -> Appearance:
    """All of an identity's textures, pre-filtered for S×S frames (head ≈ 0.4 m away, background ≈ 1.1 m)."""
    focal = FOCAL_FACTOR * size
    head_px_per_m = focal / 0.4
    calibration = face_photo(identity.face_photo)
    affine = head_to_photo(calibration)
    photo = load_face_photo(identity.face_photo).astype(np.float64) / 255.0
    face = transfer_skin_tone(photo, affine, calibration.skin_top, identity.skin_tone)
    face_px_per_m = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    face = prefilter_texture(face, face_px_per_m / head_px_per_m)
    hair, edge = hair_texture(identity.hair_seed, identity.hair_colour)
    hair = prefilter_texture(hair, HAIR_TEXELS_PER_M / head_px_per_m)
    rng = np.random.default_rng([identity.hair_seed, 0x5C])
    variation = 1.0 + 0.04 * periodic_noise(rng, (HAIR_V, HAIR_U), (10.0, 10.0))
    bg = prefilter_texture(background_texture(identity), identity.background_px_per_m / (focal / 1.1))
    tilt_x, tilt_y = identity.background_tilt
    bg_colour, bg_depth = background_plane(size, intrinsics_matrix(size), bg, identity.background_px_per_m,
                                           tilt_x, tilt_y, identity.background_distance)
    return Appearance(face, affine, calibration.skin_top, np.asarray(identity.skin_tone), variation, hair, edge,
                      identity.hairline,
                      identity.hair_length, bg_colour.reshape(-1, 3), bg_depth.reshape(-1))


def _sample_grid(texture: np.ndarray, lon: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of a (height, longitude) texture, periodic in longitude."""
    u = np.mod((lon + np.pi) / (2.0 * np.pi) * HAIR_U, HAIR_U)
    v = (y + HAIR_Y) * HAIR_TEXELS_PER_M
    flat = texture if texture.ndim == 3 else texture[..., None]
    wrapped = np.concatenate([flat, flat[:, :1]], axis=1)  # one extra column: interpolation across the seam
    return bilinear_sample(wrapped, u, v)


def head_colour(app: Appearance, canon: np.ndarray, shade: np.ndarray, mouth: float,
                blink: float) -> np.ndarray:
    """P×3 colour of head surface points given their canonical coordinates ``canon`` (P×3)."""
    x, y, z = canon[:, 0], canon[:, 1], canon[:, 2]
    lon = np.arctan2(x, -z)
    colour = app.skin * _sample_grid(app.skin_variation, lon, y)
    a = app.face_affine
    photo = bilinear_sample(app.face, a[0, 0] * x + a[0, 1] * y + a[0, 2], a[1, 0] * x + a[1, 1] * y + a[1, 2])
    r = (x / 0.058) ** 2 + ((y - 0.018) / 0.092) ** 2
    w_photo = smoothstep(1.25, 0.7, r) * smoothstep(app.skin_top - 0.004, app.skin_top + 0.008, y)
    w_photo = w_photo * smoothstep(-0.02, -0.06, z)
    colour = colour + w_photo[:, None] * (photo - colour)
    if blink > 0.0:  # the upper eyelid (skin from above the eye) slides down over the eye
        lid_y = EYE_Y - 1.9 * EYE_HALF_H
        for ex in (-EYE_X, EYE_X):
            in_eye = ((x - ex) / (EYE_HALF_W * 1.1)) ** 2 + ((y - EYE_Y) / (EYE_HALF_H * 1.3)) ** 2 < 1.0
            cover = in_eye & (y < EYE_Y - EYE_HALF_H * 1.3 + 2.6 * EYE_HALF_H * blink)
            if cover.any():
                xs = x[cover]
                lid = bilinear_sample(app.face, a[0, 0] * xs + a[0, 1] * lid_y + a[0, 2],
                                      a[1, 0] * xs + a[1, 1] * lid_y + a[1, 2])
                colour[cover] = 0.9 * lid
    if mouth > 0.1:  # a dark cavity, upper teeth at its top, in the lip band the jaw drop stretches open
        half_h = 0.0035 * (mouth - 0.1) / 0.9
        dy = y - MOUTH_GAP_Y
        d = (x / MOUTH_HALF_W) ** 2 + (dy / max(half_h, 1e-6)) ** 2
        cavity = np.clip((1.0 - d) * 4.0, 0.0, 1.0)[:, None]
        teeth = (smoothstep(-0.2 * half_h, -0.5 * half_h, dy) * smoothstep(0.8, 0.5, np.abs(x) / MOUTH_HALF_W))
        inside = np.array([0.16, 0.04, 0.05]) + teeth[:, None] * np.array([0.64, 0.70, 0.64])
        colour = colour * (1.0 - cavity) + inside * cavity
    line = app.hairline + (0.005 - app.hairline) * smoothstep(0.45, 1.25, np.abs(lon))
    line = line + (app.hair_length - 0.005) * smoothstep(1.5, 2.6, np.abs(lon))
    line = line + np.interp(np.mod(lon + np.pi, 2 * np.pi) / (2 * np.pi) * HAIR_U, np.arange(HAIR_U + 1),
                            np.append(app.hair_edge, app.hair_edge[0]))
    w_hair = smoothstep(line + 0.003, line - 0.003, y)[:, None]
    colour = colour + w_hair * (_sample_grid(app.hair, lon, y) - colour)
    return colour * shade[:, None]
