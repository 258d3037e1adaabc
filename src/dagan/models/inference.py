"""Inference-only rewrites of trained networks: the same function, fewer operations per call.

Each rewrite is exact in real arithmetic; in float32 the outputs move by rounding only (animated frames
stay within a couple of uint8 levels of the networks as trained):

* :func:`fold_batch_norm` — an eval-mode BatchNorm after a convolution becomes part of the convolution:
  BN(W∗x + b) = (s·W)∗x + (b − μ)·s + β, s = γ/√(σ² + ε) per output channel (running statistics μ, σ²);
* :func:`conv_bn_pairs` — which convolution feeds which BatchNorm, read from each module's ``forward``;
* :func:`resolve_spectral_norms` — the spectral-norm hook recomputes W = W_orig/σ, σ = uᵀ(W_mat v), before
  every call; in eval mode u and v never change, so W is computed once and stored as a plain weight;
* :func:`optimize_for_inference` — all of them on a copy of a :class:`ReenactmentModels`, optionally with
  channels-last weights in the keypoint detector and depth net (the faster layout for PyTorch's CPU
  convolutions).

Only BatchNorm with running statistics is folded. Instance norm (SPADE), the anti-aliasing blur and a
BatchNorm that is not fed directly by a convolution (the pre-activation ``norm1`` of a residual block sits
*before* its convolution, behind a ReLU) are left as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from dagan.models.factory import ReenactmentModels
from dagan.models.spectral_norm import has_spectral_norm

__all__ = [
    "conv_bn_pairs",
    "fold_batch_norm",
    "fold_batch_norms",
    "optimize_for_inference",
    "resolve_spectral_norms",
]


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution computing ``bn(conv(x))`` with ``bn`` in eval mode (running statistics):

        W' = W · s,   b' = (b − μ) · s + β,   s = γ / √(σ² + ε)      (per output channel; b = 0 without bias)

    computed in float64 and stored in the convolution's dtype. Returns a new module; ``conv`` and ``bn``
    are not modified.
    """
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ValueError("only an eval-mode BatchNorm with running statistics can be folded")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"BatchNorm has {bn.num_features} channels, the convolution {conv.out_channels}")
    weight = conv.weight.detach()
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(
        (weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))).to(weight.dtype), requires_grad=False
    )
    folded.bias = nn.Parameter(((bias - mean) * scale + beta).to(weight.dtype), requires_grad=False)
    return folded


class _ChildrenAsLeaves(fx.Tracer):
    """Traces one module's own ``forward``, each direct child kept as a single call."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._root = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self._root


def conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) child names of ``module`` where ``forward`` feeds the convolution's output
    to the BatchNorm and to nothing else, each called once — the pairs :func:`fold_batch_norm` may fuse.

    Read from the symbolic trace of ``forward`` (:mod:`torch.fx`) with the children as opaque calls; a
    ``forward`` that cannot be traced (data-dependent checks) yields no pairs, and its children are
    searched on their own by :func:`fold_batch_norms`.
    """
    children = dict(module.named_children())
    if not any(isinstance(c, nn.BatchNorm2d) for c in children.values()):
        return []
    try:
        graph = _ChildrenAsLeaves(module).trace(module)
    except Exception:  # any failure to trace just means: no pairs found at this level
        return []
    calls = [n for n in graph.nodes if n.op == "call_module"]
    times_called: dict[str, int] = {}
    for node in calls:
        times_called[str(node.target)] = times_called.get(str(node.target), 0) + 1
    pairs = []
    for node in calls:
        bn_name = str(node.target)
        if not isinstance(children.get(bn_name), nn.BatchNorm2d) or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or source.op != "call_module":
            continue
        conv_name = str(source.target)
        if isinstance(children.get(conv_name), nn.Conv2d) and len(source.users) == 1 and (
            times_called[conv_name] == times_called[bn_name] == 1
        ):
            pairs.append((conv_name, bn_name))
    return pairs


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm fed by a convolution (:func:`conv_bn_pairs`, at every level of
    ``module``) into that convolution, IN PLACE: the convolution is replaced by the folded one and the
    BatchNorm by ``nn.Identity``, so ``forward`` code runs unchanged. Returns the number of folds."""
    folds = 0
    for parent in list(module.modules()):
        for conv_name, bn_name in conv_bn_pairs(parent):
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            if bn.training or not bn.track_running_stats or bn.running_mean is None:
                continue  # batch statistics: not a fixed affine map
            setattr(parent, conv_name, fold_batch_norm(conv, bn))
            setattr(parent, bn_name, nn.Identity())
            folds += 1
    return folds


def resolve_spectral_norms(module: nn.Module) -> int:
    """Replace every spectral-norm hook in ``module`` (IN PLACE) by its eval-mode weight, computed once:
    W = W_orig / σ, σ = uᵀ(W_mat v) with the stored u, v (no power iteration — bit for bit what the hook
    gives in eval mode). Returns the number of weights resolved."""
    resolved = 0
    for m in module.modules():
        if has_spectral_norm(m):
            nn.utils.remove_spectral_norm(m)
            m.weight.requires_grad_(False)
            resolved += 1
    return resolved


def optimize_for_inference(models: ReenactmentModels, channels_last: bool = False) -> ReenactmentModels:
    """An inference-only copy of ``models`` (which are left untouched): eval mode, no gradients, no
    discriminator (animation never calls it), BatchNorm folded into the convolutions before it
    (:func:`fold_batch_norms`) and spectral norms resolved (:func:`resolve_spectral_norms`) in the keypoint
    detector, generator and depth net. With ``channels_last`` the keypoint detector's and depth net's 4-D
    weights are stored N×H×W×C, so their convolutions run (and return) channels-last tensors — faster with
    PyTorch's CPU (oneDNN) kernels. The generator keeps its layout: its time goes to attention, warps and
    instance norms, which channels-last does not speed up (the SPADE decoder gets slower).

    Its outputs equal the reference's up to float rounding; its state dict is not a checkpoint's
    (BatchNorm entries are gone), so never save it."""
    fast = ReenactmentModels(
        copy.deepcopy(models.kp_detector),
        copy.deepcopy(models.generator),
        None,
        None if models.depth_net is None else copy.deepcopy(models.depth_net),
    )
    fast.eval().requires_grad_(False)
    resolve_spectral_norms(fast)
    fold_batch_norms(fast)
    if channels_last:
        for net in (fast.kp_detector, fast.depth_net):
            if net is not None:  # Module.to's stubs omit the memory_format keyword it takes
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return fast
