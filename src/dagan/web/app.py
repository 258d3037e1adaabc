"""The ``dagan webui`` page (Gradio Blocks) and its server.

Layout: the inputs (a source photo — upload, webcam snapshot or clipboard — or a source video, and a
driving video — upload or webcam recording), the options of ``dagan animate``, one Animate button with a
progress bar and Cancel, then the outputs: the result video (with the driving audio), the side-by-side
video, the source's depth map and its 3-D view, and every file for download. An Examples row holds the
bundled photo and clip.

Every job runs :func:`dagan.web.jobs.run_job` — the video job of :meth:`Animator.animate`, the same as
``dagan animate`` — in a folder of its own that is removed once the page has its results. Jobs are queued
(``concurrency`` at a time). A user mistake shows the CLI's one-line message in the page; the server goes
on serving.
"""

from __future__ import annotations

import html
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from dagan.errors import DaganError, InputError
from dagan.infer.options import AnimateOptions
from dagan.web.jobs import (
    JobCancelled,
    Limits,
    ProgressMeter,
    check_upload,
    describe_error,
    job_folder,
    run_job,
)

__all__ = ["PageSettings", "build_app"]

ANCHORS = ("first frame", "best-matching frame (landmarks)", "chosen frame")
MODES = ("relative", "absolute")
# System fonts only: the page makes no request outside this server.
_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
_MONO = ["ui-monospace", "monospace"]
_CSS = """
#status textarea { font-family: ui-monospace, monospace; }
footer { display: none !important; }
"""


@dataclass(frozen=True)
class PageSettings:
    """What the page needs besides the model."""

    model_note: str  # which model is loaded (shown at the top of the page)
    work_root: Path  # per-job folders are created (and removed) here
    limits: Limits = Limits()
    concurrency: int = 1  # jobs run at the same time; the others wait in the queue
    max_queue: int = 20  # jobs waiting at most; more are turned away
    examples: tuple[tuple[str, str], ...] = ()  # (source photo, driving video) pairs


class _Jobs:
    """Cancel flags of the running jobs, one per browser session, and a gate that lets ``concurrency``
    jobs work at once (a cancelled job's thread may still be finishing its batch when the queue starts
    the next one)."""

    def __init__(self, concurrency: int) -> None:
        self.gate = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}

    def start(self, session: str) -> threading.Event:
        with self._lock:
            event = self._cancel[session] = threading.Event()
        return event

    def finish(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._cancel.get(session) is event:
                del self._cancel[session]

    def cancel(self, session: str) -> bool:
        with self._lock:
            event = self._cancel.get(session)
        if event is not None:
            event.set()
        return event is not None


def _hand_over_uploads(image: gr.Image) -> gr.Image:
    """Make ``image`` pass the uploaded file on untouched: dagan's own reader checks it and gives the CLI's
    message for a corrupt or huge picture (Gradio would open it first, with its own error). Set on the
    instance: a subclass of a Gradio component makes Gradio write a ``.pyi`` file beside this module."""
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None and payload.path and not str(payload.url or "").startswith("data:"):
            return str(payload.path)
        return original(payload)

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def build_app(animator: Any, settings: PageSettings) -> tuple[Any, dict[str, Any]]:
    """The page as a ``gradio.Blocks`` (queue configured) and the keyword arguments its ``launch()`` needs
    for the look (theme and style sheet)."""
    jobs = _Jobs(settings.concurrency)
    theme = gr.themes.Default(font=_FONTS, font_mono=_MONO)

    with gr.Blocks(title="DaGAN++ — animate a face", delete_cache=(900, 3600)) as app:
        gr.Markdown(
            "# DaGAN++ — depth-aware face animation\n"
            "Drop a face photo and a driving video, press **Animate**. The model first estimates the "
            "face's depth (shown below as a map and in 3-D), then moves the face like the driving video."
        )
        gr.Markdown(settings.model_note, elem_id="model-note")
        with gr.Row():
            with gr.Column():
                with gr.Tab("Source photo"):
                    source_image = _hand_over_uploads(gr.Image(
                        label="source face (photo or webcam snapshot)",
                        type="filepath",
                        sources=["upload", "webcam", "clipboard"],
                        elem_id="source-image",
                        height=320,
                    ))
                with gr.Tab("Source video"):
                    source_video = gr.Video(
                        label="source video (its first frame is animated)",
                        sources=["upload"],
                        elem_id="source-video",
                        height=320,
                    )
            with gr.Column():
                driving_video = gr.Video(
                    label="driving video (upload or webcam recording)",
                    sources=["upload", "webcam"],
                    elem_id="driving-video",
                    height=320,
                )
        # the Examples row sits right under the inputs it fills
        examples_slot = gr.Column()
        with gr.Accordion("Options (those of 'dagan animate')", open=True), gr.Row():
            with gr.Column(min_width=220):
                mode = gr.Radio(list(MODES), value="relative", label="motion", elem_id="mode",
                                info="relative: motion from an anchor frame; absolute: keypoints as they are")
                adapt_scale = gr.Checkbox(value=True, label="adapt scale (faces' size ratio)", elem_id="adapt-scale")
            with gr.Column(min_width=220):
                anchor = gr.Radio(list(ANCHORS), value=ANCHORS[0], label="anchor frame (relative motion)",
                                  elem_id="anchor")
                anchor_frame = gr.Number(value=0, precision=0, minimum=0, label="chosen anchor frame",
                                         elem_id="anchor-frame")
            with gr.Column(min_width=220):
                crop = gr.Checkbox(value=True, label="crop the faces", elem_id="crop")
                crop_scale = gr.Slider(1.0, 3.0, value=1.8, step=0.05, label="crop scale (crop side / face box)",
                                       elem_id="crop-scale")
                paste_back = gr.Checkbox(value=True, label="paste back into the full photo", elem_id="paste-back")
            with gr.Column(min_width=220):
                smooth = gr.Slider(0.0, 5.0, value=0.0, step=0.1, label="smoothing (One-Euro cutoff, Hz; 0 = off)",
                                   elem_id="smooth")
                max_frames = gr.Number(value=0, precision=0, minimum=0, label="max frames (0 = all)",
                                       elem_id="max-frames")
                audio = gr.Checkbox(value=True, label="keep the driving audio", elem_id="audio")
        with gr.Row():
            animate_btn = gr.Button("Animate", variant="primary", elem_id="animate-btn", scale=3)
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn", scale=1)
        status = gr.Textbox(label="status", interactive=False, lines=1, elem_id="status")
        with gr.Row():
            result_video = gr.Video(label="result (with the driving audio)", interactive=False,
                                    elem_id="result-video", height=360)
            side_video = gr.Video(label="side by side: source | driving | result | source depth",
                                  interactive=False, elem_id="side-video", height=360)
        with gr.Row():
            depth_image = gr.Image(label="source depth (near is bright)", interactive=False, type="filepath",
                                   elem_id="depth-image", height=360, format="png")
            cloud = gr.Model3D(label="source in 3-D (depth point cloud, meshed; drag to turn)",
                               elem_id="point-cloud", height=360, clear_color=(0.12, 0.12, 0.14, 1.0),
                               camera_position=(78, 84, 2.0))  # turned a little: the relief shows
        downloads = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="downloads")
        if settings.examples:
            with examples_slot:
                gr.Examples(examples=[list(e) for e in settings.examples], inputs=[source_image, driving_video],
                            label="examples (the bundled photo and clip)", cache_examples=False)

        upload_root = Path(source_image.GRADIO_CACHE)
        outputs = [result_video, side_video, depth_image, downloads, status]

        def animate(
            photo: str | None,
            source_clip: str | None,
            driving: str | None,
            mode_: str,
            adapt_scale_: bool,
            anchor_: str,
            anchor_frame_: float | None,
            crop_: bool,
            crop_scale_: float,
            paste_back_: bool,
            smooth_: float,
            max_frames_: float | None,
            audio_: bool,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 — Gradio's way of asking for a progress bar
        ) -> Iterator[tuple[Any, ...]]:
            session = request.session_hash or "anonymous"
            cancel = jobs.start(session)
            named: dict[str, str] = {}  # upload path → the name the user knows, for messages
            try:
                paths = {}
                for key, value, what in (("photo", photo, "source photo"), ("clip", source_clip, "source video"),
                                         ("driving", driving, "driving video")):
                    path = check_upload(value, upload_root, what)
                    paths[key] = path
                    if path is not None:
                        named[str(path)] = path.name
                        named[str(value)] = path.name
                if paths["photo"] is not None and paths["clip"] is not None:
                    raise InputError("give a source photo or a source video, not both (clear one of them)")
                source = paths["photo"] or paths["clip"]
                if source is None:
                    raise InputError("no source face: upload a photo (or a video) first")
                if paths["driving"] is None:
                    raise InputError("no driving video: upload or record one first")
                options = AnimateOptions(
                    relative=mode_ == "relative",
                    adapt_scale=bool(adapt_scale_),
                    find_best_frame=mode_ == "relative" and anchor_ == ANCHORS[1],
                    best_frame=int(anchor_frame_ or 0) if mode_ == "relative" and anchor_ == ANCHORS[2] else None,
                    crop=bool(crop_),
                    crop_scale=float(crop_scale_),
                    paste_back=bool(paste_back_) and bool(crop_),  # the box is greyed out without a crop
                    smooth=float(smooth_ or 0.0),
                    max_frames=int(max_frames_) if max_frames_ else None,
                    audio=bool(audio_),
                )
                meter = ProgressMeter(lambda fraction, text: progress(fraction, desc=text), cancel)
                progress(0.0, desc="waiting for the model" if settings.concurrency == 1 else "starting")
                with jobs.gate, job_folder(settings.work_root) as folder:
                    meter.check()
                    out = run_job(animator, source, paths["driving"], options, folder, settings.limits, meter)
                    yield (
                        str(out.result),
                        str(out.side_by_side),
                        str(out.depth_png) if out.depth_png else None,
                        [str(p) for p in out.downloads],
                        f"done: {out.summary}",
                    )
                    # Gradio has copied the files to its cache by the time it asks for more: the job folder
                    # can go (job_folder removes it on the way out)
            except JobCancelled:
                yield None, None, None, None, "cancelled"
            except Exception as exc:  # every failure ends as a message in the page; the server goes on
                if not isinstance(exc, DaganError | OSError | UnicodeDecodeError):
                    traceback.print_exc(file=sys.stderr)
                message = "dagan: error: " + _rename(describe_error(exc), named)
                # a toast as well as the status line; not gr.Error, which would cover every output with
                # "Error" and hide the message. Toasts render HTML: a file name must not.
                gr.Warning(html.escape(message), duration=None, title="could not animate")
                yield None, None, None, None, message
            finally:
                jobs.finish(session, cancel)

        def cancel_job(request: gr.Request) -> str:
            running = jobs.cancel(request.session_hash or "anonymous")
            return "cancelled" if running else "nothing to cancel"

        event = animate_btn.click(
            animate,
            inputs=[source_image, source_video, driving_video, mode, adapt_scale, anchor, anchor_frame, crop,
                    crop_scale, paste_back, smooth, max_frames, audio],
            outputs=outputs,
            concurrency_limit=settings.concurrency,
            concurrency_id="animate",
        )
        # The 3-D view is filled by a follow-up step, from the served copy in the downloads, without a
        # progress overlay: updated in the same step as the overlay's end, Gradio's viewer can drop its first
        # load and stay blank.
        event.then(_glb_of, downloads, cloud, queue=False, show_progress="hidden")
        cancel_btn.click(cancel_job, outputs=[status], cancels=[event], queue=False)
        crop.change(lambda c: gr.update(interactive=bool(c)), crop, paste_back, queue=False)
        mode.change(lambda m: (gr.update(interactive=m == "relative"), gr.update(interactive=m == "relative")),
                    mode, [anchor, anchor_frame], queue=False)

    app.queue(max_size=settings.max_queue, default_concurrency_limit=settings.concurrency)
    return app, {"theme": theme, "css": _CSS}


def _glb_of(files: list[str] | None) -> str | None:
    """The 3-D view's file among a job's downloads (None when the model is depth-free or the job failed)."""
    return next((f for f in files or () if str(f).endswith(".glb")), None)


def _rename(message: str, named: dict[str, str]) -> str:
    """Messages name uploads by the user's file name, not by the server's upload path."""
    for path in sorted(named, key=len, reverse=True):
        message = message.replace(path, named[path])
    return message
