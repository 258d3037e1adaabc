"""``dagan webui``: a local web page to animate a face (needs the ``web`` extra: Gradio)."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from dagan.commands.arguments import positive_float, positive_int
from dagan.errors import CheckpointError, DaganError, MissingExtraError

NAME = "webui"
HELP = "serve a local web page: drop a photo and a video, press Animate, see the result and the depth"
#: Argument names of what the command reads (dagan.cli's protected-inputs check); it writes no named file.
INPUTS: tuple[str, ...] = ("checkpoint", "depth_checkpoint")
OUTPUTS: tuple[str, ...] = ()
EPILOG = """\
The page serves on 127.0.0.1 (this machine only) unless --host says otherwise. Uploads and results live in
a temporary folder that is removed when the server stops; each job's files are removed once the page has
them. Jobs wait in a queue and run --concurrency at a time.
examples:
  dagan webui                                   # the bundled demo model on http://127.0.0.1:7860
  dagan webui --checkpoint dagan++-vox-256.pt --device cuda --concurrency 2
"""
#: Shown on the page when neither --checkpoint nor $DAGAN_CHECKPOINT names a model.
BUNDLED_NOTE = (
    "**Model:** the bundled {res}×{res} demo model — it shows the pipeline, not real quality. For real "
    "quality start the server with `dagan webui --checkpoint MODEL.pt`."
)
SHARE_WARNING = (
    "dagan: warning: --share publishes this page on a public gradio.live address through Gradio's tunnel: "
    "anyone with the link can upload files and run jobs on this machine"
)
HOST_WARNING = (
    "dagan: warning: --host {host} makes the page reachable from other machines on the network; it has no "
    "login"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="reenactment checkpoint; default: $DAGAN_CHECKPOINT, else the bundled 64x64 demo model",
    )
    parser.add_argument("--depth-checkpoint", default=None, help="face depth model (as for 'dagan animate')")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: only this "
                        "machine; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also publish the page through a public Gradio link (off by default; anyone with the link can use it)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="jobs running at the same time (default: 1 on CPU, 2 on a GPU); the others wait in the queue",
    )
    parser.add_argument("--max-queue", type=positive_int, default=20, metavar="N",
                        help="jobs waiting at most; more are turned away (default 20)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=200.0, metavar="MB",
                        help="largest file the page accepts (default 200 MB)")
    parser.add_argument("--max-video-seconds", type=positive_float, default=120.0, metavar="S",
                        help="longest driving video animated, after 'max frames' (default 120 s)")
    parser.add_argument("--max-image-megapixels", type=positive_float, default=50.0, metavar="MP",
                        help="largest source picture (default 50 megapixels)")


def _gradio_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gradio") is not None


def run(args: argparse.Namespace) -> int:
    if not _gradio_available():
        raise MissingExtraError("dagan webui", "web", "gradio")
    from dagan.infer.animator import CHECKPOINT_ENV, Animator, resolve_checkpoint

    _check_port(args.host, args.port)  # before the model is loaded: a busy port fails at once
    checkpoint, origin = resolve_checkpoint(args.checkpoint)
    try:
        animator = Animator.from_checkpoint(checkpoint, device=args.device, depth_checkpoint=args.depth_checkpoint)
    except CheckpointError as exc:
        if origin != "environment":
            raise
        raise CheckpointError(f"${CHECKPOINT_ENV}: {exc}") from None
    if origin == "bundled":
        note = BUNDLED_NOTE.format(res=animator.resolution)
    else:
        note = f"**Model:** `{checkpoint.name}` ({animator.resolution}×{animator.resolution})"
    note += f" · device: {animator.device}"
    concurrency = args.concurrency or (1 if animator.device.type == "cpu" else 2)

    root = Path(tempfile.mkdtemp(prefix="dagan-webui-"))
    # Gradio keeps uploads and served copies under GRADIO_TEMP_DIR: a folder of this server's own, so that
    # only its uploads can be used (see dagan.web.jobs.check_upload) and all of it goes when it stops.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        return _serve(args, animator, note, concurrency, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(args: argparse.Namespace, animator: object, note: str, concurrency: int, root: Path) -> int:
    from dagan.assets import DEMO_DRIVING, DEMO_SOURCE
    from dagan.web.app import PageSettings, build_app
    from dagan.web.jobs import Limits

    # the examples are copied beside the uploads: Gradio serves files only from its own folders
    examples = root / "examples"
    examples.mkdir()
    photo = Path(shutil.copy2(DEMO_SOURCE, examples / DEMO_SOURCE.name))
    clip = Path(shutil.copy2(DEMO_DRIVING, examples / DEMO_DRIVING.name))
    settings = PageSettings(
        model_note=note,
        work_root=root / "jobs",
        limits=Limits(args.max_upload_mb, args.max_video_seconds, args.max_image_megapixels),
        concurrency=concurrency,
        max_queue=args.max_queue,
        examples=((str(photo), str(clip)),),
    )
    app, look = build_app(animator, settings)
    if args.share:
        print(SHARE_WARNING, file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(HOST_WARNING.format(host=args.host), file=sys.stderr, flush=True)
    # SIGTERM (a service manager, a test) ends the server like Ctrl-C, so the temporary folder is removed
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            app.launch(
                server_name=args.host,
                server_port=args.port,
                share=args.share,
                max_file_size=f"{args.max_upload_mb:g}mb",
                prevent_thread_lock=True,
                quiet=True,
                show_error=False,
                ssr_mode=False,
                inbrowser=False,
                **look,
            )
        except OSError as exc:  # Gradio: "Cannot find empty port in range: 7860-7860. You can …"
            reason = "the port is in use" if "empty port" in str(exc) else str(exc).split(". ")[0]
            raise DaganError(f"cannot listen on {args.host}:{args.port}: {reason} (choose another --port)") from None
        url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{app.server_port}/"
        print(f"dagan webui: serving on {url} (Ctrl-C to stop)", flush=True)
        print(f"dagan webui: temporary files in {root} (removed on exit)", flush=True)
        if args.share and getattr(app, "share_url", None):
            print(f"dagan webui: public link {app.share_url}", flush=True)
        try:
            signal.pause() if hasattr(signal, "pause") else app.block_thread()
        except KeyboardInterrupt:
            print("dagan webui: stopping", file=sys.stderr, flush=True)
        finally:
            app.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _check_port(host: str, port: int) -> None:
    """Refuse a port that another program already listens on (one line, before any slow work)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DaganError(f"--host {host}: {exc.strerror or exc}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise DaganError(f"cannot listen on {host}:{port}: {reason} (choose another --port)") from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
