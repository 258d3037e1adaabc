"""The evaluation protocols of the talking-head literature (``dagan evaluate --protocol``), by name.

Protocols run on the split ``ROOT/<split>`` of a dataset; videos are already face crops, so frames are only
resized to the model resolution R, never detected or cropped:

* ``video`` — same identity, whole video (FOMM): frame 0 of each video is the source, every frame (frame 0
  included) is driven with *absolute* motion and compared with itself (:mod:`.video`).
* ``pairs`` — same identity, frame pairs from a CSV (DaGAN/MCNet style): each row names a video, a source
  frame and a driving frame; the driving frame is the ground truth; absolute motion (:mod:`.pairs`).
* ``cross-id`` — the first frame of a source video animated by the driving video of another identity with
  *relative* motion (anchor: driving frame 0, adapt scale on), as the literature's cross-identity
  animation. There is no ground truth: CSIM compares the source with the output, PRMSE the driving frame
  with the output (:mod:`.cross_id`).
* ``synthetic-cross-id`` — held-out synthetic identity A driven by identity B, scored against A rendered
  performing B's pose and expression sequence: cross-identity reenactment with an exact ground truth
  (:mod:`.synthetic_cross_id`; it renders its own fixed test set, no ``--data``).

A new protocol is a :class:`~dagan.eval.protocols.base.Protocol` subclass in its own module plus its entry in
:data:`PROTOCOLS`; ``dagan evaluate`` takes its name, help and metrics from there.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagan.errors import InputError
from dagan.eval.protocols.base import Protocol
from dagan.eval.protocols.cross_id import CrossIdProtocol
from dagan.eval.protocols.pairs import PairsProtocol
from dagan.eval.protocols.synthetic_cross_id import SyntheticCrossIdProtocol
from dagan.eval.protocols.video import VideoProtocol
from dagan.eval.scoring import METRIC_GROUPS

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "resolve_metrics"]

#: The protocols by name, in the order ``dagan evaluate --help`` lists them.
PROTOCOLS: dict[str, Protocol] = {
    p.name: p for p in (VideoProtocol(), PairsProtocol(), CrossIdProtocol(), SyntheticCrossIdProtocol())
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; InputError for an unknown name."""
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def resolve_metrics(protocol: str, names: Sequence[str] | None) -> list[str]:
    """The ``--metrics`` group names to run (default and ``all``: every metric of the protocol, in report
    order). Names may be comma separated and are case-insensitive. InputError for unknown names and for
    metrics that do not apply to the protocol (e.g. TCM needs consecutive ground-truth frames)."""
    allowed = get_protocol(protocol).metrics
    wanted = [n.strip().lower() for item in (names or ["all"]) for n in str(item).split(",") if n.strip()]
    if not wanted or "all" in wanted:
        return list(allowed)
    for name in wanted:
        if name not in METRIC_GROUPS:
            raise InputError(f"unknown metric {name!r}; known: {', '.join(METRIC_GROUPS)}, all")
        if name not in allowed:
            raise InputError(
                f"metric {name!r} does not apply to the {protocol} protocol (it has: {', '.join(allowed)})"
            )
    return [name for name in allowed if name in wanted]
