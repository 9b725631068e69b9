#!/usr/bin/env bash
# The recipe of the geometry model (A reads the face mesh, G warps the portrait; docs/geometry.md):
#   1. prepare the real clips of ../shared/data/real (GRID speakers and the driving clips) with the live tracker
#      (A reads the frontal mesh: the head's pose taken out against rt_dtgan/assets/canonical_face.npy,
#      which tools/canonical_face.py made once from the GRID clips and which is not remade here);
#   2. train it: stage 1, A and F on keypoint motion; stage 2, G's refiner inside the opening mouth;
#      stage 3, the refiner against a discriminator of mouth interiors (the paper's spatial term);
#      five clips are held out (the drivers of three real pairs and two more) and scored at every checkpoint;
#   3. measure it on real pairs of different people, beside the training-free warp (tools/real_pairs.py),
#      and whether its warp ever folds (tools/warp_folds.py);
#   4. what `rt-dtgan eval` scores it with: its ablation (the same recipe, F driven by H instead of z_d) and
#      a judge (an expression recogniser on pixels, trained apart on synthetic onsets, then fine-tuned on
#      eye-aligned ones as the evaluation renders them), both shipped in float16; then the evaluation.
# Every step resumes where it stopped: run the script again to continue.
set -euo pipefail
REAL=${REAL:-../shared/data/real}
RUNS=${RUNS:-runs/geometry}
STEPS=${STEPS:-2000}
REFINE_STEPS=${REFINE_STEPS:-600}
ADVERSARIAL_STEPS=${ADVERSARIAL_STEPS:-900}
ADVERSARIAL_WEIGHT=${ADVERSARIAL_WEIGHT:-0.2}
HOLD_OUT=${HOLD_OUT:-bbaf2n,lbax4n,swiz3n,lp_d3,tpsmm_driving}
JUDGE_STEPS=${JUDGE_STEPS:-1500}
JUDGE_ALIGNED_STEPS=${JUDGE_ALIGNED_STEPS:-800}

for set in grid driving; do
    rt-dtgan data prepare --source "$REAL/$set" --out "$RUNS/data/$set" --layout folder --size 128
done
for run in model model-ablation; do
    extra=()
    [ "$run" = model-ablation ] && extra=(--no-suppression)
    rt-dtgan train geometry --run-dir "$RUNS/$run" --data "$RUNS/data/grid" --data "$RUNS/data/driving" \
        --hold-out "$HOLD_OUT" --steps "$STEPS" --refine-steps "$REFINE_STEPS" \
        --adversarial-steps "$ADVERSARIAL_STEPS" --adversarial-weight "$ADVERSARIAL_WEIGHT" "${extra[@]}"
done
python tools/real_pairs.py --methods warp,model --checkpoint "$RUNS/model/model.safetensors" \
    --json "$RUNS/real-pairs.json"
python tools/warp_folds.py --checkpoint "$RUNS/model/model.safetensors" --json "$RUNS/warp-folds.json"
rt-dtgan train encoder --run-dir "$RUNS/judge" --size 128 --min-length 6 --max-length 14 --batch-size 8 \
    --steps "$JUDGE_STEPS" --checkpoint-every 50 --seed 1
rt-dtgan train encoder --run-dir "$RUNS/judge-aligned" --init "$RUNS/judge/encoder.safetensors" --size 128 \
    --min-length 6 --max-length 16 --batch-size 8 --head-pose aligned --sensor-noise per-sequence \
    --steps "$JUDGE_ALIGNED_STEPS" --checkpoint-every 50 --seed 1
python tools/ship_geometry.py --model "$RUNS/model/model.safetensors" --judge "$RUNS/judge-aligned/encoder.safetensors" \
    --ablation "$RUNS/model-ablation/model.safetensors" --out rt_dtgan/assets
rt-dtgan eval --checkpoint "$RUNS/model/model.safetensors" --synthetic --identities 60 \
    --ablation rt_dtgan/assets/geometry-128-ablation.safetensors --json "$RUNS/eval.json"
