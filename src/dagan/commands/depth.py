"""``dagan depth``: face depth (disparity) of an image, a folder of images or a video with a trained FDN++.

Outputs, for an input named ``<stem>``:

* image → ``OUT/<stem>_disp.png`` (16-bit disparity, σ·65535) and ``OUT/<stem>_disp_color.png`` (preview);
  with ``--ply`` also ``OUT/<stem>.ply`` (coloured point cloud);
* folder of images → the same for each image;
* video → ``OUT/<stem>_disp.mp4`` (colour-mapped, same frame rate); with ``--png`` also the 16-bit frames
  ``OUT/<stem>_disp/0000000.png …``; with ``--uncertainty`` ``OUT/<stem>_uncertainty.mp4``; with ``--ply``
  one point cloud per frame in ``OUT/<stem>_ply/``.

Everything is written into a hidden staging folder inside OUT and moved into place only when the whole
input was processed, so a failure leaves no partial output behind.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dagan.errors import InputError

NAME = "depth"
HELP = "estimate face depth (disparity) for an image, a folder of images or a video"

_BATCH = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="an image, a folder of images, or a video file")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="a depth checkpoint from 'dagan train-depth' (or a reenactment checkpoint with a depth net)",
    )
    parser.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write the FDN++ uncertainty map. It comes from the pose net on two "
        "consecutive frames, so it is only available for videos (and FDN++ checkpoints)",
    )
    parser.add_argument(
        "--ply",
        action="store_true",
        help="also write a coloured point cloud (.ply; depth is known up to scale; intrinsics "
        "from the pose net when the checkpoint has one)",
    )
    parser.add_argument(
        "--png", action="store_true", help="for videos: also write 16-bit disparity PNG frames"
    )
    parser.add_argument(
        "--size",
        type=int,
        metavar="S",
        help="network input size (multiple of 32, >= 64; default: the checkpoint's resolution); "
        "outputs keep the input's size",
    )
    parser.add_argument(
        "--max-frames", type=int, metavar="N", help="for videos: process only the first N frames"
    )
    parser.add_argument(
        "--colormap", default="magma", choices=("magma", "viridis"), help="preview colour map"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


# --------------------------------------------------------------------------- input checks


def _check_rgb_image(path: Path) -> None:
    """Refuse images that are not 3-channel colour (grayscale, RGBA …) with one line naming the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise InputError(f"image not found: '{path}'")
    try:
        with Image.open(path) as img:
            mode = img.mode
            has_alpha = "transparency" in img.info
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image '{path}': {str(exc).splitlines()[0]}") from None
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and has_alpha):
        raise InputError(
            f"'{path}' has an alpha channel ({mode}); save it as RGB (without transparency) first"
        )
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raise InputError(
            f"'{path}' is a 1-channel ({mode}) image; depth estimation needs an RGB colour image"
        )
    if mode not in ("RGB", "P", "YCbCr", "CMYK"):
        raise InputError(f"'{path}' has unsupported pixel mode {mode}; depth estimation needs an RGB image")


def _kind(path: Path) -> str:
    from dagan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    if not path.exists():
        raise InputError(f"input not found: '{path}'")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    raise InputError(
        f"'{path}' is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video ({', '.join(VIDEO_EXTENSIONS)})"
    )


def _folder_images(folder: Path) -> list[Path]:
    from dagan.data.video import list_frame_files

    files = list_frame_files(folder)
    if not files:
        raise InputError(f"folder '{folder}' contains no images")
    return files


# --------------------------------------------------------------------------- processing


def _write_image_outputs(
    predictor, image: np.ndarray, stem: str, stage: Path, args: argparse.Namespace
) -> None:
    from dagan.infer.depth_export import colorize, point_cloud, write_ply, write_png, write_png16

    disp = predictor.disparity(image[None])[0]
    write_png16(stage / f"{stem}_disp.png", disp)
    write_png(stage / f"{stem}_disp_color.png", colorize(disp, name=args.colormap))
    if args.ply:
        _, K = predictor.pair_outputs(image[None], image[None])  # a still image: zero motion
        pts, cols = point_cloud(predictor.depth(disp), K[0], image)
        write_ply(stage / f"{stem}.ply", pts, cols)


def _with_next(frames: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame_t, frame_{t+1}) pairs; the last frame is paired with its predecessor (one-frame video: itself)."""
    prev = None
    cur = next(frames, None)
    while cur is not None:
        nxt = next(frames, None)
        partner = nxt if nxt is not None else (prev if prev is not None else cur)
        yield cur, partner
        prev, cur = cur, nxt


def _batches(
    pairs: Iterator[tuple[np.ndarray, np.ndarray]], size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    buf: list[tuple[np.ndarray, np.ndarray]] = []
    for pair in pairs:
        buf.append(pair)
        if len(buf) == size:
            yield np.stack([a for a, _ in buf]), np.stack([b for _, b in buf])
            buf = []
    if buf:
        yield np.stack([a for a, _ in buf]), np.stack([b for _, b in buf])


def _limited(frames: Iterator[np.ndarray], limit: int | None) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if limit is not None and i >= limit:
            return
        yield frame


def _process_video(predictor, path: Path, stage: Path, args: argparse.Namespace) -> int:
    from dagan.data.video import VideoWriter, iter_frames, probe_video
    from dagan.infer.depth_export import apply_colormap, colorize, point_cloud, write_ply, write_png16

    info = probe_video(path)  # corrupt / empty / no video stream → InputError before anything is written
    stem = path.stem
    disp_writer = VideoWriter(stage / f"{stem}_disp.mp4", info.rate)
    unc_writer = VideoWriter(stage / f"{stem}_uncertainty.mp4", info.rate) if args.uncertainty else None
    vrange: tuple[float, float] | None = None  # fixed colour range (from the first batch): no flicker
    count = 0
    try:
        frames = _limited(iter_frames(path), args.max_frames)
        for batch, partners in _batches(_with_next(frames), _BATCH):
            disp = predictor.disparity(batch)
            if vrange is None:
                lo, hi = np.percentile(disp, [1.0, 99.0])
                vrange = (float(lo), float(max(hi, lo + 1e-6)))
            need_pose = args.uncertainty or args.ply
            unc, K = predictor.pair_outputs(batch, partners) if need_pose else (None, None)
            for i in range(len(batch)):
                disp_writer.write(colorize(disp[i], *vrange, name=args.colormap))
                if args.png:
                    write_png16(stage / f"{stem}_disp" / f"{count:07d}.png", disp[i])
                if unc_writer is not None and unc is not None:
                    unc_writer.write((apply_colormap(unc[i], "viridis") * 255.0 + 0.5).astype(np.uint8))
                if args.ply and K is not None:
                    pts, cols = point_cloud(predictor.depth(disp[i]), K[i], batch[i])
                    write_ply(stage / f"{stem}_ply" / f"{count:07d}.ply", pts, cols)
                count += 1
        disp_writer.close()
        if unc_writer is not None:
            unc_writer.close()
    except BaseException:
        disp_writer.abort()
        if unc_writer is not None:
            unc_writer.abort()
        raise
    return count


def run(args: argparse.Namespace) -> int:
    from dagan.infer.depth_export import DepthPredictor
    from dagan.models.loading import load_depth_models
    from dagan.train.run import resolve_device

    src = Path(args.input)
    kind = _kind(src)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.uncertainty and kind != "video":
        raise InputError("--uncertainty needs two consecutive frames: it is only available for videos")
    images = [src] if kind == "image" else _folder_images(src) if kind == "folder" else []
    for image in images:
        _check_rgb_image(image)
    device = resolve_device(args.device)
    models = load_depth_models(args.checkpoint, map_location=device)
    predictor = DepthPredictor(models, args.size, device)
    if args.uncertainty and not predictor.has_uncertainty:
        raise InputError(
            f"--uncertainty: the checkpoint {args.checkpoint} has no uncertainty head (an FDN model)"
        )

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output '{out}' exists and is not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".dagan-depth-", dir=out))
    try:
        if kind == "video":
            count = _process_video(predictor, src, stage, args)
            what = f"{count} frames of {src}"
        else:
            from dagan.data.video import read_image

            for image in images:
                _write_image_outputs(predictor, read_image(image), image.stem, stage, args)
            what = f"{len(images)} image{'s' if len(images) != 1 else ''}"
        written = sorted(stage.iterdir())
        for item in written:
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    print(f"depth of {what} written to {out}: {', '.join(p.name for p in written)}")
    return 0
