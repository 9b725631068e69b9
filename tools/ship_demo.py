"""The real faces `rt-dtgan demo` and `rt-dtgan web`'s examples ship with: a GRID speaker's
clip (re-encoded small) and the first frame of other GRID speakers (closed mouths), written
to rt_dtgan/assets/grid/ beside their attribution (ATTRIBUTION.md).

    python tools/ship_demo.py [--grid ../shared/data/real/grid]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2

from rt_dtgan.face.images import load_image

ASSETS = Path(__file__).resolve().parents[1] / "rt_dtgan" / "assets" / "grid"
DRIVER = "swiz3n"  # the clip that drives
PORTRAITS = ("lwbsza", "brbk7n")  # the first is the demo's portrait; all are the page's examples
CLIP_CRF = "30"
JPEG_QUALITY = 90


def ship_clip(source: Path, out: Path) -> None:
    """Re-encode ``source`` as H.264 (yuv420p, CRF CLIP_CRF), video only, same size and rate."""
    with av.open(str(source)) as reading, av.open(str(out), "w") as writing:
        incoming = reading.streams.video[0]
        stream = writing.add_stream("libx264", rate=incoming.average_rate, options={"crf": CLIP_CRF, "preset": "veryslow"})
        stream.width, stream.height, stream.pix_fmt = incoming.width, incoming.height, "yuv420p"
        for frame in reading.decode(incoming):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                writing.mux(packet)
        for packet in stream.encode():
            writing.mux(packet)


def ship_frame(source: Path, out: Path) -> None:
    """The clip's first frame as a JPEG of JPEG_QUALITY."""
    cv2.imwrite(str(out), cv2.cvtColor(load_image(source), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "grid")
    args = parser.parse_args()
    ASSETS.mkdir(parents=True, exist_ok=True)
    ship_clip(args.grid / f"{DRIVER}.mpg", ASSETS / f"{DRIVER}.mp4")
    for name in PORTRAITS:
        ship_frame(args.grid / f"{name}.mpg", ASSETS / f"{name}.jpg")
    for path in sorted(ASSETS.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
