"""``dagan depth``: face depth (disparity) of an image, a folder of images or a video with a trained FDN++.

By default the face is cropped first, exactly as ``dagan animate`` crops its source and driving faces: the
largest detected face, a square of ``--crop-scale`` × the face box around it (padded with the border pixels
where it leaves the picture), and for a video a crop tube smoothed over time. The depth net was trained on
such crops; on a whole portrait it sees a small face in a large scene and its map is meaningless.
``--no-crop`` runs the net on the whole picture instead. Grey and transparent images are converted to RGB
(by the same loader as ``dagan animate``).

Outputs, for an input named ``<stem>``; each covers the face crop at the crop's own pixel size in the input
(for a video, the median crop size of the tube), or the whole picture at its size with ``--no-crop``:

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
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dagan.commands.arguments import crop_scale, network_size, positive_int
from dagan.errors import CheckpointError, InputError

NAME = "depth"
HELP = "estimate face depth (disparity) for an image, a folder of images or a video"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("input", "checkpoint")
OUTPUTS: tuple[str, ...] = ("out",)

EPILOG = """\
what the outputs cover: by default the face crop (the square dagan animate uses: --crop-scale x the
detected face box) at the crop's own size in pixels of the input; for a video, every frame's crop from a
smoothed crop tube, resized to the tube's median crop size. With --no-crop: the whole picture, at its
size. Disparity is bright where near.
examples:
  dagan depth face.jpg -o out/                      # the bundled demo model, face crop
  dagan depth talk.mp4 -o out/ --uncertainty --png --checkpoint depth.pt
  dagan depth photos/ -o out/ --no-crop --checkpoint depth.pt
"""
#: Printed (stderr) when neither --checkpoint nor $DAGAN_CHECKPOINT names a model.
BUNDLED_NOTE = (
    "dagan: using the bundled {res}×{res} demo model ({path}); for better depth pass --checkpoint (train "
    "one with 'dagan train-depth', or import the official DaGAN depth weights with 'dagan import-official "
    "--depth')"
)

_BATCH = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dagan.faces import DEFAULT_CROP_SCALE

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="an image (grey and transparent images are converted to RGB), a folder of images, or a video",
    )
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="CKPT",
        help="a depth checkpoint from 'dagan train-depth' (or a reenactment checkpoint with a depth net); "
        "default: $DAGAN_CHECKPOINT, else the bundled 64x64 demo model (coarse depth)",
    )
    parser.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write the FDN++ uncertainty map (viridis on the absolute scale 0..1; bright: "
        "unreliable). It comes from the pose net on two consecutive frames, so it is only available for "
        "videos (and FDN++ checkpoints with a pose net, like the bundled model)",
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
        type=network_size,
        metavar="S",
        help="network input size (multiple of 32, >= 64; default: the checkpoint's resolution); "
        "outputs keep the crop's size (with --no-crop, the input's)",
    )
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="for videos: process only the first N frames"
    )
    parser.add_argument(
        "--colormap", default="magma", choices=("magma", "viridis"), help="preview colour map"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    faces = parser.add_argument_group("faces (cropped as by dagan animate)")
    faces.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="detect and crop the face (square box with margin; a smoothed crop tube for a video) and "
        "estimate the depth of the crop. --no-crop uses the whole pictures (default: on)",
    )
    faces.add_argument(
        "--crop-scale",
        type=crop_scale,
        default=DEFAULT_CROP_SCALE,
        help=f"crop side / face-box size (default {DEFAULT_CROP_SCALE:g}, like the VoxCeleb crops)",
    )
    faces.add_argument(
        "--detector",
        default="auto",
        choices=("auto", "mediapipe", "dlib", "opencv"),
        help="face detector backend (default: the best installed)",
    )


# --------------------------------------------------------------------------- input checks


def _load_image(path: Path) -> np.ndarray:
    """An image as H×W×3 uint8 RGB, converted (grey, 16-bit, transparent …) by the loader of ``dagan
    animate``; a missing or unreadable file is one InputError naming it."""
    from dagan.infer.source import load_source_image

    return load_source_image(path)


class _FaceCrops:
    """The face crops of ``dagan animate`` (see :mod:`dagan.faces`): the largest detected face, a square of
    ``scale`` × its box (:func:`~dagan.faces.square_crop_box`), border pixels where the square leaves the
    picture; for a video, the boxes are smoothed over time into a crop tube (:func:`~dagan.faces.smooth_boxes`)
    first. Crops keep their pixel size in the input (a tube's frames share its median crop size)."""

    def __init__(self, detector: str, scale: float) -> None:
        from dagan.faces import create_detector

        self.detector: Any = create_detector(detector)
        self.scale = scale

    def image(self, image: np.ndarray, what: str) -> np.ndarray:
        from dagan.faces import crop_and_resize
        from dagan.faces.cropping import face_crop_box

        found = face_crop_box(self.detector, image, self.scale)
        if found is None:
            raise InputError(f"no face found in {what} (use --no-crop for the depth of the whole picture)")
        box = found[0]
        return crop_and_resize(image, box, max(1, round(box.size)), pad="edge")

    def tube(self, path: Path, limit: int | None) -> tuple[list[Any], int]:
        """Per-frame crop boxes of the video's first ``limit`` frames and the common output side."""
        from dagan.data.video import iter_frames, probe_video
        from dagan.faces.cropping import crop_tube, detect_faces

        faces = detect_faces(self.detector, _limited(iter_frames(path), limit))
        if all(f is None for f in faces):
            raise InputError(f"no face found in the video '{path}' (use --no-crop for the depth of whole frames)")
        info = probe_video(path)
        boxes = crop_tube(faces, (info.height, info.width), self.scale)
        return boxes, max(1, round(float(np.median([b.size for b in boxes]))))


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


def _cropped(frames: Iterator[np.ndarray], boxes: list[Any], side: int) -> Iterator[np.ndarray]:
    from dagan.faces import crop_and_resize

    for i, frame in enumerate(frames):
        yield crop_and_resize(frame, boxes[min(i, len(boxes) - 1)], side, pad="edge")


def _process_video(
    predictor, path: Path, stage: Path, args: argparse.Namespace, crops: _FaceCrops | None
) -> int:
    from dagan.data.frame_folder_writer import FrameFolderWriter
    from dagan.data.video import VideoWriter, iter_frames, probe_video
    from dagan.infer.depth_export import apply_colormap, colorize, disparity_to_uint16, point_cloud, write_ply

    info = probe_video(path)  # corrupt / empty / no video stream → InputError before anything is written
    tube = crops.tube(path, args.max_frames) if crops is not None else None  # first pass: faces only
    stem = path.stem
    disp_writer = VideoWriter(stage / f"{stem}_disp.mp4", info.rate)
    unc_writer = VideoWriter(stage / f"{stem}_uncertainty.mp4", info.rate) if args.uncertainty else None
    # 16-bit disparity frames; zlib's default level, as every other 16-bit PNG of this command
    png_writer = FrameFolderWriter(stage / f"{stem}_disp", compress_level=6) if args.png else None
    vrange: tuple[float, float] | None = None  # fixed colour range (from the first batch): no flicker
    count = 0
    try:
        frames = _limited(iter_frames(path), args.max_frames)
        if tube is not None:
            frames = _cropped(frames, *tube)
        for batch, partners in _batches(_with_next(frames), _BATCH):
            disp = predictor.disparity(batch)
            if vrange is None:
                lo, hi = np.percentile(disp, [1.0, 99.0])
                vrange = (float(lo), float(max(hi, lo + 1e-6)))
            need_pose = args.uncertainty or args.ply
            unc, K = predictor.pair_outputs(batch, partners) if need_pose else (None, None)
            for i in range(len(batch)):
                disp_writer.write(colorize(disp[i], *vrange, name=args.colormap))
                if png_writer is not None:
                    png_writer.write(disparity_to_uint16(disp[i]))
                if unc_writer is not None and unc is not None:
                    unc_writer.write((apply_colormap(unc[i], "viridis") * 255.0 + 0.5).astype(np.uint8))
                if args.ply and K is not None:
                    pts, cols = point_cloud(predictor.depth(disp[i]), K[i], batch[i])
                    write_ply(stage / f"{stem}_ply" / f"{count:07d}.ply", pts, cols)
                count += 1
        disp_writer.close()
        for writer in (unc_writer, png_writer):
            if writer is not None:
                writer.close()
    except BaseException:
        for writer in (disp_writer, unc_writer, png_writer):
            if writer is not None:
                writer.abort()
        raise
    return count


def _output_names(stem: str, kind: str) -> tuple[list[str], list[str]]:
    """(files, folders) this command may write into OUT for an input named ``stem``."""
    if kind == "video":
        return [f"{stem}_disp.mp4", f"{stem}_uncertainty.mp4"], [f"{stem}_disp", f"{stem}_ply"]
    return [f"{stem}_disp.png", f"{stem}_disp_color.png", f"{stem}.ply"], []


def _check_outputs(src: Path, kind: str, images: list[Path], out: Path, checkpoint: str | None) -> None:
    """The files written into OUT are named after the inputs, so the generic check of ``dagan.cli`` cannot see
    them: none may be an input, a per-frame folder that would be replaced may hold no input and nothing but
    an earlier run's frames, and two images of one folder may not share a name (their outputs would)."""
    from dagan.protected_inputs import LabelledPath, check_outputs_spare_inputs

    stems = [p.stem for p in images] if images else [src.stem]
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen:
            raise InputError(f"'{seen[image.stem]}' and '{image}' would write the same outputs; rename one")
        seen[image.stem] = image
    inputs = [LabelledPath.of("INPUT", src)] + ([LabelledPath.of("--checkpoint", checkpoint)] if checkpoint else [])
    outputs = []
    for stem in stems:
        files, folders = _output_names(stem, kind)
        outputs += [LabelledPath.of("output", out / name) for name in files]
        outputs += [LabelledPath.of("output folder", out / name, replaced=True) for name in folders]
        for name in folders:
            others = [p.name for p in (out / name).glob("*") if not _is_frame_file(p)] if (out / name).is_dir() else []
            if others:
                raise InputError(
                    f"output folder '{out / name}' exists and holds other files (e.g. {others[0]}); "
                    "it would be replaced: move it or choose another -o"
                )
    check_outputs_spare_inputs(inputs, outputs)


def _is_frame_file(path: Path) -> bool:
    """A per-frame output of an earlier run: ``0000000.png`` or ``0000000.ply``."""
    return path.is_file() and path.suffix in (".png", ".ply") and len(path.stem) == 7 and path.stem.isdigit()


def run(args: argparse.Namespace) -> int:
    from dagan.checkpoints.depth import load_depth_models
    from dagan.devices import resolve_device
    from dagan.infer.animator import CHECKPOINT_ENV, resolve_checkpoint
    from dagan.infer.depth_export import DepthPredictor

    src = Path(args.input)
    kind = _kind(src)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.uncertainty and kind != "video":
        raise InputError("--uncertainty needs two consecutive frames: it is only available for videos")
    images = [src] if kind == "image" else _folder_images(src) if kind == "folder" else []
    _check_outputs(src, kind, images, Path(args.out), args.checkpoint)
    first = _load_image(images[0]) if kind == "image" else None  # fail fast on an unreadable image
    checkpoint, origin = resolve_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    try:
        models = load_depth_models(checkpoint, map_location=device)
    except CheckpointError as exc:
        if origin == "environment":
            raise CheckpointError(f"${CHECKPOINT_ENV}: {exc}") from None
        raise
    if origin == "bundled":
        print(BUNDLED_NOTE.format(res=models.config.resolution, path=checkpoint), file=sys.stderr)
    predictor = DepthPredictor(models, args.size, device)
    if args.uncertainty and not predictor.has_uncertainty:
        raise InputError(f"--uncertainty: the checkpoint {checkpoint} has no uncertainty head (an FDN model)")
    crops = _FaceCrops(args.detector, args.crop_scale) if args.crop else None

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output '{out}' exists and is not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".dagan-depth-", dir=out))
    try:
        if kind == "video":
            count = _process_video(predictor, src, stage, args, crops)
            what = f"{count} frame{'s' if count != 1 else ''} of {src}"
        else:
            for image in images:
                picture = first if first is not None else _load_image(image)
                if crops is not None:
                    picture = crops.image(picture, f"'{image}'")
                _write_image_outputs(predictor, picture, image.stem, stage, args)
            what = f"{len(images)} image{'s' if len(images) != 1 else ''}"
        if crops is not None:
            what = f"the face crop{'s' if kind != 'image' else ''} of {what}"
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
