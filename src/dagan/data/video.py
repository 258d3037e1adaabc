"""Streaming video and image IO on PyAV (FFmpeg in-process) and Pillow.

Frames are H×W×3 ``uint8`` RGB numpy arrays. Nothing here loads a whole video into memory: readers decode
frame by frame, :func:`read_frames` decodes only up to (or seeks near) the frames asked for, and
:class:`VideoWriter` encodes frames as they arrive.

A *frame folder* (a directory of images ``0000000.png``, ``0000001.png``, … in natural sort order) is
accepted wherever a video path is, with :data:`FRAME_FOLDER_FPS` frames per second;
:mod:`dagan.data.frame_folder_writer` writes them.

Every problem with an input file (missing, empty, corrupt, truncated, no video stream, no frames) raises
:class:`dagan.errors.InputError` with one line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np
from PIL import Image, ImageOps

from dagan.atomic_files import temporary_file_beside
from dagan.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: Frame rate assumed for a folder of frames (VoxCeleb's rate; folders carry no timing).
FRAME_FOLDER_FPS = 25.0
#: read_frames seeks instead of decoding on when the next wanted frame is more than this many frames ahead.
SEEK_GAP = 64

Size = int | tuple[int, int]


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found out about a video file or frame folder."""

    path: Path
    num_frames: int
    fps: float
    rate: Fraction  # exact frame rate (e.g. 30000/1001); use it to write a copy at the same speed
    width: int
    height: int
    has_audio: bool
    duration: float  # seconds
    is_folder: bool = False


# --------------------------------------------------------------------------- helpers


def _reason(exc: BaseException) -> str:
    """A short one-line reason from an FFmpeg/PIL/OS exception."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        text = str(exc.strerror)
    else:
        text = str(exc) or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} not found: '{path}'")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{what} '{path}' is empty (0 bytes)")


def natural_key(name: str) -> list[object]:
    """Sort key that orders digit runs numerically: frame2 < frame10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of a frame folder in natural order (``2.png`` before ``10.png``); hidden files skipped."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory (a frame folder is any directory given as a video)."""
    return Path(path).is_dir()


def _folder_frames(folder: Path) -> list[Path]:
    files = list_frame_files(folder)
    if not files:
        raise InputError(f"frame folder '{folder}' contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _as_hw(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {size}")
    return h, w


def resize_rgb(image: np.ndarray, size: Size) -> np.ndarray:
    """Resize an H×W×3 uint8 image to ``size`` (int → square, or (height, width)) with antialiased
    bilinear filtering; the aspect ratio is not kept (datasets are pre-cropped)."""
    h, w = _as_hw(size)
    if image.shape[:2] == (h, w):
        return image
    return np.array(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def _open(path: Path) -> av.container.InputContainer:
    _check_exists(path, "video")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read video '{path}': {_reason(exc)}") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        if not kinds:  # e.g. an MP4 whose only track never got a frame
            raise InputError(f"'{path}' contains no streams (no video frames)")
        raise InputError(f"'{path}' has no video stream (it has only {', '.join(kinds)} streams)")
    return container.streams.video[0]


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r is not None and r > 0:
            return Fraction(r.numerator, r.denominator)
    return None


def _to_fraction(fps: float | Fraction) -> Fraction:
    """Exact rate from a float: 29.97 → 2997/100, 29.97002997 → 30000/1001, 25.0 → 25."""
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


# --------------------------------------------------------------------------- reading


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, rate, size, audio and duration of a video file or frame folder.

    The frame count comes from the container header when present (and is checked against the packets
    actually stored, which catches truncated files); otherwise frames are decoded and counted. The first
    frame is always decoded, so a file that probes fine can be read.
    """
    path = Path(path)
    _check_exists(path, "video")
    if path.is_dir():
        files = _folder_frames(path)
        first_image = read_image(files[0])
        folder_rate = _to_fraction(FRAME_FOLDER_FPS)
        return VideoInfo(path, len(files), float(folder_rate), folder_rate, first_image.shape[1],
                         first_image.shape[0], False, len(files) / float(folder_rate), is_folder=True)
    with _open(path) as container:
        stream = _video_stream(container, path)
        header = int(stream.frames or 0)
        has_audio = bool(container.streams.audio)
        try:
            packets = sum(1 for p in container.demux(stream) if p.size and not p.is_discard)
            container.seek(0)
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read video '{path}': {_reason(exc)}") from None
        if first is None or packets == 0:
            raise InputError(f"video '{path}' contains no frames")
        if header > 0 and packets < header:
            raise InputError(f"video '{path}' is truncated: the header lists {header} frames, "
                             f"only {packets} are stored")
        width, height = first.width, first.height
        num_frames = header if header > 0 else _decode_count(container, stream, path)
        rate = _rate(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        if rate is None:
            rate = _to_fraction(num_frames / duration if duration > 0 else FRAME_FOLDER_FPS)
        if duration <= 0:
            duration = num_frames / float(rate)
    return VideoInfo(path, num_frames, float(rate), rate, width, height, has_audio, duration)


def _decode_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  path: Path) -> int:
    container.seek(0)
    try:
        count = sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode video '{path}': {_reason(exc)}") from None
    if count == 0:
        raise InputError(f"video '{path}' contains no frames")
    return count


def iter_frames(path: str | os.PathLike[str], size: Size | None = None) -> Generator[np.ndarray, None, None]:
    """Yield the frames of a video file or frame folder in order, as H×W×3 uint8 RGB (resized to ``size``
    when given: int → square, or (height, width)). Memory use does not depend on the video length."""
    path = Path(path)
    _check_exists(path, "video")
    if path.is_dir():
        for file in _folder_frames(path):
            image = read_image(file)
            yield resize_rgb(image, size) if size is not None else image
        return
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        count = 0
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as exc:
                raise InputError(f"cannot decode video '{path}' at frame {count}: {_reason(exc)}") from None
            if frame is None:
                break
            image = frame.to_ndarray(format="rgb24")
            count += 1
            yield resize_rgb(image, size) if size is not None else image
        if count == 0:
            raise InputError(f"video '{path}' contains no frames")
        if stream.frames and count < stream.frames:  # threaded decoding ends quietly on cut data
            raise InputError(f"video '{path}' is truncated: the header lists {stream.frames} frames, "
                             f"only {count} could be decoded")


@functools.lru_cache(maxsize=512)
def _pts_table_cached(path: str, mtime_ns: int, size: int) -> tuple[int, ...] | None:
    """Presentation timestamps of all frames in display order, from demuxing only (no decoding);
    None when some packet has no timestamp (then frames are found by counting)."""
    del mtime_ns, size  # cache key only: a rewritten file is demuxed again
    with av.open(path) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size and not p.is_discard]
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return None
    return tuple(sorted(pts))


def _pts_table(path: Path) -> tuple[int, ...] | None:
    st = path.stat()
    return _pts_table_cached(str(path), st.st_mtime_ns, st.st_size)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int], size: Size | None = None,
                seek_gap: int = SEEK_GAP) -> np.ndarray:
    """Frames ``indices`` (any order, repeats allowed) of a video or frame folder as N×H×W×3 uint8.

    Frames are decoded in display order from the start, or — when the next wanted frame is more than
    ``seek_gap`` frames ahead — after seeking to the key frame before it. Frame ``i`` is the one with the
    ``i``-th smallest timestamp, which is exactly the ``i``-th frame :func:`iter_frames` yields.
    Raises IndexError for an index outside the video.
    """
    path = Path(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("read_frames needs at least one index")
    if min(indices) < 0:
        raise IndexError(f"negative frame index {min(indices)} for '{path}'")
    _check_exists(path, "video")
    if path.is_dir():
        files = _folder_frames(path)
        if max(indices) >= len(files):
            raise IndexError(f"frame {max(indices)} requested from '{path}', which has {len(files)} frames")
        found = {i: read_image(files[i]) for i in set(indices)}
    else:
        found = _decode_wanted(path, sorted(set(indices)), seek_gap)
    frames = [found[i] for i in indices]
    if size is not None:
        frames = [resize_rgb(f, size) for f in frames]
    return np.stack(frames)


def _decode_wanted(path: Path, wanted: list[int], seek_gap: int) -> dict[int, np.ndarray]:
    try:
        table = _pts_table(path)
    except (av.error.FFmpegError, OSError, IndexError):
        table = None  # unreadable: let _open/_video_stream below report it properly
    found: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            if table is not None:
                if wanted[-1] >= len(table):
                    raise IndexError(f"frame {wanted[-1]} requested from '{path}', "
                                     f"which has {len(table)} frames")
                if _decode_with_seeks(container, stream, table, wanted, seek_gap, found):
                    return found
                found.clear()
                container.seek(0)
            # fallback: count frames from the start
            remaining = set(wanted)
            for i, frame in enumerate(container.decode(stream)):
                if i in remaining:
                    found[i] = frame.to_ndarray(format="rgb24")
                    remaining.discard(i)
                    if not remaining:
                        break
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode video '{path}': {_reason(exc)}") from None
    if len(found) < len(wanted):
        missing = min(set(wanted) - set(found))
        raise IndexError(f"frame {missing} requested from '{path}', which ended before it")
    return found


def _decode_with_seeks(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                       table: tuple[int, ...], wanted: list[int], seek_gap: int,
                       found: dict[int, np.ndarray]) -> bool:
    """Decode ``wanted`` (sorted) using the timestamp table; False if timestamps do not match the table."""
    index_of = {p: i for i, p in enumerate(table)}
    k, pos = 0, -1  # next wanted position in `wanted`; index of the last decoded frame
    while k < len(wanted):
        if wanted[k] - pos > seek_gap:
            container.seek(table[wanted[k]], stream=stream, backward=True, any_frame=False)
        progressed = False
        for frame in container.decode(stream):
            idx = index_of.get(frame.pts) if frame.pts is not None else None
            if idx is None:
                return False
            progressed, pos = True, idx
            if idx > wanted[k]:
                return False  # decoder skipped a wanted frame: do not trust the seek
            if idx == wanted[k]:
                found[idx] = frame.to_ndarray(format="rgb24")
                k += 1
                # seek again only right after a hit, so a seek always makes progress
                if k == len(wanted) or wanted[k] - pos > seek_gap:
                    break
        if not progressed:
            return False
    return True


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB.

    Conversions (the image is converted, never refused): grayscale → RGB by repeating the channel;
    16-bit → 8-bit by ``round(v / 257)``; transparency (RGBA, LA, palette with alpha) → composited on
    white, ``rgb·α + 255·(1−α)``; CMYK/palette → RGB; the EXIF orientation is applied.
    """
    path = Path(path)
    _check_exists(path, "image")
    if path.is_dir():
        raise InputError(f"expected an image file, got the folder '{path}'")
    try:
        with Image.open(path) as img:
            img.load()
            return _pil_to_rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image '{path}': {_reason(exc)}") from None


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        # 16-bit data; mode "I" (32-bit) with values ≤ 255 holds 8-bit data
        scale = 1.0 if mode == "I" and arr.max(initial=0) <= 255 else 1.0 / 257.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


# --------------------------------------------------------------------------- writing


_COPYABLE_AUDIO = {"aac", "mp3", "alac"}


class VideoWriter:
    """Streaming H.264 (libx264, yuv420p) writer; use as a context manager.

    Frames (H×W×3 uint8, or float in [0, 1]) are encoded as they are written, at ``fps`` (a float or a
    Fraction; 29.97 and 30000/1001 are kept exact). Odd widths/heights are padded by one replicated
    row/column, since yuv420p needs even sizes. With ``audio_from`` (a video or audio file), its first audio
    stream is added: copied when the codec fits MP4 (AAC/MP3/ALAC), otherwise re-encoded to AAC; audio past
    the end of the video is dropped. A source without audio gives a silent video. ``options`` are extra
    libx264 options (e.g. ``{"g": "10"}`` for a key frame every 10 frames).

    The file is written to a hidden temporary file in the same folder and renamed to ``path`` on a
    successful :meth:`close`; on an exception inside the ``with`` block the temporary file is removed.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | Fraction = 25.0, *,
                 audio_from: str | os.PathLike[str] | None = None, crf: int = 18,
                 preset: str = "medium", options: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.options = dict(options or {})
        self.rate = _to_fraction(fps)
        self.crf = int(crf)
        self.preset = preset
        self.audio_from = Path(audio_from) if audio_from is not None else None
        if self.audio_from is not None:
            _check_exists(self.audio_from, "audio source")
        self.frames_written = 0
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_out: av.audio.stream.AudioStream | None = None
        self._audio_copy = True
        self._size: tuple[int, int] | None = None  # (height, width) of the frames written
        self._closed = False

    # context manager ---------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # writing -----------------------------------------------------------------
    def _start(self, height: int, width: int) -> None:
        self._size = (height, width)
        self._tmp = temporary_file_beside(self.path, keep_extension=True)  # FFmpeg reads the extension
        self._container = av.open(str(self._tmp), mode="w", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        stream.options = {"crf": str(self.crf), "preset": self.preset, **self.options}
        self._stream = stream
        if self.audio_from is not None:
            self._add_audio_stream()

    def _add_audio_stream(self) -> None:
        assert self._container is not None and self.audio_from is not None
        if self.audio_from.is_dir():
            return
        src = _open(self.audio_from)
        if not src.streams.audio:
            src.close()
            return
        a_in = src.streams.audio[0]
        self._audio_in = src
        self._audio_copy = a_in.codec_context.name in _COPYABLE_AUDIO
        if self._audio_copy:
            self._audio_out = self._container.add_stream_from_template(a_in)
        else:
            out = self._container.add_stream("aac", rate=a_in.codec_context.sample_rate or 48000)
            # an unordered layout ("1 channels", common in WAV) is refused by AAC: name it by channel count
            out.layout = "mono" if a_in.codec_context.channels == 1 else "stereo"
            out.format = "fltp"  # the native AAC encoder's only sample format
            self._audio_out = out

    def write(self, frame: np.ndarray) -> None:
        """Encode one H×W×3 frame (uint8, or float in [0, 1])."""
        if self._closed:
            raise RuntimeError(f"VideoWriter for '{self.path}' is closed")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 frame, got shape {frame.shape}")
        if frame.dtype != np.uint8:
            frame = np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        h, w = frame.shape[:2]
        if self._size is None:
            self._start(h, w)
        elif (h, w) != self._size:
            first = f"{self._size[1]}×{self._size[0]}"
            raise ValueError(f"frame size {w}×{h} differs from the first frame's {first}")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        assert self._container is not None and self._stream is not None
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames_written
        vf.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(vf))
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def _mux_audio(self) -> None:
        assert self._container is not None and self._audio_in is not None and self._audio_out is not None
        a_in = self._audio_in.streams.audio[0]
        end = self.frames_written / self.rate  # seconds of video
        if self._audio_copy:
            for packet in self._audio_in.demux(a_in):
                if packet.dts is None or packet.pts is None:
                    continue
                if packet.time_base is not None and packet.pts * packet.time_base >= end:
                    break
                packet.stream = self._audio_out
                self._container.mux(packet)
            return
        for frame in self._audio_in.decode(a_in):
            if frame.pts is not None and frame.time_base is not None and frame.pts * frame.time_base >= end:
                break
            frame.pts = None  # let the encoder number the samples
            self._container.mux(self._audio_out.encode(frame))
        self._container.mux(self._audio_out.encode(None))

    def close(self) -> None:
        """Flush the encoder, add the audio, and move the finished file to ``path``."""
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"no frames were written to '{self.path}'")
        assert self._container is not None and self._stream is not None and self._tmp is not None
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio_in is not None:
                self._mux_audio()
            self._container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop without producing ``path``; the temporary file is removed."""
        self._closed = True
        for c in (self._container, self._audio_in):
            if c is not None:
                with contextlib.suppress(Exception):  # a broken container must not mask the real error
                    c.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
