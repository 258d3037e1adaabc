"""Peak memory, time and FLOPs of one DaGAN++ forward (batch 1, CPU) at the paper's resolutions.

Each resolution runs in a fresh subprocess so that peak RSS is its own. The forward covers what one
generated frame costs: depth of source and driving, both keypoint sets, and the generator.

    python benchmarks/forward_cost.py [--configs configs/dagan++-vox-256.yaml configs/dagan++-hdtf-512.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(config_path: str, repeats: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dagan.config import load_config
    from dagan.models.factory import build_reenactment_models

    torch.manual_seed(0)
    cfg = load_config(config_path)
    models = build_reenactment_models(cfg, discriminator=False).eval()
    res = cfg.resolution
    source = torch.rand(1, 3, res, res)
    driving = torch.rand(1, 3, res, res)

    def forward() -> torch.Tensor:
        d_s = models.disparity(source)
        d_d = models.disparity(driving)
        kp_s = models.kp_detector(source, d_s)
        kp_d = models.kp_detector(driving, d_d)
        return models.generator(source, kp_d, kp_s, source_depth=d_s)["prediction"]

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.inference_mode():
        forward()  # warm-up; also the peak-memory run
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            forward()
            times.append(time.perf_counter() - t0)
        with FlopCounterMode(display=False) as counter:
            forward()
    return {
        "config": config_path,
        "resolution": res,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak, 1),
        "rss_before_forward_mb": round(base_rss, 1),
        "seconds_per_forward": round(min(times), 3),
        "gflops": round(counter.get_total_flops() / 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", default=["configs/dagan++-vox-256.yaml", "configs/dagan++-hdtf-512.yaml"]
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeats)))
        return
    rows = []
    for cfg in args.configs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", cfg, "--repeats", str(args.repeats)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| config | resolution | peak RSS (MB) | s / forward | GFLOPs |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['resolution']} | {r['peak_rss_mb']} | {r['seconds_per_forward']} | {r['gflops']} |"
        )


if __name__ == "__main__":
    main()
