"""Datasets on the standard talking-head layout ``ROOT/{train,test}/<video>``.

``<video>`` is a video file (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, ``.m4v``) or a folder of
frames. The identity of a video is the part of its name before the first ``#`` (VoxCeleb naming
``id10001#7w0IBEWc9Qw#00001#000.mp4`` → ``id10001``), else the whole name. A ``<name>.npz`` beside a video
holds optional ground truth (written by :mod:`dagan.data.synthetic`).

Unreadable videos are skipped with one warning each (per process); a split with no videos at all raises
:class:`dagan.errors.InputError`. Randomness is drawn from ``numpy.random.default_rng([seed, epoch, index])``,
so an item is reproducible and independent of DataLoader worker scheduling; call ``set_epoch`` at the start
of each epoch to draw new pairs.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from dagan.config import AugmentationParams
from dagan.data.video import (
    VIDEO_EXTENSIONS,
    iter_frames,
    natural_key,
    probe_video,
    read_frames,
)
from dagan.errors import InputError

SPLITS = ("train", "test")
FrameShape = int | Sequence[int]


# --------------------------------------------------------------------------- scanning


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset split."""

    path: Path
    name: str  # file name without extension, or the frame folder's name
    identity: str
    split: str

    @property
    def ground_truth(self) -> Path | None:
        """``<name>.npz`` beside the video, when present."""
        gt = self.path.parent / f"{self.name}.npz"
        return gt if gt.is_file() else None


def identity_of(name: str) -> str:
    """Identity of a video name: the prefix before the first ``#``, else the whole name."""
    return name.split("#", 1)[0]


def _split_dir(root: str | os.PathLike[str], split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: '{root}'")
    return root / split


def _list_videos(folder: Path, split: str) -> list[VideoEntry]:
    entries = []
    for p in sorted(folder.iterdir(), key=lambda q: natural_key(q.name)):
        if p.name.startswith("."):
            continue  # hidden files, including our own half-written temporaries
        if p.is_dir():
            entries.append(VideoEntry(p, p.name, identity_of(p.name), split))
        elif p.suffix.lower() in VIDEO_EXTENSIONS:
            entries.append(VideoEntry(p, p.stem, identity_of(p.stem), split))
    return entries


def scan_videos(root: str | os.PathLike[str], split: str) -> list[VideoEntry]:
    """All videos of ``ROOT/<split>`` in natural name order (files are not opened). Raises InputError when
    the folder is missing or holds no videos."""
    folder = _split_dir(root, split)
    if not folder.is_dir():
        raise InputError(f"no videos found in {folder} (the folder does not exist)")
    entries = _list_videos(folder, split)
    if not entries:
        raise InputError(f"no videos found in {folder}")
    return entries


@dataclass
class SplitReport:
    split: str
    videos: int = 0
    readable: int = 0
    identities: int = 0
    frames: int = 0


@dataclass
class DatasetReport:
    """Result of :func:`check_dataset`: per-split counts and the unreadable videos with their reasons."""

    root: Path
    splits: dict[str, SplitReport] = field(default_factory=dict)
    bad: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def readable(self) -> int:
        return sum(s.readable for s in self.splits.values())

    def format(self) -> str:
        lines = [f"dataset {self.root}"]
        for s in self.splits.values():
            lines.append(f"  {s.split}: {s.readable}/{s.videos} videos readable, {s.identities} identities, "
                         f"{s.frames} frames")
        if self.bad:
            lines.append(f"  {len(self.bad)} unreadable:")
            lines.extend(f"    {path}: {reason}" for path, reason in self.bad)
        return "\n".join(lines)


def check_dataset(root: str | os.PathLike[str]) -> DatasetReport:
    """Probe every video of ``ROOT/train`` and ``ROOT/test``: counts, identities, frames, bad files."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: '{root}'")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise InputError(f"'{root}' has neither a train/ nor a test/ folder")
    report = DatasetReport(root)
    for split in present:
        entries = _list_videos(root / split, split)
        rep = SplitReport(split, videos=len(entries))
        ids = set()
        for entry in entries:
            try:
                info = probe_video(entry.path)
            except InputError as exc:
                report.bad.append((entry.path, str(exc)))
                continue
            rep.readable += 1
            rep.frames += info.num_frames
            ids.add(entry.identity)
        rep.identities = len(ids)
        report.splits[split] = rep
    return report


# --------------------------------------------------------------------------- augmentation


def _luma(img: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) of a 3×H×W image, as 1×H×W."""
    return (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """clip(f · I)."""
    return (img * factor).clamp(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """clip(m + f · (I − m)), m = mean luma of the image."""
    m = _luma(img).mean()
    return (m + factor * (img - m)).clamp(0.0, 1.0)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """clip(Y + f · (I − Y)) with the per-pixel luma Y (f = 0: grayscale)."""
    y = _luma(img)
    return (y + factor * (img - y)).clamp(0.0, 1.0)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the chroma plane (I, Q) of YIQ by 2π·shift (shift in turns, [−0.5, 0.5]); luma is kept.
    A linear stand-in for an HSV hue shift: shift = 0 is the identity and ±0.5 the opponent colours."""
    a = 2.0 * math.pi * shift
    c, s = math.cos(a), math.sin(a)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    m = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ
    return torch.einsum("ij,jhw->ihw", m.to(img.dtype), img).clamp(0.0, 1.0)


class Augmentation:
    """Same random transform for all frames of a clip: horizontal flip and time flip (each with probability
    1/2 when enabled) and colour jitter (factors uniform in [1−b, 1+b], [1−c, 1+c], [1−s, 1+s], hue shift
    in [−h, h], applied in a random order). Deterministic given the generator."""

    def __init__(self, params: AugmentationParams | None) -> None:
        self.params = params

    def __call__(self, frames: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
        p = self.params
        if p is None:
            return frames
        if p.flip_param.time_flip and rng.random() < 0.5:
            frames = frames[::-1]
        if p.flip_param.horizontal_flip and rng.random() < 0.5:
            frames = [f.flip(-1) for f in frames]
        j = p.jitter_param
        ops: list[tuple[Callable[[torch.Tensor, float], torch.Tensor], float]] = []
        if j.brightness > 0:
            ops.append((adjust_brightness, float(rng.uniform(1 - j.brightness, 1 + j.brightness))))
        if j.contrast > 0:
            ops.append((adjust_contrast, float(rng.uniform(1 - j.contrast, 1 + j.contrast))))
        if j.saturation > 0:
            ops.append((adjust_saturation, float(rng.uniform(1 - j.saturation, 1 + j.saturation))))
        if j.hue > 0:
            ops.append((adjust_hue, float(rng.uniform(-j.hue, j.hue))))
        for k in rng.permutation(len(ops)):
            fn, value = ops[k]
            frames = [fn(f, value) for f in frames]
        return list(frames)


# --------------------------------------------------------------------------- datasets


def frame_hw(frame_shape: FrameShape) -> tuple[int, int]:
    """(height, width) from an int (square) or a config ``frame_shape`` like [256, 256, 3]."""
    if isinstance(frame_shape, int):
        return frame_shape, frame_shape
    dims = list(frame_shape)
    if len(dims) < 2 or dims[0] <= 0 or dims[1] <= 0:
        raise ValueError(f"frame_shape must be an int or [height, width(, 3)], got {frame_shape}")
    return int(dims[0]), int(dims[1])


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)


class _VideoDatasetBase(Dataset):
    def __init__(self, root: str | os.PathLike[str], split: str, frame_shape: FrameShape, seed: int) -> None:
        self.root = Path(root)
        self.split = split
        self.entries = scan_videos(root, split)
        self.frame_hw = frame_hw(frame_shape)
        self.seed = int(seed)
        self.epoch = 0
        self._num_frames: dict[Path, int] = {}
        self._bad: set[Path] = set()

    def set_epoch(self, epoch: int) -> None:
        """Draw different frames/videos in each epoch (items stay reproducible per (seed, epoch, index))."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def num_frames(self, entry: VideoEntry) -> int:
        if entry.path not in self._num_frames:
            self._num_frames[entry.path] = probe_video(entry.path).num_frames
        return self._num_frames[entry.path]

    def _mark_bad(self, entry: VideoEntry, reason: str) -> None:
        if entry.path not in self._bad:
            self._bad.add(entry.path)
            warnings.warn(f"skipping unreadable video '{entry.path}': {reason}", RuntimeWarning, stacklevel=3)

    def _load_first_good(self, candidates: list[VideoEntry], rng: np.random.Generator) -> dict[str, object]:
        """Try the candidates in order, then random other videos; skip (and report) unreadable ones."""
        others = [self.entries[i] for i in rng.permutation(len(self.entries))]
        for entry in [*candidates, *others]:
            if entry.path in self._bad:
                continue
            try:
                return self._load(entry, rng)
            except (InputError, IndexError) as exc:
                self._mark_bad(entry, str(exc))
        raise InputError(f"no readable videos in {self.root / self.split}")

    def _load(self, entry: VideoEntry, rng: np.random.Generator) -> dict[str, object]:
        raise NotImplementedError


class FramePairDataset(_VideoDatasetBase):
    """(source, driving) frame pairs of one video, for reenactment training.

    Items: ``{"source": 3×H×W, "driving": 3×H×W}`` float32 in [0, 1] and ``"name"`` (the video name). With
    ``id_sampling`` an epoch has one item per identity (a random video of that identity), as in FOMM;
    otherwise one per video. Both lengths are multiplied by ``num_repeats``. The two frame indices are
    drawn uniformly with replacement and sorted; augmentation applies one random transform to both frames.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", frame_shape: FrameShape = 256,
                 id_sampling: bool = True, augmentation: AugmentationParams | None = None,
                 num_repeats: int = 1, seed: int = 0) -> None:
        super().__init__(root, split, frame_shape, seed)
        self.id_sampling = id_sampling
        self.num_repeats = int(num_repeats)
        self.augment = Augmentation(augmentation)
        groups: dict[str, list[VideoEntry]] = defaultdict(list)
        for e in self.entries:
            groups[e.identity].append(e)
        self.by_identity = dict(groups)
        self.identities = sorted(groups, key=natural_key)

    def __len__(self) -> int:
        base = len(self.identities) if self.id_sampling else len(self.entries)
        return base * self.num_repeats

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = self._rng(index)
        if self.id_sampling:
            group = self.by_identity[self.identities[index % len(self.identities)]]
            candidates = [group[i] for i in rng.permutation(len(group))]
        else:
            candidates = [self.entries[index % len(self.entries)]]
        return self._load_first_good(candidates, rng)

    def _load(self, entry: VideoEntry, rng: np.random.Generator) -> dict[str, object]:
        n = self.num_frames(entry)
        idx = np.sort(rng.choice(n, size=2, replace=True))
        frames = read_frames(entry.path, [int(i) for i in idx], size=self.frame_hw)
        source, driving = self.augment([to_tensor(f) for f in frames], rng)
        return {"source": source, "driving": driving, "name": entry.name}


class ConsecutiveFrameDataset(_VideoDatasetBase):
    """Frames t and t + ``frame_gap`` of one video, for self-supervised depth training.

    Items: ``frame_t``, ``frame_t1`` (3×H×W float32 in [0, 1]), ``name``, ``t``. When ``<name>.npz`` ground
    truth lies beside the video, also ``depth_t``, ``depth_t1`` (1×H×W float32, nearest-resized),
    ``mask_t``, ``mask_t1`` (1×H×W bool), ``pose_t``, ``pose_t1`` (4×4 camera-from-head) and ``intrinsics``
    (3×3, rescaled to the output size: f' = f·s, c' = (c + ½)·s − ½ for pixel centres at integers).
    One item per video per repeat; t is uniform over the valid range. Videos shorter than
    ``frame_gap + 1`` frames are skipped.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", frame_shape: FrameShape = 256,
                 frame_gap: int = 1, num_repeats: int = 1, seed: int = 0) -> None:
        super().__init__(root, split, frame_shape, seed)
        if frame_gap < 1:
            raise ValueError(f"frame_gap must be ≥ 1, got {frame_gap}")
        self.frame_gap = int(frame_gap)
        self.num_repeats = int(num_repeats)
        self._gt_cache: OrderedDict[Path, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries) * self.num_repeats

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = self._rng(index)
        return self._load_first_good([self.entries[index % len(self.entries)]], rng)

    def _ground_truth(self, path: Path) -> dict[str, np.ndarray]:
        if path not in self._gt_cache:
            with np.load(path, allow_pickle=False) as data:
                self._gt_cache[path] = {k: data[k] for k in ("depth", "mask", "pose", "intrinsics")}
            while len(self._gt_cache) > 4:  # a few clips' worth of depth maps per worker
                self._gt_cache.popitem(last=False)
        return self._gt_cache[path]

    def _load(self, entry: VideoEntry, rng: np.random.Generator) -> dict[str, object]:
        n = self.num_frames(entry)
        if n <= self.frame_gap:
            raise InputError(f"video '{entry.path}' has {n} frames, too few for frame_gap={self.frame_gap}")
        t = int(rng.integers(0, n - self.frame_gap))
        t1 = t + self.frame_gap
        frames = read_frames(entry.path, [t, t1], size=self.frame_hw)
        item: dict[str, object] = {"frame_t": to_tensor(frames[0]), "frame_t1": to_tensor(frames[1]),
                                   "name": entry.name, "t": t}
        if entry.ground_truth is not None:
            item.update(self._gt_item(entry.ground_truth, t, t1))
        return item

    def _gt_item(self, path: Path, t: int, t1: int) -> dict[str, torch.Tensor]:
        gt = self._ground_truth(path)
        h, w = self.frame_hw
        src_h, src_w = gt["depth"].shape[1:3]

        def resize(a: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(a)).float()[None, None]
            if (src_h, src_w) != (h, w):
                x = torch.nn.functional.interpolate(x, size=(h, w), mode="nearest-exact")
            return x[0]

        k = torch.from_numpy(gt["intrinsics"].astype(np.float32)).clone()
        sx, sy = w / src_w, h / src_h
        k[0, 0], k[1, 1] = k[0, 0] * sx, k[1, 1] * sy
        k[0, 2], k[1, 2] = (k[0, 2] + 0.5) * sx - 0.5, (k[1, 2] + 0.5) * sy - 0.5
        return {
            "depth_t": resize(gt["depth"][t]),
            "depth_t1": resize(gt["depth"][t1]),
            "mask_t": resize(gt["mask"][t]) > 0.5,
            "mask_t1": resize(gt["mask"][t1]) > 0.5,
            "pose_t": torch.from_numpy(gt["pose"][t].astype(np.float32)),
            "pose_t1": torch.from_numpy(gt["pose"][t1].astype(np.float32)),
            "intrinsics": k,
        }


class VideoFramesDataset(IterableDataset):
    """The frames of one video in order, for evaluation: items ``{"frame": 3×H×W float32, "index": i}``.

    Decoding streams (constant memory). With several DataLoader workers each decodes the video and keeps
    every ``num_workers``-th frame, so use ``num_workers=0`` (or 1) for speed and strict order.
    """

    def __init__(self, path: str | os.PathLike[str], frame_shape: FrameShape | None = None) -> None:
        self.path = Path(path)
        self.info = probe_video(self.path)
        self.frame_hw = frame_hw(frame_shape) if frame_shape is not None else None

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[dict[str, object]]:
        worker = get_worker_info()
        stride, offset = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        for i, frame in enumerate(iter_frames(self.path, size=self.frame_hw)):
            if i % stride == offset:
                yield {"frame": to_tensor(frame), "index": i}
