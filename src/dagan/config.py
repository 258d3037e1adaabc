"""Typed configuration: dataclasses loaded from YAML (``yaml.safe_load``).

Key names follow the FOMM / DaGAN schema (``dataset_params``, ``model_params.common_params.num_kp``,
``kp_detector_params``, ``generator_params``, ``dense_motion_params``, ``discriminator_params``,
``train_params`` ...), so users of those repositories find their way. Unknown or misspelled keys are
errors that name the key and the closest valid one; values are validated on load.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dagan.errors import DaganError

ARCHS = ("dagan++", "dagan", "dagan-spade", "fomm")
#: the official CVPR-2022 DaGAN generators: depth-aware keypoints, two down blocks, one attention block at the
#: bottleneck (their checkpoints load as they are)
OFFICIAL_DAGAN_ARCHS = ("dagan", "dagan-spade")
Arch = Literal["dagan++", "dagan", "dagan-spade", "fomm"]


class ConfigError(DaganError):
    """A configuration problem the user can fix; the message names the key."""


# --------------------------------------------------------------------------- dataset


@dataclass
class FlipParams:
    horizontal_flip: bool = True
    time_flip: bool = True


@dataclass
class JitterParams:
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1


@dataclass
class AugmentationParams:
    flip_param: FlipParams = field(default_factory=FlipParams)
    jitter_param: JitterParams = field(default_factory=JitterParams)


@dataclass
class DatasetParams:
    root_dir: str = "data/vox"
    frame_shape: list[int] = field(default_factory=lambda: [256, 256, 3])
    id_sampling: bool = True
    pairs_list: str | None = None
    augmentation_params: AugmentationParams = field(default_factory=AugmentationParams)


# --------------------------------------------------------------------------- model


@dataclass
class CommonParams:
    num_kp: int = 15
    num_channels: int = 3
    estimate_jacobian: bool = True


@dataclass
class KPDetectorParams:
    temperature: float = 0.1
    block_expansion: int = 32
    max_features: int = 1024
    scale_factor: float = 0.25
    num_blocks: int = 5
    #: feed the disparity map as a 4th input channel (geometry-guided keypoints)
    use_depth: bool = True
    #: padding of the 7x7 keypoint/Jacobian heads; the official DaGAN uses 0
    pad: int = 0


@dataclass
class DenseMotionParams:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25


@dataclass
class AttentionParams:
    """Cross-modal (appearance x depth) attention of the DaGAN++ generator (GMG)."""

    #: encoder levels that get attention: "all" or a list of level indices (0 = full resolution)
    scales: str | list[int] = "all"
    #: above this many key/value (depth) positions, they are average-pooled down to at most this many
    #: (256: a 16×16 grid; the attention-cost ablation behind this default is in dagan.models.attention)
    max_tokens: int = 256
    #: "pool" (reduce K/V spatially above max_tokens) or "exact" (global attention everywhere)
    mode: Literal["pool", "exact"] = "pool"
    #: scale the logits by 1/sqrt(d) (the standard form); False gives the unscaled DaGAN form
    scaled: bool = True
    #: query/key channels = channels // qk_reduction
    qk_reduction: int = 8


@dataclass
class GeneratorParams:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion_params: DenseMotionParams = field(default_factory=DenseMotionParams)
    attention: AttentionParams = field(default_factory=AttentionParams)


@dataclass
class DiscriminatorParams:
    scales: list[float] = field(default_factory=lambda: [1.0])
    block_expansion: int = 32
    max_features: int = 512
    num_blocks: int = 4
    sn: bool = False
    use_kp: bool = True


@dataclass
class DepthParams:
    """Face depth network F_d and (for depth training) the pose network F_p."""

    backbone: Literal["resnet18", "resnet50"] = "resnet18"
    #: channel-width multiplier of the depth/pose ResNet encoders (1.0 = standard ResNet, as the official
    #: weights; the bundled CPU demo model uses a narrower one)
    width: float = 1.0
    #: FDN++ uncertainty head; False gives the CVPR FDN (ablation)
    uncertainty: bool = True
    #: learn camera intrinsics per frame pair (no camera parameters needed)
    learn_intrinsics: bool = True
    num_scales: int = 4
    min_depth: float = 0.1
    max_depth: float = 100.0
    #: path of a trained depth checkpoint used (frozen) by reenactment training and inference
    checkpoint: str | None = None


@dataclass
class ModelParams:
    arch: Arch = "dagan++"
    #: grid_sample align_corners; the official DaGAN/FOMM use False on corner-aligned grids
    align_corners: bool = False
    common_params: CommonParams = field(default_factory=CommonParams)
    kp_detector_params: KPDetectorParams = field(default_factory=KPDetectorParams)
    generator_params: GeneratorParams = field(default_factory=GeneratorParams)
    discriminator_params: DiscriminatorParams = field(default_factory=DiscriminatorParams)
    depth_params: DepthParams = field(default_factory=DepthParams)


# --------------------------------------------------------------------------- training


@dataclass
class TransformParams:
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


@dataclass
class LossWeights:
    generator_gan: float = 1.0
    discriminator_gan: float = 1.0
    feature_matching: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0])
    perceptual: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0, 10.0])
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    keypoint_distance: float = 10.0


@dataclass
class TrainParams:
    num_epochs: int = 150
    num_repeats: int = 75
    epoch_milestones: list[int] = field(default_factory=list)
    lr_generator: float = 2.0e-4
    lr_discriminator: float = 2.0e-4
    lr_kp_detector: float = 2.0e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    batch_size: int = 4
    num_workers: int = 4
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.125])
    checkpoint_freq: int = 10
    log_freq: int = 100
    visual_freq: int = 500
    grad_clip: float | None = None
    amp: bool = False
    seed: int = 0
    keypoint_distance_beta: float = 0.2
    transform_params: TransformParams = field(default_factory=TransformParams)
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class DepthTrainParams:
    """FDN++ self-supervised training (consecutive frames)."""

    num_steps: int = 200_000
    batch_size: int = 8
    num_workers: int = 4
    lr: float = 1.0e-4
    lr_milestones: list[int] = field(default_factory=list)
    frame_gap: int = 1
    #: photometric error = alpha * (1 - SSIM) / 2 + (1 - alpha) * L1
    ssim_alpha: float = 0.8
    automask: bool = True
    #: lambda_1 (photometric), lambda_2 (smoothness), lambda_3 (uncertainty regulariser)
    photometric_weight: float = 1.0
    smoothness_weight: float = 1.0e-3
    uncertainty_weight: float = 1.0
    checkpoint_freq: int = 5000
    log_freq: int = 50
    visual_freq: int = 1000
    seed: int = 0


@dataclass
class Config:
    dataset_params: DatasetParams = field(default_factory=DatasetParams)
    model_params: ModelParams = field(default_factory=ModelParams)
    train_params: TrainParams = field(default_factory=TrainParams)
    depth_train_params: DepthTrainParams = field(default_factory=DepthTrainParams)

    # ------------------------------------------------------------------ convenience
    @property
    def arch(self) -> str:
        return self.model_params.arch

    @property
    def resolution(self) -> int:
        return int(self.dataset_params.frame_shape[0])

    def validate(self) -> Config:
        validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- (de)serialisation

T = TypeVar("T")


def _closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.0)
    return match[0] if match else options[0]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``; raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {type(value).__name__}")
        return _from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key '{path}' has an invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"config key '{path}' must be one of {', '.join(map(repr, args))}; got {value!r}"
                + (f" (did you mean {_closest(str(value), [str(a) for a in args])!r}?)" if args else "")
            )
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{path}': unsupported type {_type_name(tp)}")  # pragma: no cover


def _from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(
                f"unknown config key '{path}' (did you mean '{(prefix + '.') if prefix else ''}"
                f"{_closest(str(key), names)}'?)"
            )
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a plain dict (e.g. one stored in a checkpoint)."""
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping at the top level")
    return _from_dict(Config, data).validate()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping; a top-level ``base: other.yaml`` (relative to this file) is merged underneath."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"config file {path} includes itself through 'base'")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text (UTF-8 YAML) file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a file name")
        data = deep_merge(_read_yaml_tree(path.parent / base, (*seen, path.resolve())), data)
    return data


def load_config(path: str | Path) -> Config:
    """Load a YAML config with ``yaml.safe_load``; unknown keys and bad values raise :class:`ConfigError`.

    A top-level ``base: other.yaml`` key inherits from another config (paths relative to this file), so
    ablation and tiny configs list only what they change.
    """
    path = Path(path)
    data = _read_yaml_tree(path)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_config(config: Config, path: str | Path | None = None) -> str:
    """Serialise to YAML text (and write it to ``path`` when given)."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


# --------------------------------------------------------------------------- validation


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def validate(cfg: Config) -> None:
    """Check value ranges and cross-field constraints; raise :class:`ConfigError` on the first problem."""
    ds, mp = cfg.dataset_params, cfg.model_params
    fs = ds.frame_shape
    _require(len(fs) == 3 and fs[2] == 3, "dataset_params.frame_shape must be [H, W, 3]")
    _require(fs[0] == fs[1], "dataset_params.frame_shape must be square (H == W)")
    cp = mp.common_params
    _require(cp.num_kp >= 1, "model_params.common_params.num_kp must be >= 1")
    _require(cp.num_channels == 3, "model_params.common_params.num_channels must be 3 (RGB)")
    kp = mp.kp_detector_params
    _require(kp.temperature > 0, "model_params.kp_detector_params.temperature must be > 0")
    _require(0 < kp.scale_factor <= 1, "model_params.kp_detector_params.scale_factor must be in (0, 1]")
    _require(kp.num_blocks >= 1, "model_params.kp_detector_params.num_blocks must be >= 1")
    _require(kp.pad >= 0, "model_params.kp_detector_params.pad must be >= 0")
    gp = mp.generator_params
    dm = gp.dense_motion_params
    _require(gp.num_down_blocks >= 1, "model_params.generator_params.num_down_blocks must be >= 1")
    _require(
        0 < dm.scale_factor <= 1, "model_params.generator_params.dense_motion_params.scale_factor must be in (0, 1]"
    )
    res = fs[0]
    for name, blocks, scale in (
        ("generator_params.num_down_blocks", gp.num_down_blocks, 1.0),
        ("kp_detector_params.num_blocks", kp.num_blocks, kp.scale_factor),
        ("generator_params.dense_motion_params.num_blocks", dm.num_blocks, dm.scale_factor),
    ):
        size = res * scale
        _require(
            size == int(size) and int(size) % (2**blocks) == 0,
            f"resolution {res} (x{scale:g}) must be divisible by 2^{blocks} for model_params.{name}",
        )
    # 7x7 keypoint heads with padding 0 need a heat-map bigger than 6 pixels.
    _require(res * kp.scale_factor > 6 - 2 * kp.pad, "resolution too small for the 7x7 keypoint heads")
    at = gp.attention
    if isinstance(at.scales, str):
        _require(at.scales == "all", "model_params.generator_params.attention.scales must be 'all' or a list")
    else:
        for s in at.scales:
            _require(
                0 <= s <= gp.num_down_blocks,
                f"model_params.generator_params.attention.scales: level {s} outside 0..{gp.num_down_blocks}",
            )
    _require(at.max_tokens >= 1, "model_params.generator_params.attention.max_tokens must be >= 1")
    _require(at.qk_reduction >= 1, "model_params.generator_params.attention.qk_reduction must be >= 1")
    if mp.arch in OFFICIAL_DAGAN_ARCHS:
        _require(kp.use_depth, f"arch {mp.arch} needs kp_detector_params.use_depth: true")
        _require(gp.num_down_blocks == 2, f"arch {mp.arch} needs generator_params.num_down_blocks: 2")
    dp = mp.depth_params
    _require(0 < dp.min_depth < dp.max_depth, "model_params.depth_params needs 0 < min_depth < max_depth")
    _require(1 <= dp.num_scales <= 4, "model_params.depth_params.num_scales must be in 1..4")
    _require(0 < dp.width <= 4, "model_params.depth_params.width must be in (0, 4]")
    tp = cfg.train_params
    _require(tp.batch_size >= 1, "train_params.batch_size must be >= 1")
    _require(len(tp.betas) == 2, "train_params.betas must have two values")
    _require(tp.num_epochs >= 1 and tp.num_repeats >= 1, "train_params.num_epochs and num_repeats must be >= 1")
    _require(
        len(tp.loss_weights.perceptual) == 5, "train_params.loss_weights.perceptual needs 5 weights (relu1..relu5)"
    )
    dt = cfg.depth_train_params
    _require(0 <= dt.ssim_alpha <= 1, "depth_train_params.ssim_alpha must be in [0, 1]")
    _require(dt.frame_gap >= 1, "depth_train_params.frame_gap must be >= 1")
