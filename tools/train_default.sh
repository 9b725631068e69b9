#!/usr/bin/env bash
# The recipe of the default 128 px model:
#   1. pretrain the encoder A on synthetic onsets (head drift, per-frame sensor noise);
#   2. train a separate judge encoder (another seed) that scores expression accuracy, then fine-tune it on
#      eye-aligned sequences with one noise pattern per sequence, as the evaluation renders them;
#   3. GAN stage 1 on A, with the head drift and per-frame noise of step 1;
#   4. GAN stage 2 from stage 1's G (F starts afresh), on eye-aligned sequences with one noise pattern per
#      sequence (the defaults of `train gan`), and its ablation (G driven by H) from the same start;
#   5. stage 3 from stage 2's F and G: reconstruction only (eq. 5 plus the L1 over the moving pixels; no
#      discriminators, no eq. 6), three times faster per frame, at a higher learning rate;
#   6. encoder-live: A again, on what the live stream's window sees (onsets alternating with a neutral anchor
#      followed by free-form motion) with the lower face stretched by up to 1.5 (real faces are longer);
#   7. stage 4 on encoder-live, from stage 3's F and G: reconstruction on the same mixed sequences, and its
#      ablation (G driven by H) from the same start;
#   8. stage 5 from stage 4's F and G: the full eq. 7 (discriminators, eq. 6) plus the L1 over the moving
#      pixels, fresh discriminators, 500 steps; and the same for the ablation from its stage 4;
#   9. evaluate stage 5 on held-out identities and ship its fp16 weights with a model card.
# Every step resumes where it stopped: run the script again to continue.
# Several processes: set LAUNCH="torchrun --nproc_per_node N -m rt_dtgan" (default: rt-dtgan).
set -euo pipefail
RUNS=${RUNS:-runs/default}
LAUNCH=${LAUNCH:-rt-dtgan}
ENCODER_STEPS=${ENCODER_STEPS:-1500}
JUDGE_STEPS=${JUDGE_STEPS:-1500}
JUDGE_ALIGNED_STEPS=${JUDGE_ALIGNED_STEPS:-800}
STAGE1_STEPS=${STAGE1_STEPS:-860}
STAGE2_STEPS=${STAGE2_STEPS:-800}
STAGE3_STEPS=${STAGE3_STEPS:-1100}
STAGE4_STEPS=${STAGE4_STEPS:-1500}
STAGE5_STEPS=${STAGE5_STEPS:-500}
ENCODER="$RUNS/encoder/encoder.safetensors"
STAGE1="$RUNS/gan-drift/model.safetensors"

$LAUNCH train encoder --run-dir "$RUNS/encoder" --size 128 --min-length 6 --max-length 14 --batch-size 8 \
    --steps "$ENCODER_STEPS" --checkpoint-every 50
$LAUNCH train encoder --run-dir "$RUNS/judge" --size 128 --min-length 6 --max-length 14 --batch-size 8 \
    --steps "$JUDGE_STEPS" --checkpoint-every 50 --seed 1
$LAUNCH train encoder --run-dir "$RUNS/judge-aligned" --init "$RUNS/judge/encoder.safetensors" --size 128 --min-length 6 \
    --max-length 16 --batch-size 8 --head-pose aligned --sensor-noise per-sequence --steps "$JUDGE_ALIGNED_STEPS" \
    --checkpoint-every 50 --seed 1
$LAUNCH train gan --run-dir "$RUNS/gan-drift" --encoder "$ENCODER" --size 128 --min-length 6 --max-length 12 \
    --batch-size 4 --steps "$STAGE1_STEPS" --checkpoint-every 50 --head-pose drift --sensor-noise per-frame --lambda-motion 0
for run in gan ablation; do
    extra=()
    [[ $run == ablation ]] && extra=(--no-suppression)
    $LAUNCH train gan --run-dir "$RUNS/$run" --encoder "$ENCODER" --init "$STAGE1" --init-parts generator --size 128 --min-length 6 \
        --max-length 10 --batch-size 4 --steps "$STAGE2_STEPS" --checkpoint-every 50 --lambda-motion 0 "${extra[@]}"
done
RECONSTRUCTION=(--size 128 --min-length 6 --batch-size 6 --lr 1e-3 --lambda-adversarial 0 --lambda-dynamics 0
    --init-parts embedder,generator --checkpoint-every 50)
$LAUNCH train gan --run-dir "$RUNS/gan-recon" --encoder "$ENCODER" --init "$RUNS/gan/model.safetensors" \
    --max-length 12 --steps "$STAGE3_STEPS" "${RECONSTRUCTION[@]}"
$LAUNCH train encoder --run-dir "$RUNS/encoder-live" --size 128 --min-length 6 --max-length 17 --batch-size 8 \
    --steps "$ENCODER_STEPS" --checkpoint-every 50 --lower-face-stretch 1.5 --sequences mixed
for run in gan-live ablation-live; do
    extra=()
    [[ $run == ablation-live ]] && extra=(--no-suppression)
    $LAUNCH train gan --run-dir "$RUNS/$run" --encoder "$RUNS/encoder-live/encoder.safetensors" \
        --init "$RUNS/gan-recon/model.safetensors" --max-length 17 --sequences mixed --steps "$STAGE4_STEPS" \
        "${RECONSTRUCTION[@]}" "${extra[@]}"
done
for run in gan ablation; do
    extra=()
    [[ $run == ablation ]] && extra=(--no-suppression)
    $LAUNCH train gan --run-dir "$RUNS/$run-adv" --encoder "$RUNS/encoder-live/encoder.safetensors" \
        --init "$RUNS/$run-live/model.safetensors" --init-parts embedder,generator --size 128 --min-length 6 \
        --max-length 17 --sequences mixed --batch-size 6 --steps "$STAGE5_STEPS" --checkpoint-every 50 "${extra[@]}"
done
rt-dtgan eval --checkpoint "$RUNS/gan-adv/model.safetensors" --synthetic --identities 60 \
    --judge "$RUNS/judge-aligned/encoder.safetensors" --ablation "$RUNS/ablation-adv/model.safetensors" --json "$RUNS/eval.json"
python tools/real_driving.py --checkpoint "$RUNS/gan-adv/model.safetensors" --target synthetic:1000004 \
    --json "$RUNS/real-driving.json"
python tools/ship_model.py --runs "$RUNS" --eval "$RUNS/eval.json" --out rt_dtgan/assets --real-driving "$RUNS/real-driving.json"
