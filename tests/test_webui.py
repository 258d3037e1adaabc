"""``dagan webui``: the job behind the page (in process) and the page itself, served by a real ``dagan webui``
process and driven by headless Chromium (Debian's ``chromium`` and ``chromium-driver``; nothing is
downloaded). Set DAGAN_WEBUI_SCREENSHOT=docs/webui.png to keep the browser test's screenshot (the README's).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from dagan.assets import DEMO_DRIVING, DEMO_SOURCE
from dagan.data.video import VideoWriter, iter_frames, probe_video
from dagan.errors import InputError
from dagan.infer.depth_export import read_ply
from dagan.infer.options import AnimateOptions
from dagan.web.jobs import JobCancelled, Limits, ProgressMeter, check_upload, describe_error, job_folder, run_job
from dagan.web.pointcloud import grid_triangles, write_glb

ROOT = Path(__file__).resolve().parents[1]
DAGAN = Path(sys.executable).with_name("dagan")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12 frames of the bundled clip, with its audio (30 fps)."""
    path = tmp_path_factory.mktemp("webui") / "short clip.mp4"
    with VideoWriter(path, probe_video(DEMO_DRIVING).rate, audio_from=DEMO_DRIVING, preset="ultrafast") as w:
        for i, frame in enumerate(iter_frames(DEMO_DRIVING)):
            if i == 12:
                break
            w.write(frame)
    return path


def _read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    gltf = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00" and bin_len == gltf["buffers"][0]["byteLength"]
    return gltf, data[28 + json_len : 28 + json_len + bin_len]


# --------------------------------------------------------------------------- in process


def test_glb_holds_the_points_colours_and_triangles(tmp_path: Path) -> None:
    h, w = 3, 4
    rng = np.random.default_rng(0)
    points = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
    points = np.concatenate([points, rng.uniform(1, 2, (h * w, 1))], 1).astype(np.float32)
    colours = rng.integers(0, 256, (h * w, 3), dtype=np.uint8)
    tri = grid_triangles(h, w)
    assert tri.shape == (2 * (h - 1) * (w - 1), 3) and tri.max() == h * w - 1
    gltf, blob = _read_glb(write_glb(tmp_path / "s.glb", points, colours, tri))
    prim = gltf["meshes"][0]["primitives"][0]
    assert prim["mode"] == 4 and gltf["accessors"][prim["indices"]]["count"] == tri.size
    views = gltf["bufferViews"]
    pos_view = views[gltf["accessors"][0]["bufferView"]]
    pos = np.frombuffer(blob, np.float32, h * w * 3, pos_view["byteOffset"]).reshape(-1, 3)
    np.testing.assert_allclose(pos.min(0), gltf["accessors"][0]["min"])
    # y and z are flipped into glTF's axes (y up, looking along -z): x order kept, depth order reversed
    assert np.array_equal(np.argsort(pos[:, 0], kind="stable"), np.argsort(points[:, 0], kind="stable"))
    assert np.array_equal(np.argsort(-pos[:, 2], kind="stable"), np.argsort(points[:, 2], kind="stable"))
    rgba = np.frombuffer(blob, np.uint8, h * w * 4, views[1]["byteOffset"]).reshape(-1, 4)
    assert np.array_equal(rgba[:, :3], colours) and (rgba[:, 3] == 255).all()
    idx = np.frombuffer(blob, np.uint32, tri.size, views[2]["byteOffset"]).reshape(-1, 3)
    assert np.array_equal(idx, tri)
    gltf, _ = _read_glb(write_glb(tmp_path / "p.glb", points, colours))  # no triangles: a point cloud
    assert gltf["meshes"][0]["primitives"][0]["mode"] == 0


def test_only_uploaded_files_are_opened(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    (uploads / "abc" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    assert check_upload(uploads / "abc" / "a.mp4", uploads, "driving video") == (uploads / "abc" / "a.mp4").resolve()
    assert check_upload(None, uploads, "driving video") is None
    for outside in (tmp_path / "secret.txt", uploads / ".." / "secret.txt", "/etc/passwd"):
        with pytest.raises(InputError, match="only files uploaded through this page"):
            check_upload(outside, uploads, "driving video")
    (uploads / "link.mp4").symlink_to(tmp_path / "secret.txt")  # a link out of the folder is outside too
    with pytest.raises(InputError):
        check_upload(uploads / "link.mp4", uploads, "driving video")


@pytest.fixture(scope="module")
def animator():  # noqa: ANN201
    from dagan.infer.animator import Animator

    return Animator.from_checkpoint(None, device="cpu")


def test_no_face_message_names_the_page_control() -> None:
    """A picture without a face: the page says which control to change, not the command-line option."""
    from dagan.infer.source import FaceModels

    with pytest.raises(InputError) as info:
        FaceModels().crop_face(np.full((96, 96, 3), 128, np.uint8), 64)
    message = describe_error(info.value)
    assert "--no-crop" in str(info.value) and "--" not in message
    assert "untick 'crop the faces'" in message


def test_job_writes_every_output_and_reports_progress(animator, clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    reports: list[tuple[float, str]] = []
    with job_folder(tmp_path / "jobs") as folder:
        out = run_job(animator, DEMO_SOURCE, clip, AnimateOptions(max_frames=5), folder, Limits(),
                      ProgressMeter(lambda f, t: reports.append((f, t))))
        result = probe_video(out.result)
        assert (result.num_frames, result.fps, result.has_audio) == (5, 30.0, True)
        side = probe_video(out.side_by_side)
        assert (side.num_frames, side.has_audio, side.height) == (5, True, 256)
        assert side.width == 4 * 256  # source | driving | result | depth
        points, colours = read_ply(out.points_ply)
        assert points.shape == (128 * 128, 3) and colours is not None and np.isfinite(points).all()
        assert _read_glb(out.points_glb)[0]["accessors"][0]["count"] == 128 * 128
        assert out.depth_png.stat().st_size > 0 and not (folder / "frames").exists()
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in out.downloads)
        assert "5 frames" in out.summary and "with audio" in out.summary
    assert not folder.exists()  # the job folder goes when the job is over
    texts = [t for _, t in reports]
    assert any(t.startswith("animating: 5/5 frames") and "fps" in t and "ETA 0 s" in t for t in texts), texts
    assert any(t.startswith("finding faces: ") for t in texts) and reports[-1][0] == 1.0


def test_cancel_stops_the_job_and_leaves_nothing(animator, clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    meter = ProgressMeter()
    calls = []

    def cancel_after_first(fraction: float, text: str) -> None:
        calls.append(text)
        meter.cancel.set()  # what the page's Cancel button does

    meter.report = cancel_after_first
    with pytest.raises(JobCancelled), job_folder(tmp_path / "jobs") as folder:
        run_job(animator, DEMO_SOURCE, clip, AnimateOptions(), folder, Limits(), meter)
    assert len(calls) == 1 and not folder.exists()
    assert list((tmp_path / "jobs").iterdir()) == []


def test_limits_refuse_long_videos_and_huge_pictures(animator, clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=r"12 frames at 30 fps is 0.4 s; this server animates at most 0.2 s"):
        run_job(animator, DEMO_SOURCE, clip, AnimateOptions(), tmp_path, Limits(max_video_seconds=0.2))
    # 'max frames' brings a long video within the limit
    with pytest.raises(InputError, match=r"512×512 \(0 megapixels\); this server accepts at most 0.1"):
        run_job(animator, DEMO_SOURCE, clip, AnimateOptions(max_frames=3), tmp_path,
                Limits(max_video_seconds=0.2, max_image_megapixels=0.1))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a real server and browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """``dagan webui`` as a real process; its output lines are collected by a thread."""

    def __init__(self, port: int) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [str(DAGAN), "webui", "--port", str(port), "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


def _browser():  # noqa: ANN202
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the 'test' extra)")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2300",
                "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist",
                "--hide-scrollbars"):
        opts.add_argument(arg)  # swiftshader: software WebGL for the 3-D viewer
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # the local server only
        return response.read()


@pytest.mark.slow
def test_page_animates_in_a_real_browser_and_survives_a_corrupt_video(clip: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed (the 'web' extra)")
    driver = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = _Server(port)
    try:
        url = server.wait_for(r"serving on (http://127\.0\.0\.1:\d+/)", timeout=120).group(1)
        assert url == f"http://127.0.0.1:{port}/"
        root = Path(server.wait_for(r"temporary files in (\S+) ", timeout=10).group(1))
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        css = driver.find_elements
        wait.until(lambda d: css(By.CSS_SELECTOR, "#source-image input[type=file]"))
        assert "bundled 64×64 demo model" in driver.find_element(By.ID, "model-note").text

        def upload(photo: Path, driving: Path) -> None:
            wait.until(lambda d: css(By.CSS_SELECTOR, "#driving-video input[type=file]"))
            css(By.CSS_SELECTOR, "#source-image input[type=file]")[0].send_keys(str(photo))
            css(By.CSS_SELECTOR, "#driving-video input[type=file]")[0].send_keys(str(driving))
            wait.until(lambda d: css(By.CSS_SELECTOR, "#source-image img"))

        def status() -> str:
            return driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value") or ""

        # 1. the bundled photo and a short clip, 8 frames
        upload(DEMO_SOURCE, clip)
        wait.until(lambda d: css(By.CSS_SELECTOR, "#driving-video video"))
        max_frames = driver.find_element(By.CSS_SELECTOR, "#max-frames input")
        max_frames.clear()
        max_frames.send_keys("8\t")
        wait.until(lambda d: max_frames.get_attribute("value") == "8")
        driver.find_element(By.ID, "animate-btn").click()
        WebDriverWait(driver, 120).until(lambda d: status().startswith(("done:", "dagan: error:")))
        assert status().startswith("done: 8 frames, 512×512, 30 fps with audio"), status()
        links = {Path(a.get_attribute("download") or a.text).name: a.get_attribute("href")
                 for a in css(By.CSS_SELECTOR, "#downloads a")}
        result = tmp_path / "result.mp4"
        result.write_bytes(_fetch(next(v for k, v in links.items() if k.startswith("result"))))
        with av.open(str(result)) as video:
            frames = sum(1 for _ in video.decode(video=0))
            assert frames == 8
            assert float(video.streams.video[0].average_rate) == 30.0
            assert len(video.streams.audio) == 1
        # the depth map and the 3-D view are on the page
        depth = wait.until(lambda d: css(By.CSS_SELECTOR, "#depth-image img"))[0]
        assert _fetch(depth.get_attribute("src"))[:8] == b"\x89PNG\r\n\x1a\n"
        model = wait.until(lambda d: css(By.CSS_SELECTOR, "#point-cloud [data-testid=model3d-download-link]"))[0]
        assert _fetch(model.get_attribute("href"))[:4] == b"glTF"
        # the 3-D viewer starts once it is on screen
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", model)
        wait.until(lambda d: css(By.CSS_SELECTOR, "#point-cloud canvas[data-engine]"))
        wait.until(lambda d: d.execute_script(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('.glb'))"))
        driver.execute_script("window.scrollTo(0, 0)")
        assert css(By.CSS_SELECTOR, "#result-video video") and css(By.CSS_SELECTOR, "#side-video video")
        assert list((root / "jobs").iterdir()) == []  # the job's own folder is gone
        time.sleep(2)  # let the 3-D viewer draw before the picture is taken
        driver.save_screenshot(str(tmp_path / "webui.png"))
        if target := os.environ.get("DAGAN_WEBUI_SCREENSHOT"):
            shutil.copyfile(tmp_path / "webui.png", target)

        # 2. a text file named .mp4: the CLI's one-line message in the page, and the server goes on
        bad = tmp_path / "not a video.mp4"
        bad.write_text("this is not a video\n")
        with pytest.raises(InputError) as cli_error:
            probe_video(bad)  # what 'dagan animate' reports for it
        expected = "dagan: error: " + str(cli_error.value).replace(str(bad), bad.name)
        driver.get(url)  # a fresh page
        wait.until(lambda d: css(By.CSS_SELECTOR, "#source-image input[type=file]"))
        upload(DEMO_SOURCE, bad)
        driver.find_element(By.ID, "animate-btn").click()
        WebDriverWait(driver, 60).until(lambda d: status().startswith("dagan: error:"))
        assert status() == expected
        wait.until(lambda d: expected in d.find_element(By.TAG_NAME, "body").text)  # the toast, too
        assert server.proc.poll() is None
        assert b"<html" in _fetch(url).lower()
    finally:
        driver.quit()
        code = server.stop()
    assert code == 0, "\n".join(server.lines)
    assert not root.exists()  # uploads, results and jobs all removed on exit
    assert not any("Traceback" in line for line in server.lines), "\n".join(server.lines)


@pytest.mark.slow
def test_busy_port_is_one_line_before_the_model_loads() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([str(DAGAN), "webui", "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    message = f"cannot listen on 127.0.0.1:{port}: the port is in use (choose another --port)"
    assert proc.stderr == f"dagan: error: {message}\n"
    assert proc.stdout == ""
