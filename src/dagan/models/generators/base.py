"""The interface every generator implements.

Inference computes everything that depends only on the source once (:meth:`encode_source`) and then
decodes each driving frame (:meth:`decode`); ``forward`` chains the two for training.

Output dict of :meth:`decode` / ``forward``:
  ``prediction`` B×3×H×W in [0, 1]; ``deformed`` the source image warped by the dense motion (full
  resolution); ``deformation`` B×h×w×2; ``occlusion_map`` B×1×h×w (when estimated); ``mask`` and
  ``sparse_deformed`` from the dense motion network.
"""

from __future__ import annotations

from torch import Tensor, nn

KeypointDict = dict[str, Tensor]
SourceCache = dict[str, Tensor | list[Tensor]]


class Generator(nn.Module):
    #: whether the generator consumes the source disparity (the keypoint detector may still use depth)
    uses_depth: bool = True

    def encode_source(self, source_image: Tensor, source_depth: Tensor | None = None) -> SourceCache:
        """Everything that depends only on the source image (and its disparity)."""
        raise NotImplementedError

    def decode(
        self,
        source_image: Tensor,
        cache: SourceCache,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
    ) -> dict[str, Tensor]:
        """Generate the driving-pose image from the cached source encodings and the two keypoint sets."""
        raise NotImplementedError

    def forward(
        self,
        source_image: Tensor,
        kp_driving: KeypointDict,
        kp_source: KeypointDict,
        source_depth: Tensor | None = None,
        driving_depth: Tensor | None = None,
    ) -> dict[str, Tensor]:
        # driving_depth is accepted for signature compatibility with the official DaGAN and unused.
        cache = self.encode_source(source_image, source_depth)
        return self.decode(source_image, cache, kp_driving, kp_source)
