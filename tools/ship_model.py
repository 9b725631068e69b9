"""Ship a trained model as the package default: fp16 weights and a model card.

    python tools/ship_model.py --runs runs/default --eval runs/default/eval.json --out rt_dtgan/assets

Reads RUNS/gan/model.safetensors and the runs' config.json and metrics.jsonl; writes
OUT/default-128.safetensors (parts A, F, G in float16) and OUT/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import environment  # noqa: E402

from rt_dtgan.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from rt_dtgan.models import INFERENCE_PARTS  # noqa: E402

# Gaps between logged steps longer than this are pauses between sessions, not training.
PAUSE_S = 600


def training_record(run_dir: Path) -> dict:
    """Steps done and active training time of a run, from its metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [row["time"] for row in rows if "time" in row]
    active = sum(b - a for a, b in zip(times, times[1:]) if 0 < b - a < PAUSE_S)
    return {"steps": rows[-1]["step"] if rows else 0, "hours": round(active / 3600, 2), "config": json.loads((run_dir / "config.json").read_text())}


def model_card(records: dict[str, dict], figures: dict, weights: Path) -> str:
    lines = [
        "# rt-dtgan default model (128 px)",
        "",
        f"Weights: `{weights.name}`, float16, {weights.stat().st_size / 2**20:.1f} MiB; parts A, F, G.",
        "Data: synthetic faces only (rt_dtgan/synth), identity seeds 0 to 4,999, onsets of the six",
        "basic expressions subsampled to 6 to 14 frames, per-sequence colour jitter. No real faces.",
        "The encoder, the judge and GAN stage 1 (gan-drift) see the onsets' slow head drift and fresh",
        "sensor noise on every frame; GAN stage 2 (gan, and its ablation) starts from stage 1's G, with",
        "a fresh F (variance-preserving initialisation), and sees eye-aligned sequences (yaw and pitch",
        "only) with one noise pattern per sequence.",
        "The recipe is tools/train_default.sh.",
        f"Hardware: {environment()['device']} (torch {torch.__version__}).",
        "",
        "| run | steps | active hours |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {record['steps']} | {record['hours']} |" for name, record in records.items()]
    lines += ["", "Evaluation on held-out identities (`rt-dtgan eval`):", "", "```json", json.dumps(figures, indent=2), "```", ""]
    lines += ["Training configs:", ""]
    for name, record in records.items():
        lines += [f"- {name}: `{json.dumps(record['config'])}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--eval", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    model = load_checkpoint(args.runs / "gan" / "model.safetensors")
    weights = save_checkpoint(args.out / "default-128.safetensors", model, parts=INFERENCE_PARTS, dtype=torch.float16)
    records = {name: training_record(args.runs / name) for name in ("encoder", "judge", "gan-drift", "gan", "ablation") if (args.runs / name).is_dir()}
    card = model_card(records, json.loads(args.eval.read_text()), weights)
    (args.out / "MODEL_CARD.md").write_text(card)
    print(f"wrote {weights} and {args.out / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
