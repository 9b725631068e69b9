"""Contact sheet of synthetic identities: one row per identity, columns neutral + the six
basic expressions at apex (in the order of rt_dtgan.synth.EXPRESSION_LABELS).

    python tools/contact_sheet.py --out docs/images/contact_sheet.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np

from rt_dtgan.synth import EXPRESSION_LABELS, Expression, Identity, apex_vector, render


def contact_sheet(identities: int, size: int, first_seed: int, blocks: int) -> np.ndarray:
    """(H, W, 3) uint8: `identities` rows of 7 faces, split into `blocks` side-by-side column groups."""
    expressions = [Expression() if name == "neutral" else Expression.from_vector(apex_vector(name)) for name in EXPRESSION_LABELS]
    rows = [
        np.concatenate([render(Identity.from_seed(seed), expression, None, size) for expression in expressions], axis=1)
        for seed in range(first_seed, first_seed + identities)
    ]
    per_block = -(-identities // blocks)
    blank = np.full_like(rows[0], 255)
    rows += [blank] * (per_block * blocks - identities)
    gap = np.full((per_block * size, size // 4, 3), 255, np.uint8)
    columns = []
    for block in range(blocks):
        columns.append(np.concatenate(rows[block * per_block : (block + 1) * per_block], axis=0))
        if block < blocks - 1:
            columns.append(gap)
    return np.concatenate(columns, axis=1)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG with PyAV's encoder."""
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a contact sheet of synthetic identities and expressions.")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--identities", type=int, default=32, help="number of identities (rows)")
    parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="face size in pixels")
    parser.add_argument("--first-seed", type=int, default=0, help="identity seed of the first row")
    parser.add_argument("--blocks", type=int, default=2, help="side-by-side groups of rows")
    args = parser.parse_args(argv)
    if args.identities < 1 or args.blocks < 1 or args.first_seed < 0:
        parser.error("--identities and --blocks must be >= 1 and --first-seed >= 0")
    write_png(args.out, contact_sheet(args.identities, args.size, args.first_seed, args.blocks))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
