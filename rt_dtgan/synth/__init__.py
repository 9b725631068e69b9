"""Procedural synthetic faces with ground-truth expressions (numpy + torch, no download).

render(identity, expression, pose, size, noise_seed) -> (S, S, 3) uint8 RGB is a pure
function; sequences carry per-frame ground truth; write_dataset writes the project's
dataset layout. See docs/synth.md.
"""

from rt_dtgan.synth.dataset import parse_synthetic_spec, synthetic_target, write_dataset
from rt_dtgan.synth.expression import (
    APEX_CONTROLS,
    BASIC_EXPRESSIONS,
    CONTROLS,
    EXPRESSION_LABELS,
    NUM_CONTROLS,
    Expression,
    Pose,
    apex_vector,
)
from rt_dtgan.synth.geometry import FaceGeometry
from rt_dtgan.synth.identity import Identity
from rt_dtgan.synth.render import render
from rt_dtgan.synth.sequences import (
    Frame,
    FrameSpec,
    freeform_sequence,
    freeform_track,
    onset_sequence,
    onset_track,
    render_track,
    transfer_ground_truth,
)

__all__ = [
    "APEX_CONTROLS",
    "BASIC_EXPRESSIONS",
    "CONTROLS",
    "EXPRESSION_LABELS",
    "NUM_CONTROLS",
    "Expression",
    "FaceGeometry",
    "Frame",
    "FrameSpec",
    "Identity",
    "Pose",
    "apex_vector",
    "freeform_sequence",
    "freeform_track",
    "onset_sequence",
    "onset_track",
    "parse_synthetic_spec",
    "render",
    "render_track",
    "synthetic_target",
    "transfer_ground_truth",
    "write_dataset",
]
