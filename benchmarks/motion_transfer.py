"""Motion transfer of a model: does the animated face turn, nod, tilt and open its mouth like the driving face?

The model animates the source photo with the driving video (``Animator.animate`` with its defaults: relative
motion, crop, paste-back into the full photo); both videos are then measured by
:mod:`dagan.eval.motion_transfer`: per frame the head's yaw, pitch, roll (dlib 68 landmarks + PnP) and the
mouth opening (inner-lip gap / inter-ocular distance), and per signal the amplitude σ of each series, the
ratio σ_generated / σ_driving and Pearson's correlation, over the frames where both videos have a face.

Two reference rows come with the model's: "copy source" (the photo repeated: no motion, ratio 0, correlation
undefined) and "driving itself" (the driving video against itself: ratio 1, correlation 1 — a check of the
arithmetic and of the frame pairing). Targets for a model that transfers motion: yaw and pitch ratio ≥ 0.5 and
correlation ≥ 0.7, mouth correlation ≥ 0.5.

    python benchmarks/motion_transfer.py [--checkpoint CKPT] [--source IMAGE] [--driving VIDEO] [--json OUT]

Defaults: the bundled 64×64 demo model, astronaut photo and driving clip. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from dagan.assets import DEMO_CHECKPOINT, DEMO_DRIVING, DEMO_SOURCE
from dagan.errors import DaganError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT, help="reenactment checkpoint")
    parser.add_argument("--source", type=Path, default=DEMO_SOURCE, help="source face photo")
    parser.add_argument("--driving", type=Path, default=DEMO_DRIVING, help="driving video")
    parser.add_argument("--device", default=None, help="torch device (default: best available)")
    parser.add_argument("--max-frames", type=int, default=None, help="use only the first N driving frames")
    parser.add_argument("--keep-video", type=Path, default=None, help="also keep the generated video here")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    try:
        run(args)
    except DaganError as err:
        raise SystemExit(f"dagan: error: {err}") from None


def run(args: argparse.Namespace) -> None:
    from dagan.atomic_files import write_json_atomic
    from dagan.data.video import iter_frames, probe_video, read_image
    from dagan.eval.motion_transfer import (
        TARGETS,
        FollowedFace,
        MotionSeries,
        compare_motion,
        head_motion_series,
        main_face,
    )
    from dagan.infer.animator import Animator

    source = read_image(args.source)
    animator = Animator.from_checkpoint(args.checkpoint, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        output = args.keep_video if args.keep_video is not None else Path(tmp) / "generated.mp4"
        animator.animate(args.source, args.driving, output, max_frames=args.max_frames, progress=False)
        info = probe_video(output)
        # A pasted-back output has the photo's size: follow the face found in the photo (dlib also finds a
        # false face in some photos, e.g. the astronaut's collar ring, and may find it first in the output).
        anchor = main_face(source) if (info.height, info.width) == source.shape[:2] else None
        generated = head_motion_series(iter_frames(output), FollowedFace(anchor))
    driving = head_motion_series(itertools.islice(iter_frames(args.driving), info.num_frames))

    rows = {
        f"model ({args.checkpoint.name})": compare_motion(driving, generated),
        "copy source (no motion)": compare_motion(driving, MotionSeries.still(source, len(driving))),
        "driving itself (oracle)": compare_motion(driving, driving),
    }
    print(f"Motion transfer: {args.source.name} driven by {args.driving.name}, {len(driving)} frames, "
          f"generated {info.width}×{info.height}\n")
    print("| video | signal | driving amplitude (σ) | generated amplitude (σ) | ratio | correlation |")
    print("|---|---|---:|---:|---:|---:|")
    for name, report in rows.items():
        for line in report.markdown_rows(prefix=f"| {name} "):
            print(line)
    print()
    for name, report in rows.items():
        print(f"- {name}: {report.frames_line()}")
    model = next(iter(rows.values()))
    met = model.meets_targets()
    targets = ", ".join(
        f"{signal} {'met' if met[signal] else 'not met'} (ratio ≥ {r or '–'}, correlation ≥ {c or '–'})"
        for signal, (r, c) in TARGETS.items()
    )
    print(f"\nTargets for the model: {targets}")
    if args.json is not None:
        write_json_atomic(
            args.json,
            {
                "checkpoint": str(args.checkpoint),
                "source": str(args.source),
                "driving": str(args.driving),
                "rows": {name: report.as_dict() for name, report in rows.items()},
            },
            indent=2,
        )


if __name__ == "__main__":
    main()
