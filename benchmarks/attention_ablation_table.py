"""The table of ``scripts/attention_ablation.sh``: each run's scores, each arm's mean over the seeds, and the
seed-to-seed spread within an arm next to the gap between the arms (is the gap larger than the noise?).

    python benchmarks/attention_ablation_table.py WORK SEED [SEED ...]

Reads ``WORK/heldout.json`` (benchmarks/demo_heldout.py, rows named "keys ≤ T per level, seed S") and
``WORK/synthetic-cross-id-tokens-T-seedS.json`` (dagan evaluate); prints Markdown.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ARMS = (4096, 256)
#: (column, source, key, lower is better)
COLUMNS = (
    ("held-out L1", "heldout", "l1", True),
    ("held-out LPIPS", "heldout", "lpips", True),
    ("cross-id L1", "synthetic", "L1", True),
    ("cross-id LPIPS", "synthetic", "LPIPS[alex,v0.1]", True),
    ("cross-id PSNR", "synthetic", "PSNR[L=1]", False),
    ("cross-id SSIM", "synthetic", "SSIM[standard,L=1]", False),
    ("depth rel. structure", "synthetic", "Depth-RelStruct", True),
    ("depth AbsRel", "synthetic", "AbsRel[median]", True),
)


def scores(work: Path, tokens: int, seed: str, heldout: dict) -> dict[str, float]:
    synthetic = json.loads((work / f"synthetic-cross-id-tokens-{tokens}-seed{seed}.json").read_text())["metrics"]
    row = heldout["rows"][f"keys ≤ {tokens} per level, seed {seed}"]
    sources = {"heldout": {k: row[k] for k in ("l1", "lpips")},
               "synthetic": {k: v["value"] for k, v in synthetic.items() if v.get("available")}}  # fmt: skip
    return {name: float(sources[src][key]) for name, src, key, _ in COLUMNS}


def main() -> None:
    work, seeds = Path(sys.argv[1]), sys.argv[2:]
    heldout = json.loads((work / "heldout.json").read_text())
    runs = {(t, s): scores(work, t, s, heldout) for t in ARMS for s in seeds}
    names = [c[0] for c in COLUMNS]
    print("| keys per level | seed | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for (t, s), r in runs.items():
        print(f"| ≤ {t} | {s} | " + " | ".join(f"{r[n]:.4f}" for n in names) + " |")
    means = {t: {n: statistics.fmean(runs[t, s][n] for s in seeds) for n in names} for t in ARMS}
    for t in ARMS:
        print(f"| ≤ {t} | mean | " + " | ".join(f"{means[t][n]:.4f}" for n in names) + " |")
    if len(seeds) > 1:
        spread = {n: max(max(runs[t, s][n] for s in seeds) - min(runs[t, s][n] for s in seeds) for t in ARMS)
                  for n in names}  # fmt: skip
        print("| seed-to-seed spread (largest within an arm) | | " + " | ".join(f"{spread[n]:.4f}" for n in names)
              + " |")  # fmt: skip
    print("| gap: ≤ 256 mean − ≤ 4096 mean | | " + " | ".join(f"{means[256][n] - means[4096][n]:+.4f}" for n in names)
          + " |")  # fmt: skip
    better = {n: ("lower" if low else "higher") for n, _, _, low in COLUMNS}
    print("\n" + "; ".join(f"{n}: {better[n]} is better" for n in names) + ".")


if __name__ == "__main__":
    main()
