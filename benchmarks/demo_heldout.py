"""Held-out self-reconstruction of the demo model vs the FOMM baseline (same data, recipe and budget).

Frames: every clip in ``DATA/test`` — for the demo recipe, the last 20 % (in time) of the real clip
``src/dagan/assets/hello_face_176.mp4``, face-cropped like the training frames, never seen in training.

Protocol (FOMM's video reconstruction): the source is the clip's first held-out frame, every held-out frame
is a driving frame, and the model gets the keypoints of the driving frame itself (absolute motion; no
relative transfer, no adapt-scale) — so a perfect model reproduces the driving frame. Reported per model:
L1 = mean |prediction − driving| over pixels in [0, 1], and LPIPS (AlexNet, v0.1, inputs in [0, 1]),
both averaged over all held-out frames (the first, where the prediction is a copy of the source, included).
"Copy source" (prediction = source frame) is the trivial reference.

    python benchmarks/demo_heldout.py --data runs/demo/data --dagan CKPT --fomm CKPT [--json OUT]
    python benchmarks/demo_heldout.py --data runs/demo/data --model NAME=CKPT [--model NAME=CKPT ...]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def load_clips(root: Path) -> list[torch.Tensor]:
    from dagan.data.video import list_frame_files, read_image

    clips = []
    for folder in sorted(p for p in (root / "test").iterdir() if p.is_dir()):
        frames = [read_image(p) for p in list_frame_files(folder)]
        clips.append(torch.stack([torch.from_numpy(f.copy()).permute(2, 0, 1).float() / 255 for f in frames]))
    if not clips:
        raise SystemExit(f"no held-out clips in {root / 'test'}")
    return clips


@torch.no_grad()
def reconstruct(models, clip: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Predictions for every frame of ``clip`` from its first frame, absolute motion."""
    source = clip[:1]
    d_s = models.disparity(source)
    kp_s = models.kp_detector(source, d_s)
    preds = []
    for start in range(0, clip.shape[0], batch):
        driving = clip[start : start + batch]
        n = driving.shape[0]
        kp_d = models.kp_detector(driving, models.disparity(driving))
        out = models.generator(
            source.expand(n, -1, -1, -1),
            kp_d,
            {k: v.expand(n, *v.shape[1:]) for k, v in kp_s.items()},
            source_depth=None if d_s is None else d_s.expand(n, -1, -1, -1),
        )
        preds.append(out["prediction"].clamp(0, 1))
    return torch.cat(preds)


def scores(preds: list[torch.Tensor], clips: list[torch.Tensor], lpips) -> dict[str, float]:
    from dagan.eval.metrics import l1

    l1s, lps = [], []
    for p, c in zip(preds, clips):
        l1s.append(l1(p, c))
        lps.append(torch.cat([lpips(p[i : i + 16], c[i : i + 16]).flatten() for i in range(0, len(c), 16)]))
    return {"l1": float(torch.cat(l1s).mean()), "lpips": float(torch.cat(lps).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset root with test/ clips")
    parser.add_argument("--dagan", help="DaGAN++ demo checkpoint")
    parser.add_argument("--fomm", help="FOMM baseline checkpoint")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                        help="any checkpoint, under a row name of its own (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    models_to_score = [(name, path) for name, path in (("DaGAN++ (demo)", args.dagan),
                                                       ("FOMM (same recipe)", args.fomm)) if path]
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--model wants NAME=CKPT, got {spec!r}")
        models_to_score.append((name, path))
    if not models_to_score:
        parser.error("give --dagan/--fomm or --model NAME=CKPT")

    from dagan.checkpoints.reenactment import load_reenactment_model
    from dagan.eval.lpips import load_lpips

    torch.set_grad_enabled(False)
    clips = load_clips(args.data)
    lpips = load_lpips("alex")
    rows: dict[str, dict[str, float]] = {}
    steps: dict[str, object] = {}
    for name, path in models_to_score:
        _, models = load_reenactment_model(path)
        rows[name] = scores([reconstruct(models, c) for c in clips], clips, lpips)
        obj = torch.load(path, map_location="cpu", weights_only=True)
        steps[name] = obj.get("step")
    rows["copy source"] = scores([c[:1].expand_as(c) for c in clips], clips, lpips)
    frames = sum(len(c) for c in clips)
    print(f"Held-out self-reconstruction, {frames} frames in {len(clips)} clip(s), absolute motion, "
          f"source = first held-out frame\n")
    print("| model | training steps | L1 ↓ | LPIPS (alex) ↓ |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {steps.get(name, '–')} | {r['l1']:.4f} | {r['lpips']:.4f} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"frames": frames, "rows": rows, "steps": steps}, indent=2))


if __name__ == "__main__":
    main()
