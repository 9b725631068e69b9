#!/usr/bin/env bash
# The recipe of the default 128 px model: pretrain the encoder A, train a separate judge
# encoder (for expression accuracy), train the GAN on the frozen A and its ablation (G driven
# by H), evaluate on held-out identities, and ship fp16 weights with a model card.
# Every step resumes where it stopped: run the script again to continue.
# Several processes: set LAUNCH="torchrun --nproc_per_node N -m rt_dtgan" (default: rt-dtgan).
set -euo pipefail
RUNS=${RUNS:-runs/default}
LAUNCH=${LAUNCH:-rt-dtgan}
ENCODER_STEPS=${ENCODER_STEPS:-1500}
GAN_STEPS=${GAN_STEPS:-3000}
DATA="--size 128 --min-length 6 --max-length 14"

$LAUNCH train encoder --run-dir "$RUNS/encoder" $DATA --batch-size 8 --steps "$ENCODER_STEPS" --checkpoint-every 50
$LAUNCH train encoder --run-dir "$RUNS/judge" $DATA --batch-size 8 --steps "$ENCODER_STEPS" --checkpoint-every 50 --seed 1
$LAUNCH train gan --run-dir "$RUNS/gan" --encoder "$RUNS/encoder/encoder.safetensors" --size 128 \
    --min-length 6 --max-length 12 --batch-size 4 --steps "$GAN_STEPS" --checkpoint-every 50
$LAUNCH train gan --run-dir "$RUNS/ablation" --encoder "$RUNS/encoder/encoder.safetensors" --size 128 \
    --min-length 6 --max-length 12 --batch-size 4 --steps "$GAN_STEPS" --checkpoint-every 50 --no-suppression
rt-dtgan eval --checkpoint "$RUNS/gan/model.safetensors" --synthetic --identities 60 \
    --judge "$RUNS/judge/encoder.safetensors" --ablation "$RUNS/ablation/model.safetensors" --json "$RUNS/eval.json"
python tools/ship_model.py --runs "$RUNS" --eval "$RUNS/eval.json" --out rt_dtgan/assets
