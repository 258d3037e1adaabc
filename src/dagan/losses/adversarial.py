"""LSGAN losses and discriminator feature matching for a multi-scale discriminator (FOMM §3.4 / pix2pixHD).

Discriminator outputs are dicts with, per scale s, ``prediction_map_<s>`` (B×1×h×w patch scores) and
``feature_maps_<s>`` (list of intermediate maps), ``<s>`` written as by :func:`scale_name` ("1", "0.5", as
:class:`dagan.models.discriminator.MultiScaleDiscriminator` does); the module-name form ("0-5") is
accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from dagan.losses.perceptual import scale_key, scale_name

DiscOutput = Mapping[str, Tensor | Sequence[Tensor]]


def _get(out: DiscOutput, prefix: str, scale: float) -> Tensor | Sequence[Tensor]:
    for key in (f"{prefix}_{scale_name(scale)}", f"{prefix}_{scale_key(scale)}"):
        if key in out:
            return out[key]
    raise KeyError(f"discriminator output has no '{prefix}_{scale_name(scale)}' (keys: {sorted(out)})")


def lsgan_generator_loss(disc_fake: DiscOutput, scales: Sequence[float], weight: float = 1.0) -> Tensor:
    """L_G = w · Σ_s mean((1 − D_s(fake))²)."""
    total = torch.zeros(())
    for s in scales:
        pred = _get(disc_fake, "prediction_map", s)
        assert isinstance(pred, Tensor)
        total = total.to(pred) + weight * ((1 - pred) ** 2).mean()
    return total


def lsgan_discriminator_loss(
    disc_real: DiscOutput, disc_fake: DiscOutput, scales: Sequence[float], weight: float = 1.0
) -> Tensor:
    """L_D = w · Σ_s mean((1 − D_s(real))² + D_s(fake)²); the fake images should be detached by the caller."""
    total = torch.zeros(())
    for s in scales:
        real = _get(disc_real, "prediction_map", s)
        fake = _get(disc_fake, "prediction_map", s)
        assert isinstance(real, Tensor) and isinstance(fake, Tensor)
        total = total.to(real) + weight * ((1 - real) ** 2 + fake**2).mean()
    return total


def feature_matching_loss(
    disc_real: DiscOutput, disc_fake: DiscOutput, scales: Sequence[float], weights: Sequence[float]
) -> Tensor:
    """L_FM = Σ_s Σ_i w_i · mean|F_{s,i}(real) − F_{s,i}(fake)| over the discriminator's feature maps.

    Real features are targets (detached). Maps beyond ``len(weights)`` and maps with weight 0 are skipped.
    """
    total = torch.zeros(())
    for s in scales:
        real_maps = _get(disc_real, "feature_maps", s)
        fake_maps = _get(disc_fake, "feature_maps", s)
        if len(real_maps) != len(fake_maps):
            raise ValueError(f"scale {s}: {len(real_maps)} real vs {len(fake_maps)} fake feature maps")
        for w, real, fake in zip(weights, real_maps, fake_maps):
            if w != 0:
                total = total.to(fake) + w * torch.abs(real.detach() - fake).mean()
    return total
