#!/usr/bin/env bash
# The DaGAN++ attention-budget ablation: the 64x64 demo stage trained twice at an equal budget (same data, seed
# and number of steps), once with keys/values pooled to at most 4096 tokens per level (the earlier default; at
# 64x64 that is exact global attention at every level) and once to at most 256 (a 16x16 grid, the default now),
# then scored on held-out self-reconstruction (benchmarks/demo_heldout.py) and the synthetic cross-identity
# protocol (L1/LPIPS/PSNR/SSIM against the exact target, and the depth error of the generated frames).
#
#   scripts/attention_ablation.sh [WORK=runs/attention-ablation]
#   env: STEPS (600), MINUTES (90, a safety cap per arm), IDENTITIES (24), DEPTH (the depth checkpoint both arms
#        share; default the bundled demo model's depth net), PY
#
# Both arms train at the same time, one CPU thread each. Results: WORK/ablation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/attention-ablation}
PY=${PY:-.venv/bin/python}
DAGAN=${DAGAN:-$(dirname "$PY")/dagan}
STEPS=${STEPS:-600}
MINUTES=${MINUTES:-90}
IDENTITIES=${IDENTITIES:-24}
DEPTH=${DEPTH:-src/dagan/assets/demo/dagan++-demo.pt}

mkdir -p "$WORK"
[ -d "$WORK/data-64" ] || $PY scripts/train_demo.py data "$WORK" --size 64 --identities "$IDENTITIES"
declare -A CONFIG=([tokens-4096]=configs/ablations/attention-4096-demo-64.yaml
                   [tokens-256]=configs/demo/dagan++-demo-64.yaml)
pids=()
for arm in tokens-4096 tokens-256; do
    $PY scripts/train_demo.py reenact "$WORK" --arch dagan++ --size 64 --config "${CONFIG[$arm]}" --name "$arm" \
        --depth "$DEPTH" --steps "$STEPS" --minutes "$MINUTES" --threads 1 > "$WORK/$arm.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

{
    echo "# Attention budget ablation: DaGAN++ demo stage at 64x64, $STEPS steps per arm"
    echo
    $PY benchmarks/demo_heldout.py --data "$WORK/data-64" --json "$WORK/heldout.json" \
        --model "keys ≤ 4096 per level=$WORK/tokens-4096/checkpoints/latest.pt" \
        --model "keys ≤ 256 per level=$WORK/tokens-256/checkpoints/latest.pt"
    for arm in tokens-4096 tokens-256; do
        echo
        echo "## synthetic-cross-id, $arm"
        echo
        $DAGAN evaluate --checkpoint "$WORK/$arm/checkpoints/latest.pt" --protocol synthetic-cross-id \
            --no-progress -o "$WORK/synthetic-cross-id-$arm.json"
    done
} | tee "$WORK/ablation.md"
