"""Configs validate their values and survive JSON unchanged."""

from __future__ import annotations

import pytest

from rt_dtgan.config import ConfigError, EmbedderConfig, ModelConfig, PreprocessConfig


@pytest.mark.parametrize("size", [64, 128, 256])
def test_presets_survive_json(size):
    config = ModelConfig.for_size(size)
    assert config.image_size == size
    assert ModelConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ModelConfig.for_size(100), "size must be one of"),
        (lambda: PreprocessConfig(left_eye=(0.7, 0.4), right_eye=(0.3, 0.4)), "left of right_eye"),
        (lambda: EmbedderConfig(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda: EmbedderConfig(seed_side=6), "power of two"),
        (lambda: ModelConfig.from_json('{"encoder": {"width": 3}}'), r"model.encoder: unknown keys \['width'\]"),
        (lambda: ModelConfig.from_json('{"encoder": {"channels": 16}}'), "model.encoder.channels: expected a list"),
        (lambda: ModelConfig.from_json("[1, 2"), "not valid JSON"),
    ],
)
def test_bad_values_are_reported(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
