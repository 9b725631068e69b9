"""Pictures of training for TensorBoard: filmstrip grids and short GIF clips (encoded with
PyAV, so no moviepy is needed)."""

from __future__ import annotations

import io

import av
import numpy as np
import torch
from torch import Tensor


def filmstrip(video: Tensor) -> Tensor:
    """(B, T, 3, S, S) in [-1, 1] -> (3, B * S, T * S) in [0, 1]: one row per sequence."""
    batch, length, channels, size, _ = video.shape
    grid = video.detach().float().cpu().permute(2, 0, 3, 1, 4).reshape(channels, batch * size, length * size)
    return ((grid + 1) / 2).clamp(0, 1)


def gif_bytes(video: Tensor, fps: int = 10) -> tuple[bytes, int, int]:
    """(B, T, 3, S, S) in [-1, 1] -> (GIF bytes of the sequences side by side, height, width)."""
    batch, length, _, size, _ = video.shape
    frames = ((video.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    frames = frames.permute(1, 3, 0, 4, 2).reshape(length, size, batch * size, 3).numpy()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height, stream.pix_fmt = batch * size, size, "rgb8"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue(), size, batch * size


def add_gif(writer, tag: str, video: Tensor, step: int) -> None:
    """Write an animated GIF as a TensorBoard image summary (TensorBoard plays it)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    data, height, width = gif_bytes(video)
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
