#!/usr/bin/env bash
# The recipe of the geometry model (A reads the face mesh, G warps the portrait; docs/geometry.md):
#   1. prepare the real clips of ../shared/data/real (GRID speakers and the driving clips) with the live tracker;
#   2. train it: stage 1, A and F on keypoint motion; stage 2, G's refiner inside the opening mouth;
#      stage 3, the refiner against a discriminator of mouth interiors (the paper's spatial term);
#      five clips are held out (the drivers of three real pairs and two more) and scored at every checkpoint;
#   3. measure it on real pairs of different people, beside the training-free warp (tools/real_pairs.py).
# Every step resumes where it stopped: run the script again to continue.
set -euo pipefail
REAL=${REAL:-../shared/data/real}
RUNS=${RUNS:-runs/geometry}
STEPS=${STEPS:-2000}
REFINE_STEPS=${REFINE_STEPS:-600}
ADVERSARIAL_STEPS=${ADVERSARIAL_STEPS:-900}
ADVERSARIAL_WEIGHT=${ADVERSARIAL_WEIGHT:-0.2}
HOLD_OUT=${HOLD_OUT:-bbaf2n,lbax4n,swiz3n,lp_d3,tpsmm_driving}

for set in grid driving; do
    rt-dtgan data prepare --source "$REAL/$set" --out "$RUNS/data/$set" --layout folder --size 128
done
rt-dtgan train geometry --run-dir "$RUNS/model" --data "$RUNS/data/grid" --data "$RUNS/data/driving" \
    --hold-out "$HOLD_OUT" --steps "$STEPS" --refine-steps "$REFINE_STEPS" \
    --adversarial-steps "$ADVERSARIAL_STEPS" --adversarial-weight "$ADVERSARIAL_WEIGHT"
python tools/real_pairs.py --methods warp,model --checkpoint "$RUNS/model/model.safetensors" \
    --json "$RUNS/real-pairs.json"
