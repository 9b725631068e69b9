"""Ship a trained paper model (tools/train_default.sh) inside the package: fp16 weights and a model card.

    python tools/ship_model.py --runs runs/default --eval runs/default/eval.json --out rt_dtgan/assets \
        [--real-driving bench/results/real-driving-128.json]

Reads RUNS/gan-adv/model.safetensors and the runs' config.json and metrics.jsonl; writes
OUT/paper-128.safetensors (parts A, F, G in float16) and OUT/MODEL_CARD_paper.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import environment  # noqa: E402

from rt_dtgan.models import INFERENCE_PARTS  # noqa: E402
from rt_dtgan.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

# Gaps between logged steps longer than this are pauses between sessions, not training.
PAUSE_S = 600


def training_record(run_dir: Path) -> dict:
    """Steps done and active training time of a run, from its metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [row["time"] for row in rows if "time" in row]
    active = sum(b - a for a, b in zip(times, times[1:]) if 0 < b - a < PAUSE_S)
    return {
        "steps": rows[-1]["step"] if rows else 0,
        "hours": round(active / 3600, 2),
        "config": json.loads((run_dir / "config.json").read_text()),
    }


# The recipe's runs in order (tools/train_default.sh); the shipped model is the last GAN run.
RUNS = (
    "encoder",
    "judge",
    "judge-aligned",
    "gan-drift",
    "gan",
    "ablation",
    "gan-recon",
    "encoder-live",
    "gan-live",
    "ablation-live",
    "gan-adv",
    "ablation-adv",
)
SHIPPED_RUN = "gan-adv"


def model_card(records: dict[str, dict], figures: dict, weights: Path, real_driving: dict | None) -> str:
    lines = [
        "# rt-dtgan default model (128 px)",
        "",
        f"Weights: `{weights.name}`, float16, {weights.stat().st_size / 2**20:.1f} MiB; parts A, F, G.",
        "Data: synthetic faces only (rt_dtgan/synth), identity seeds 0 to 4,999, per-sequence colour",
        "jitter. No real faces. The recipe is tools/train_default.sh; its stages, in order:",
        "",
        "- encoder, judge: A and a separate judge pretrained on onsets of the six basic expressions",
        "  (6 to 14 frames, head drift, fresh sensor noise per frame);",
        "- judge-aligned: the judge fine-tuned on eye-aligned onsets with one noise pattern per",
        "  sequence, as the evaluation renders them (it scores expression accuracy);",
        "- gan-drift, gan, ablation: the GAN of section 3.3 (eq. 7), first on drifting onsets, then on",
        "  eye-aligned onsets with one noise pattern per sequence (gan and its ablation, G driven by H);",
        "- gan-recon: F and G by reconstruction (eq. 5 plus the L1 over the moving pixels, no",
        "  discriminators), from gan;",
        "- encoder-live: A retrained on what the live stream's window sees (onsets alternating with",
        "  a neutral anchor followed by free-form motion, up to 17 frames) with the lower face",
        "  stretched by up to 1.5 (real faces are longer than the synthetic ones);",
        "- gan-live, ablation-live: F and G by reconstruction on encoder-live, on the same mixed",
        "  sequences, both from gan-recon (ablation-live driven by H);",
        "- gan-adv, ablation-adv: the full eq. 7 plus the L1 over the moving pixels, fresh",
        "  discriminators, from gan-live and ablation-live; gan-adv is this model, ablation-adv its ablation.",
        "",
        f"Hardware: {environment()['device']} (torch {torch.__version__}).",
        "",
        "| run | steps | active hours |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {record['steps']} | {record['hours']} |" for name, record in records.items()]
    lines += ["", "Evaluation on held-out identities (`rt-dtgan eval`):", "", "```json", json.dumps(figures, indent=2), "```", ""]
    if real_driving is not None:
        lines += [
            "Real driving clips on a synthetic target (`tools/real_driving.py`), Pearson r of MediaPipe's",
            "mouth and eye opening on source and output:",
            "",
        ]
        lines += ["| clip | mouth r | eye r |", "|---|---|---|"]
        lines += [f"| {clip} | {row['mouth_opening_r']:.2f} | {row['eye_opening_r']:.2f} |" for clip, row in real_driving["clips"].items()]
        lines += [""]
    lines += ["Training configs:", ""]
    for name, record in records.items():
        lines += [f"- {name}: `{json.dumps(record['config'])}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--eval", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--real-driving", type=Path, help="the JSON of tools/real_driving.py for this model")
    args = parser.parse_args()
    model = load_checkpoint(args.runs / SHIPPED_RUN / "model.safetensors")
    weights = save_checkpoint(args.out / "paper-128.safetensors", model, parts=INFERENCE_PARTS, dtype=torch.float16)
    records = {name: training_record(args.runs / name) for name in RUNS if (args.runs / name).is_dir()}
    real_driving = json.loads(args.real_driving.read_text()) if args.real_driving else None
    card = model_card(records, json.loads(args.eval.read_text()), weights, real_driving)
    (args.out / "MODEL_CARD_paper.md").write_text(card)
    print(f"wrote {weights} and {args.out / 'MODEL_CARD_paper.md'}")


if __name__ == "__main__":
    main()
