"""How well does the encoder A read real faces? The gap between synthetic and real, measured
without the generator.

    python tools/encoder_gap.py --encoder CKPT [--clips DIR] [--synthetic 3] [--json OUT]

Each clip goes through the live path's FaceTracker (eye-aligned crops) and A's windowed z_d,
as `rt-dtgan live` computes it. A's control read-out of z_d (the linear head pretraining fits
to the synthetic expression controls) gives a mouth opening (jaw_drop + lips_part) and an eye
opening (eye_widen - blink); MediaPipe measures both on the source frame. Reported per clip:
their Pearson r. The same on free-form synthetic drivers (``synthetic:1000000`` on, identities
never trained on) is the in-domain reference the real clips are held to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from real_driving import REAL, pearson, real_clips

from rt_dtgan.face import FaceTracker
from rt_dtgan.media import open_source
from rt_dtgan.models.checkpoint import load_checkpoint
from rt_dtgan.models.dynamics import start_windowed, step_windowed
from rt_dtgan.pipeline import synthetic_source_factory
from rt_dtgan.synth.expression import CONTROLS
from rt_dtgan.train.data import EVAL_IDENTITY_OFFSET, to_video_tensor

MOUTH_CONTROLS = (CONTROLS.index("jaw_drop"), CONTROLS.index("lips_part"))
EYE_WIDEN, BLINK = CONTROLS.index("eye_widen"), CONTROLS.index("blink")
SYNTHETIC_FRAMES = 300


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", required=True, help="an encoder or model checkpoint")
    parser.add_argument("--clips", type=Path, default=REAL, help="folder of real driving clips (.mp4)")
    parser.add_argument("--synthetic", type=int, default=3, help="free-form synthetic drivers as the reference")
    parser.add_argument("--json", help="write the figures here")
    return parser.parse_args()


@torch.no_grad()
def read_source(encoder, window: int, spec: str) -> dict:
    """Track ``spec`` frame by frame; -> r of A's read-out against MediaPipe, mouth and eyes."""
    measured, read, state = [], [], None
    synthetic = synthetic_source_factory(SYNTHETIC_FRAMES)
    with FaceTracker() as tracker, open_source(spec, pace=False, synthetic_factory=synthetic) as source:
        for frame in source:
            found = tracker.track(frame.image, frame.pts_s)
            if not found.found:
                continue
            crop = to_video_tensor(found.crop[None])
            z_d, state = start_windowed(encoder, crop, window) if state is None else step_windowed(encoder, crop, state)
            controls = encoder.regress_controls(z_d)[0]
            read.append((controls[list(MOUTH_CONTROLS)].sum().item(), (controls[EYE_WIDEN] - controls[BLINK]).item()))
            measured.append((found.landmarks.mouth_opening, found.landmarks.eye_opening))
    measured, read = np.asarray(measured), np.asarray(read)
    return {
        "frames": len(read),
        "mouth_r": pearson(measured[:, 0], read[:, 0]) if len(read) else None,
        "eye_r": pearson(measured[:, 1], read[:, 1]) if len(read) else None,
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    clips = real_clips(args.clips)
    model = load_checkpoint(args.encoder, required_parts=["encoder"])
    encoder, window = model.encoder.eval(), model.config.stream_window
    sources = [str(clip) for clip in clips] + [f"synthetic:{EVAL_IDENTITY_OFFSET + i}" for i in range(args.synthetic)]
    results = {}
    for spec in sources:
        results[Path(spec).name] = read_source(encoder, window, spec)
        print(Path(spec).name, json.dumps(results[Path(spec).name]), flush=True)
    payload = {"encoder": Path(args.encoder).name, "window": window, "sources": results}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
