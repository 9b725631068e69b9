"""Preparing real face-video datasets once, with the live path's crop and alignment, into a
cached dataset for the trainer (docs/prepare.md)."""

from rt_dtgan.prepare.layouts import LAYOUT_CHOICES, LAYOUTS, Layout, SequenceSource, detect_layout, find_sequences
from rt_dtgan.prepare.prepare import (
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    PrepareError,
    prepare_dataset,
    read_landmarks,
    read_manifest,
    read_mesh,
    read_sequence,
)

__all__ = [
    "LAYOUTS",
    "LAYOUT_CHOICES",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "Layout",
    "PrepareError",
    "SequenceSource",
    "detect_layout",
    "find_sequences",
    "prepare_dataset",
    "read_landmarks",
    "read_manifest",
    "read_mesh",
    "read_sequence",
]
