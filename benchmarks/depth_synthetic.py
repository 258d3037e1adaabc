"""Depth quality of FDN++ vs FDN on synthetic talking heads with exact ground truth.

Both models are trained from the same seed with the same CPU-time budget (:func:`cpu_clock`) on the same synthetic clips
(rigid head motion plus strong non-rigid mouth/eye motion), then evaluated on clips of *held-out* seeds over
the head pixels:

* relative-structure error  RMSE(a·d̂ + b − d) / std(d), (a, b) fitted per frame (1.0 = a flat face);
* AbsRel after median scaling, δ < 1.25, scale-invariant log RMSE;
* the learned focal length (pose net, mean over consecutive pairs) relative to the true one.

The untrained network (same initialisation) is reported as a reference. Prints a Markdown table.

    python benchmarks/depth_synthetic.py --minutes 5              # 5 minutes per model
    python benchmarks/depth_synthetic.py --minutes 20 --size 128  # the full budget
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dagan.checkpoints.depth import load_depth_models
from dagan.config import Config, load_config
from dagan.data.synthetic import render_video, write_synthetic_dataset
from dagan.eval.depth_metrics import focal_ratio, mean_depth_metrics
from dagan.infer.depth_export import DepthPredictor
from dagan.train.depth_trainer import DepthTrainer, train_depth
from dagan.train.run import read_metrics

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED_BASE = 10_000  # training clips use write_synthetic_dataset's seeds; these never occur there


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0,
                   help="training budget per model, CPU minutes per torch thread (default 5)")
    p.add_argument("--config", default=str(ROOT / "configs" / "tiny" / "dagan++-64.yaml"))
    p.add_argument("--size", type=int, default=64, help="frame size (default 64)")
    p.add_argument("--videos", type=int, default=16, help="training clips (default 16)")
    p.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    p.add_argument("--frame-gap", type=int, default=4, help="I_t / I_{t+gap} pairs (default 4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--non-rigid", type=float, default=1.0, help="expression strength of the clips (default 1)")
    p.add_argument("--eval-clips", type=int, default=4, help="held-out clips (default 4)")
    p.add_argument("--eval-frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=1_000_000, help="stop earlier than the time budget")
    p.add_argument("--out", help="keep the data and runs here (default: a temporary folder)")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, uncertainty: bool) -> Config:
    cfg = load_config(args.config)
    cfg.dataset_params.frame_shape = [args.size, args.size, 3]
    cfg.model_params.depth_params.uncertainty = uncertainty
    p = cfg.depth_train_params
    p.frame_gap, p.batch_size, p.lr, p.seed = args.frame_gap, args.batch_size, args.lr, args.seed
    p.num_workers, p.lr_milestones = 0, []
    p.checkpoint_freq, p.log_freq, p.visual_freq = 1_000_000, 25, 250
    return cfg.validate()


def cpu_clock() -> float:
    """CPU seconds of this process divided by torch's thread count: the budget is the same for both models
    even when other jobs share the machine (on an idle machine it runs at about wall-clock speed)."""
    return time.process_time() / max(torch.get_num_threads(), 1)


def evaluate(ckpt: Path, clips: list) -> dict[str, float]:
    predictor = DepthPredictor(load_depth_models(ckpt))
    rows, focals = [], []
    for clip in clips:
        disp = predictor.disparity(clip.frames)
        rows.append(mean_depth_metrics(predictor.depth(disp), clip.depth, clip.mask))
        _, K = predictor.pair_outputs(clip.frames[:-1], clip.frames[1:])
        focals.append(focal_ratio(float(K[:, 0, 0].mean()), float(clip.intrinsics[0, 0])))
    out = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    out["focal_ratio"] = float(np.mean(focals))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="depth-bench-"))
    data = work / "data"
    try:
        if not data.exists():
            t = time.monotonic()
            write_synthetic_dataset(data, videos=args.videos, frames=args.frames, size=args.size, seed=args.seed,
                                    test_fraction=0.0, non_rigid=args.non_rigid, video_format="png")
            print(f"rendered {args.videos} training clips in {time.monotonic() - t:.0f} s", file=sys.stderr)
        clips = [render_video(HELD_OUT_SEED_BASE + args.seed * 100 + k, frames=args.eval_frames, size=args.size,
                              non_rigid=args.non_rigid) for k in range(args.eval_clips)]
        rows = []
        for name, uncertainty in (("FDN++ (uncertainty)", True), ("FDN (no uncertainty)", False)):
            cfg = make_config(args, uncertainty)
            run = work / ("fdnpp" if uncertainty else "fdn")
            if run.exists():
                shutil.rmtree(run)
            if uncertainty:  # the common initialisation, untrained, as a reference
                torch.manual_seed(args.seed)
                init = work / "init.pt"
                from dagan.atomic_files import atomic_torch_save

                atomic_torch_save(DepthTrainer(cfg).state_dict(), init)
                rows.append(("untrained (initialisation)", 0, 0.0, evaluate(init, clips), None))
            res = train_depth(cfg, data, out=run, max_steps=args.max_steps, max_seconds=args.minutes * 60,
                              clock=cpu_clock, show_progress=False, echo=False)
            metrics = read_metrics(run)
            pe = [m["depth/photometric_error"] for m in metrics]
            print(f"{name}: {res.step} steps in {res.seconds:.0f} s", file=sys.stderr)
            pe_first_last = (pe[0], float(np.mean(pe[-4:])))
            rows.append((name, res.step, res.seconds, evaluate(res.checkpoint, clips), pe_first_last))
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nSynthetic heads {args.size}x{args.size}, {args.videos} clips x {args.frames} frames, frame gap "
          f"{args.frame_gap}, non-rigid {args.non_rigid}, seed {args.seed}, {args.minutes:g} min per model; "
          f"evaluated on {args.eval_clips} held-out clips x {args.eval_frames} frames, head pixels.\n")
    print("| model | steps | wall s | photometric error (first → last) | rel. structure ↓ | AbsRel ↓ "
          "| δ<1.25 ↑ | SI-log ↓ | f̂ / f |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, steps, secs, m, pe in rows:
        pe_txt = f"{pe[0]:.4f} → {pe[1]:.4f}" if pe else "–"
        print(f"| {name} | {steps} | {secs:.0f} | {pe_txt} | {m['rel_structure']:.3f} | {m['abs_rel']:.3f} | "
              f"{m['delta_1.25']:.3f} | {m['si_log_rmse']:.3f} | {m['focal_ratio']:.2f} |")
    print("| flat face (reference) | – | – | – | 1.000 | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

