"""Per-frame cost of each inference backend: PyTorch eager, ONNX Runtime and OpenVINO (``dagan export``).

For every architecture, a full-size 256² model with random weights (the cost does not depend on the
weights) is saved, exported (fp32, batch 1), and driven frame by frame through the same
``Animator.generate_frames`` call — driving depth → keypoints → relative motion transfer → decode — as
real-time use does (batch 1). Reported: the median ms per frame over ``--frames`` frames after two warm-up
frames, all backends with the same thread count, alternating backends frame by frame so that load from
other processes hits them alike; and the largest difference between each backend's frames and PyTorch's
(uint8 levels). The one-off source preparation is not counted.

    python benchmarks/backends.py [--frames 12] [--threads 2] [--archs dagan++ dagan dagan-spade fomm]
                                  [--json benchmarks/results/backends.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dagan.assets import DEMO_DRIVING, DEMO_SOURCE
from dagan.checkpoints.format import save_checkpoint
from dagan.config import load_config
from dagan.data.video import iter_frames
from dagan.export import GraphEngine, export_model
from dagan.infer.animator import Animator
from dagan.infer.engine import model_size
from dagan.models.factory import build_reenactment_models

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("dagan++", "dagan", "dagan-spade", "fomm")
BACKENDS = ("torch", "onnxruntime", "openvino")


def _perturb(models: torch.nn.Module, seed: int) -> None:
    """Random weights with some spread, so generated frames are not flat grey (a parity check needs detail)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in models.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g) * (p.std() if p.numel() > 1 else 1.0))


def _checkpoint(arch: str, folder: Path) -> Path:
    cfg = load_config(ROOT / "configs" / f"{arch}-vox-256.yaml")
    torch.manual_seed(0)
    m = build_reenactment_models(cfg, discriminator=False)
    _perturb(m, 0)
    modules = {"kp_detector": m.kp_detector, "generator": m.generator}
    if m.depth_net is not None:
        modules["depth_net"] = m.depth_net
    return save_checkpoint(folder / f"{arch}.pt", kind="reenactment", config=cfg.to_dict(), rng=False,
                           modules=modules)


def bench_arch(arch: str, frames: list[np.ndarray], threads: int, tmp: Path) -> dict[str, object]:
    ckpt = _checkpoint(arch, tmp)
    t = time.perf_counter()
    manifest = export_model(ckpt, tmp / f"{arch}-onnx")
    export_s = time.perf_counter() - t
    animators = {"torch": Animator.from_checkpoint(ckpt, device="cpu")}
    for backend in BACKENDS[1:]:
        engine = GraphEngine(tmp / f"{arch}-onnx", backend, threads=threads)
        animators[backend] = Animator(engine)
    states = {b: a.prepare_source(DEMO_SOURCE, crop=False) for b, a in animators.items()}
    anchor = model_size(frames[0], animators["torch"].resolution)
    transfers = {b: a.motion_transfer(states[b], anchor) for b, a in animators.items()}
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    outputs: dict[str, list[np.ndarray]] = {b: [] for b in BACKENDS}
    for i, frame in enumerate(frames):
        driving = model_size(frame, animators["torch"].resolution)
        for backend, animator in animators.items():
            t = time.perf_counter()
            out = animator.generate_frames(driving, states[backend], transfers[backend])
            elapsed = time.perf_counter() - t
            if i >= 2:  # warm-up: first-run allocations and kernel selection
                times[backend].append(elapsed)
            outputs[backend].append(Animator.to_uint8(out)[0])
    reference = np.stack(outputs["torch"]).astype(np.int16)
    row: dict[str, object] = {"arch": arch, "export_s": round(export_s, 1)}
    for backend in BACKENDS:
        row[f"{backend}_ms"] = round(1000 * statistics.median(times[backend]), 1)
        row[f"{backend}_ms_range"] = [round(1000 * min(times[backend]), 1), round(1000 * max(times[backend]), 1)]
        if backend != "torch":
            row[f"{backend}_max_diff"] = int(np.abs(np.stack(outputs[backend]) - reference).max())
    row["graphs"] = {k: v["exporter"] for k, v in manifest["graphs"].items()}  # type: ignore[index]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12, help="timed frames per backend (after 2 warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every backend (default 2)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = []
    for i, frame in enumerate(iter_frames(DEMO_DRIVING)):
        if i == args.frames + 2:
            break
        frames.append(frame)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dagan-bench-") as tmp:
        for arch in args.archs:
            rows.append(bench_arch(arch, frames, args.threads, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr)
    import onnxruntime
    import openvino

    versions = (f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
                f"openvino {openvino.__version__}")
    print(f"ms per frame at 256², batch 1, {args.threads} threads, median of {args.frames} frames "
          f"(min–max); {platform.processor() or platform.machine()}; {versions}")
    print("| arch | torch eager | onnxruntime | openvino | max diff vs torch (ORT / OV, uint8 levels) |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[f'{b}_ms']} ({r[f'{b}_ms_range'][0]}–{r[f'{b}_ms_range'][1]})" for b in BACKENDS]  # type: ignore[index]
        print(f"| {r['arch']} | {' | '.join(cells)} | {r['onnxruntime_max_diff']} / {r['openvino_max_diff']} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "frames": args.frames, "versions": versions,
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
