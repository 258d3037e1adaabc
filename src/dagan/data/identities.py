"""Synthetic identities: who a synthetic talking head is, as a small set of JSON-serialisable parameters.

An :class:`Identity` fixes everything about a person and their surroundings that does not change while
they talk: head shape (:class:`dagan.data.synthetic.HeadShape`), face texture (a real photo of
:mod:`dagan.data.face_photos`), skin tone, hair and background. :func:`sample_identity` draws one from a
seed; how an identity looks on screen is :mod:`dagan.data.appearance`, how it moves is
:mod:`dagan.data.performances`.

Splits: seeds below :data:`TEST_SEED_START` are training identities, seeds from it on are held-out test
identities. The two splits wear disjoint face photos (:func:`dagan.data.face_photos.face_photos`), so no
test face texture is ever seen in training. Backgrounds and hair are drawn from the same palettes in both
splits: they are not what makes a face recognisable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from dagan.data.face_photos import face_photos
from dagan.data.synthetic import HeadShape

TEST_SEED_START = 1_000_000  # identity seeds [0, TEST_SEED_START) are train, [TEST_SEED_START, ∞) test

# Target skin tones (sRGB in [0, 1], light → dark), the median colour the face's skin is moved to.
SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    (0.96, 0.80, 0.69), (0.91, 0.73, 0.60), (0.84, 0.64, 0.50), (0.74, 0.54, 0.40),
    (0.62, 0.43, 0.30), (0.50, 0.34, 0.23), (0.38, 0.25, 0.17), (0.27, 0.18, 0.13),
)
HAIR_COLOURS: dict[str, tuple[float, float, float]] = {  # sRGB base colour of the strands
    "black": (0.07, 0.06, 0.06),
    "dark brown": (0.20, 0.13, 0.09),
    "brown": (0.36, 0.24, 0.14),
    "blond": (0.74, 0.60, 0.38),
    "red": (0.56, 0.24, 0.11),
    "grey": (0.62, 0.61, 0.60),
}
_HAIR_WEIGHTS = (0.3, 0.22, 0.18, 0.12, 0.08, 0.1)
# Backgrounds: scikit-image photos that are available offline and show no human face (a face in the
# background would confuse face detectors in evaluation), plus two procedural kinds.
PHOTO_BACKGROUNDS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "immunohistochemistry",
                     "moon", "coins", "clock", "hubble_deep_field", "colorwheel")
PROCEDURAL_BACKGROUNDS = ("gradient", "noise")
BACKGROUNDS = PHOTO_BACKGROUNDS + PROCEDURAL_BACKGROUNDS


@dataclass(frozen=True)
class Identity:
    """A synthetic person. Lengths in metres (head coordinates: x right, y down, face towards −z)."""

    seed: int
    split: str  # "train" or "test"
    shape: HeadShape
    face_photo: str  # a dagan.data.face_photos key, e.g. "hello:27"
    skin_tone: tuple[float, float, float]  # sRGB median skin colour
    hair_colour: tuple[float, float, float]  # sRGB
    hair_name: str  # the palette entry hair_colour was drawn around
    hairline: float  # y of the hairline above the forehead (−0.08 high … −0.05 low)
    hair_length: float  # y down to which hair covers the back of the head
    hair_seed: int  # strand pattern
    background: str  # one of BACKGROUNDS
    background_seed: int  # tint of a grey photo, colours of a procedural background
    background_px_per_m: float  # texels per metre of the background plane
    background_tilt: tuple[float, float]  # pitch, yaw of the background plane (radians)
    background_distance: float  # metres from the camera

    @property
    def name(self) -> str:
        """Video-name prefix, e.g. ``id0000042`` (datasets read the identity from the prefix before ``#``)."""
        return f"id{self.seed:07d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Identity:
        d = json.loads(text)
        d["shape"] = HeadShape(**d["shape"])
        for key in ("skin_tone", "hair_colour", "background_tilt"):
            d[key] = tuple(d[key])
        return cls(**d)


def split_of(seed: int) -> str:
    """"train" for seeds in [0, TEST_SEED_START), "test" from TEST_SEED_START on."""
    if seed < 0:
        raise ValueError(f"identity seeds are ≥ 0, got {seed}")
    return "train" if seed < TEST_SEED_START else "test"


def identity_seeds(split: str, count: int, start: int = 0) -> list[int]:
    """``count`` consecutive identity seeds of ``split`` from its ``start``-th one."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if start < 0 or count < 0 or (split == "train" and start + count > TEST_SEED_START):
        raise ValueError(f"no {count} train identities from {start}: there are {TEST_SEED_START}")
    first = start if split == "train" else TEST_SEED_START + start
    return list(range(first, first + count))


def _u(rng: np.random.Generator, low: float, high: float, digits: int = 4) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _colour(rgb: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (round(float(c), 3) for c in np.clip(rgb, 0.0, 1.0))
    return r, g, b


def sample_identity(seed: int) -> Identity:
    """Draw an identity from its seed (same seed, same identity); its split follows from the seed."""
    split = split_of(seed)
    rng = np.random.default_rng([seed, 0x1D])
    shape = HeadShape(
        width=_u(rng, 0.92, 1.08), height=_u(rng, 0.92, 1.08), depth=_u(rng, 0.92, 1.08),
        jaw_taper=_u(rng, 0.10, 0.34), nose_size=_u(rng, 0.7, 1.35), nose_length=_u(rng, 0.88, 1.14),
        brow=_u(rng, 0.0015, 0.0075, 5), chin=_u(rng, 0.0015, 0.0075, 5), cheek=_u(rng, -0.002, 0.005, 5))
    photos = face_photos(split)
    photo = photos[int(rng.integers(len(photos)))]
    tone_pos = rng.uniform(0.0, len(SKIN_TONES) - 1.0)  # anywhere on the light → dark scale
    i = min(int(tone_pos), len(SKIN_TONES) - 2)
    t = tone_pos - i
    skin = (1.0 - t) * np.array(SKIN_TONES[i]) + t * np.array(SKIN_TONES[i + 1])
    hair_name = str(rng.choice(list(HAIR_COLOURS), p=_HAIR_WEIGHTS))
    hair = np.array(HAIR_COLOURS[hair_name]) * rng.uniform(0.85, 1.15) + rng.normal(0.0, 0.015, 3)
    hairline = _u(rng, -0.082, -0.05)
    hair_length = _u(rng, 0.03, 0.11)
    hair_seed = int(rng.integers(2**31))
    background = str(rng.choice(BACKGROUNDS))
    return Identity(
        seed=seed, split=split, shape=shape, face_photo=photo.key, skin_tone=_colour(skin),
        hair_colour=_colour(hair), hair_name=hair_name, hairline=hairline, hair_length=hair_length,
        hair_seed=hair_seed, background=background, background_seed=int(rng.integers(2**31)),
        background_px_per_m=_u(rng, 350.0, 650.0, 1),
        background_tilt=(_u(rng, -0.25, 0.25), _u(rng, -0.25, 0.25)),
        background_distance=_u(rng, 0.95, 1.3))
