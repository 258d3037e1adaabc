#!/usr/bin/env bash
# The DaGAN++ attention-budget ablation: the 64x64 demo stage trained at an equal budget (same data, seeds and
# number of steps), with keys/values pooled to at most 4096 tokens per level (the earlier default; at 64x64 that
# is exact global attention at every level) and to at most 256 (a 16x16 grid, the default now), once per seed;
# then scored on held-out self-reconstruction (benchmarks/demo_heldout.py) and the synthetic cross-identity
# protocol (L1/LPIPS/PSNR/SSIM against the exact target, and the depth error of the generated frames).
#
#   scripts/attention_ablation.sh [WORK=runs/attention-ablation]
#   env: STEPS (1200), SEEDS ("0 1"), MINUTES (90, a safety cap per run), IDENTITIES (24), DEPTH (the depth
#        checkpoint every run shares; default the bundled demo model's depth net), PY
#
# The two arms of a seed train at the same time, one CPU thread each (~45 minutes on 2 cores); finished runs
# are kept and not trained again. Results: WORK/ablation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/attention-ablation}
PY=${PY:-.venv/bin/python}
DAGAN=${DAGAN:-$(dirname "$PY")/dagan}
STEPS=${STEPS:-1200}
SEEDS=${SEEDS:-0 1}
MINUTES=${MINUTES:-90}
IDENTITIES=${IDENTITIES:-24}
DEPTH=${DEPTH:-src/dagan/assets/demo/dagan++-demo.pt}
declare -A CONFIG=([4096]=configs/ablations/attention-4096-demo-64.yaml [256]=configs/demo/dagan++-demo-64.yaml)

mkdir -p "$WORK"
[ -d "$WORK/data-64" ] || $PY scripts/train_demo.py data "$WORK" --size 64 --identities "$IDENTITIES"
for seed in $SEEDS; do
    pids=()
    for tokens in 4096 256; do
        run=tokens-$tokens-seed$seed
        [ -f "$WORK/$run/checkpoints/latest.pt" ] && continue
        $PY scripts/train_demo.py reenact "$WORK" --arch dagan++ --size 64 --config "${CONFIG[$tokens]}" \
            --name "$run" --seed "$seed" --depth "$DEPTH" --steps "$STEPS" --minutes "$MINUTES" --threads 1 \
            > "$WORK/$run.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
done

models=()
for seed in $SEEDS; do
    for tokens in 4096 256; do
        models+=(--model "keys ≤ $tokens per level, seed $seed=$WORK/tokens-$tokens-seed$seed/checkpoints/latest.pt")
    done
done
{
    echo "# Attention budget ablation: DaGAN++ demo stage at 64x64, $STEPS steps per run, seeds $SEEDS"
    echo
    $PY benchmarks/demo_heldout.py --data "$WORK/data-64" --json "$WORK/heldout.json" "${models[@]}"
    for seed in $SEEDS; do
        for tokens in 4096 256; do
            run=tokens-$tokens-seed$seed
            [ -f "$WORK/synthetic-cross-id-$run.json" ] || $DAGAN evaluate --protocol synthetic-cross-id \
                --checkpoint "$WORK/$run/checkpoints/latest.pt" --no-progress -o "$WORK/synthetic-cross-id-$run.json" \
                > /dev/null
        done
    done
    echo
    echo "## All scores (held-out, and the synthetic cross-identity protocol: dagan evaluate)"
    echo
    $PY benchmarks/attention_ablation_table.py "$WORK" $SEEDS
} | tee "$WORK/ablation.md"
