"""The pipeline's inputs from their specs: a portrait from an image path or 'synthetic:SEED',
and the synthetic driver behind the 'synthetic:SEED' sources of ``media.open_source``."""

from __future__ import annotations

import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face import Target, load_target, prepare_target
from rt_dtgan.media import GeneratedSource, SourceOptions, SyntheticFactory
from rt_dtgan.synth.dataset import SYNTHETIC_PREFIX, parse_synthetic_spec, synthetic_target
from rt_dtgan.synth.sequences import freeform_sequence

SYNTHETIC_SOURCE_SIZE = 256
SYNTHETIC_SOURCE_FPS = 30.0


def load_target_spec(spec: str, config: PreprocessConfig, name: str = "target", max_side: int | None = None) -> Target:
    """'synthetic:SEED' or an image path -> a prepared face.Target aligned for ``config``, its
    longer side brought down to ``max_side`` when larger (None: kept). A malformed
    'synthetic:SEED' raises ValueError."""
    if spec.startswith(SYNTHETIC_PREFIX):
        image = synthetic_target(parse_synthetic_spec(spec), SYNTHETIC_SOURCE_SIZE)
        return prepare_target(image, config, name=f"{name} {spec}", max_side=max_side)
    return load_target(spec, config, max_side=max_side)


def synthetic_source_factory(frames: int | None) -> SyntheticFactory:
    """The media hook for 'synthetic:SEED' sources: a free-form synthetic face (talking,
    blinks, expressions, head motion), endless or ``frames`` long, 256 px at 30 fps."""

    def factory(argument: str, options: SourceOptions) -> GeneratedSource:
        seed = parse_synthetic_spec(f"{SYNTHETIC_PREFIX}{argument}")
        rendered = freeform_sequence(seed, frames or 10**9, SYNTHETIC_SOURCE_SIZE)

        def render(index: int) -> np.ndarray:
            return next(rendered).image

        return GeneratedSource(
            render, options.fps or SYNTHETIC_SOURCE_FPS, frame_count=frames, pace=options.pace, description=f"synthetic:{argument}"
        )

    return factory
