"""Speed and memory of ``dagan animate`` (random weights; the cost does not depend on the weights).

1. Per stage and end to end, ms per frame at the config's resolution (256 for the paper configs), CPU, for
   each architecture: decode (+ resize), driving depth, driving keypoints, generator, encode; the one-off
   source preparation; the whole streaming ``Animator.animate`` call.
2. The naive per-frame loop (what the official demo does per frame, minus its whole-clip preloading): batch 1,
   and the source's depth, keypoints and encodings recomputed for every frame — and the largest difference
   between its frames and the streaming pipeline's (uint8 levels; 0–1 means identical up to rounding).
3. Peak RSS of ``animate`` on driving videos of 100 and 1,000 frames, each in a fresh process (streaming:
   the two should be within a few MB).

    python benchmarks/animate.py [--frames 8] [--batch-size 8] [--archs dagan++ dagan]
                                 [--memory-frames 100 1000] [--memory-config configs/tiny/dagan++-64.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagan.assets import DEMO_DRIVING

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"dagan++": "configs/dagan++-vox-256.yaml", "dagan": "configs/dagan-vox-256.yaml"}
CLIP = DEMO_DRIVING


def _ms(seconds: float, frames: int) -> float:
    return round(1000.0 * seconds / frames, 1)


def speed(arch: str, frames: int, batch_size: int, work: Path) -> dict:
    import numpy as np
    import torch

    from dagan.config import load_config
    from dagan.data.video import VideoWriter, iter_frames, probe_video, resize_rgb
    from dagan.infer.animator import Animator
    from dagan.infer.engine import TorchEngine
    from dagan.models.factory import build_reenactment_models

    torch.manual_seed(0)
    cfg = load_config(ROOT / CONFIGS[arch])
    res = cfg.resolution
    animator = Animator(TorchEngine(build_reenactment_models(cfg, discriminator=False), cfg, device="cpu"))
    m = animator.models
    clip = CLIP
    driving = work / f"driving_{frames}.mp4"
    with VideoWriter(driving, probe_video(clip).rate, crf=12) as w:
        for i, f in enumerate(iter_frames(clip)):
            if i == frames:
                break
            w.write(f)
    source = next(iter_frames(clip))
    out: dict = {"arch": arch, "resolution": res, "frames": frames, "batch_size": batch_size}

    # --- stages, on the same batches the pipeline uses
    t = time.perf_counter()
    decoded = [resize_rgb(f, res) for f in iter_frames(driving)]
    t_decode = time.perf_counter() - t
    t = time.perf_counter()
    state = animator.prepare_source(source, crop=False)
    out["source_once_ms"] = round(1000 * (time.perf_counter() - t), 1)
    transfer = animator.motion_transfer(state, np.stack(decoded[:1]))
    t_depth = t_kp = t_gen = 0.0
    generated = []
    with torch.inference_mode():
        for i in range(0, frames, batch_size):
            x = animator.to_tensor(np.stack(decoded[i : i + batch_size]))
            t = time.perf_counter()
            disp = m.disparity(x)
            t_depth += time.perf_counter() - t
            t = time.perf_counter()
            kp = m.kp_detector(x, disp if m.kp_detector.use_depth else None)
            t_kp += time.perf_counter() - t
            t = time.perf_counter()
            generated.append(animator.engine.predict(state.image, state.cache, transfer(kp), state.keypoints))
            t_gen += time.perf_counter() - t
    images = np.concatenate([animator.to_uint8(g) for g in generated])
    t = time.perf_counter()
    with VideoWriter(work / "encode.mp4", 30) as w:
        w.write_all(images)
    t_encode = time.perf_counter() - t
    out["stages_ms_per_frame"] = {
        "decode+resize": _ms(t_decode, frames),
        "depth": _ms(t_depth, frames),
        "keypoints": _ms(t_kp, frames),
        "generator": _ms(t_gen, frames),
        "encode": _ms(t_encode, frames),
    }

    # --- end to end (streaming pipeline)
    src_png = work / "source.png"
    from PIL import Image

    Image.fromarray(source).save(src_png)
    t = time.perf_counter()
    animator.animate(
        src_png,
        driving,
        work / "stream.mp4",
        crop=False,
        audio=False,
        batch_size=batch_size,
        frames_out=work / "stream_frames",
        progress=False,
    )
    t_stream = time.perf_counter() - t
    out["end_to_end_ms_per_frame"] = _ms(t_stream, frames)

    # --- naive per-frame loop: no source caching, no batching
    from dagan.infer.motion import MotionTransfer

    t = time.perf_counter()
    naive = []
    with torch.inference_mode():
        anchor = None
        for f in iter_frames(driving):
            s = animator.to_tensor(resize_rgb(load_png(src_png), res))
            d = animator.to_tensor(resize_rgb(f, res))
            s_disp, d_disp = m.disparity(s), m.disparity(d)
            kp_s = m.kp_detector(s, s_disp if m.kp_detector.use_depth else None)
            kp_d = m.kp_detector(d, d_disp if m.kp_detector.use_depth else None)
            anchor = anchor or kp_d
            kp_norm = MotionTransfer.create(kp_s, anchor, "relative", True)(kp_d)
            pred = m.generator(s, kp_norm, kp_s, source_depth=s_disp)["prediction"]
            naive.append(animator.to_uint8(pred)[0])
    with VideoWriter(work / "naive.mp4", 30) as w:
        w.write_all(naive)
    t_naive = time.perf_counter() - t
    out["naive_ms_per_frame"] = _ms(t_naive, frames)
    out["speedup_over_naive"] = round(t_naive / t_stream, 2)
    stream_frames = np.stack([load_png(p) for p in sorted((work / "stream_frames").glob("*.png"))])
    out["max_abs_diff_vs_naive_uint8"] = int(
        np.abs(stream_frames.astype(int) - np.stack(naive).astype(int)).max()
    )
    return out


def load_png(path: Path):  # noqa: ANN201 - numpy array
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def memory_inputs(config: str, frame_counts: list[int], work: Path) -> Path:
    """A random-weight checkpoint of ``config`` and the hello clip looped to each frame count."""
    import torch

    from dagan.checkpoints.format import save_checkpoint
    from dagan.config import load_config
    from dagan.data.video import VideoWriter, iter_frames, probe_video
    from dagan.models.factory import build_reenactment_models

    torch.manual_seed(0)
    cfg = load_config(ROOT / config)
    ckpt = work / "model.pt"
    m = build_reenactment_models(cfg, discriminator=False)
    modules = {"kp_detector": m.kp_detector, "generator": m.generator}
    if m.depth_net is not None:
        modules["depth_net"] = m.depth_net
    save_checkpoint(ckpt, kind="reenactment", config=cfg.to_dict(), rng=False, modules=modules)
    clip = CLIP
    clip_frames = list(iter_frames(clip))  # 249 small frames, looped to the wanted length
    for n in frame_counts:
        with VideoWriter(work / f"loop_{n}.mp4", probe_video(clip).rate, preset="ultrafast") as vw:
            for i in range(n):
                vw.write(clip_frames[i % len(clip_frames)])
    return ckpt


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM from /proc (Linux), which, unlike ru_maxrss, is not inherited from
    the parent across fork + exec; ru_maxrss elsewhere."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(frames: int, work: str) -> None:
    """Runs in a fresh process: animate the ``frames``-frame video, print peak RSS (MB) as JSON."""
    from dagan.infer.animator import Animator

    w = Path(work)
    clip = CLIP
    driving = w / f"loop_{frames}.mp4"
    base = peak_rss_mb()
    animator = Animator.from_checkpoint(w / "model.pt", device="cpu")
    t = time.perf_counter()
    animator.animate(clip, driving, w / f"out_{frames}.mp4", crop=False, audio=False, progress=False)
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "frames": frames,
                "peak_rss_mb": round(peak, 1),
                "rss_before_mb": round(base, 1),
                "ms_per_frame": _ms(seconds, frames),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--archs", nargs="*", default=["dagan++", "dagan"], choices=sorted(CONFIGS))
    p.add_argument("--memory-frames", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--memory-config", default="configs/tiny/dagan++-64.yaml")
    p.add_argument("--_memory-child", nargs=2, metavar=("FRAMES", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._memory_child:
        frames, work = args._memory_child
        memory_child(int(frames), work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            work = Path(tmp) / arch.replace("+", "p")
            work.mkdir()
            print(json.dumps(speed(arch, args.frames, args.batch_size, work)), flush=True)
        mem_dir = Path(tmp) / "memory"
        mem_dir.mkdir()
        if args.memory_frames:
            memory_inputs(args.memory_config, args.memory_frames, mem_dir)
        for n in args.memory_frames:
            proc = subprocess.run(
                [sys.executable, __file__, "--_memory-child", str(n), str(mem_dir)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["config"] = args.memory_config
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
