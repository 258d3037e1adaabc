"""Cross-identity reenactment with exact ground truth: person A driven by person B's video.

Real benchmarks cannot score cross-identity reenactment against a ground truth — nobody filmed A making
B's exact motion — so they fall back to identity similarity and landmark proxies. Synthetic identities
can: :func:`cross_identity_triplet` renders, for identities A ≠ B and one :class:`Performance`,

* ``source`` — A at the performance's frame 0 (pose and expression);
* ``driving`` — B performing the whole performance;
* ``target`` — A performing it: the exact frames a reenactment of ``source`` by ``driving`` should give.

Why frame 0 of the same performance is the source: reenactment transfers the driving video's motion
*relative to its first frame* onto the source (relative keypoint/pose transfer). When the source shows A
in the pose and expression of driving frame 0, that relative motion applied to the source is A moving
exactly as B does, so the target is unambiguous — for relative and for absolute motion transfer alike,
and independent of how a method composes motions. A source in any other pose would make the "correct"
output a matter of convention. Performances start calm (near-frontal, mouth closed, eyes open; see
:mod:`dagan.data.performances`), as a source photo usually is.

:data:`TEST_PAIRS` is the fixed evaluation list: identity seeds from the held-out test split
(:mod:`dagan.data.identities`), A and B always wearing photos of two different real people, and
performance seeds from their own range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dagan.data.identities import Identity, sample_identity
from dagan.data.identity_clips import IdentityClip, render_clip
from dagan.data.performances import Performance, sample_performance
from dagan.data.synthetic import FPS

# (identity seed A, identity seed B, performance seed): the 8 test identities 1_000_000 … 1_000_007 each
# appear once as A, driven by a test identity made from the other real person's photos.
TEST_PAIRS: tuple[tuple[int, int, int], ...] = (
    (1_000_000, 1_000_001, 2_000_000),
    (1_000_001, 1_000_002, 2_000_001),
    (1_000_002, 1_000_003, 2_000_002),
    (1_000_003, 1_000_004, 2_000_003),
    (1_000_004, 1_000_007, 2_000_004),
    (1_000_005, 1_000_001, 2_000_005),
    (1_000_006, 1_000_003, 2_000_006),
    (1_000_007, 1_000_006, 2_000_007),
)


@dataclass
class CrossIdentityTriplet:
    """Source image, driving clip and ground-truth target of one cross-identity reenactment."""

    source: np.ndarray  # S×S×3 uint8: A at the performance's frame 0 (== target.frames[0])
    driving: IdentityClip  # B performing
    target: IdentityClip  # A performing: the exact reenactment of source by driving


def cross_identity_triplet(a: Identity, b: Identity, performance: Performance,
                           size: int = 256) -> CrossIdentityTriplet:
    """Render A's source image, B's driving clip and A's target clip for one performance."""
    if a == b:
        raise ValueError(f"cross-identity needs two different identities, got {a.name} twice")
    target = render_clip(a, performance, size)
    driving = render_clip(b, performance, size)
    return CrossIdentityTriplet(target.frames[0].copy(), driving, target)


def cross_identity_test_pairs(frames: int = 100, fps: float = FPS) -> Iterator[tuple[Identity, Identity, Performance]]:
    """The identities and performances of :data:`TEST_PAIRS`, in order (pass each to
    :func:`cross_identity_triplet`)."""
    for seed_a, seed_b, seed_performance in TEST_PAIRS:
        yield sample_identity(seed_a), sample_identity(seed_b), sample_performance(seed_performance, frames, fps)
