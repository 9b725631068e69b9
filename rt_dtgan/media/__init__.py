"""Media: sources (cameras, files, image sequences, lavfi, generated), capture threads,
sinks (files, Y4M pipe, UDP MPEG-TS, ZeroMQ, virtual camera, window, null) and pacing.

Every kind of source and of sink is one entry of a registry, ``SOURCE_KINDS``
(``source_kinds.py``) and ``SINK_KINDS`` (``sink_kinds.py``), defined beside its class;
``open_source`` and ``open_sink`` read nothing else. Which capture to use:
``LatestFrameCapture`` for cameras and real-time playback (newest frame wins, reconnects
cameras); ``BlockingCapture`` for ``--no-pace`` files (lossless); ``open_capture(source)``
chooses. Every source, capture and sink closes idempotently and is a context manager, so
``with`` blocks leave devices released and files playable on Ctrl-C.
"""

from rt_dtgan.media.av_source import AVSource
from rt_dtgan.media.capture import (
    Backoff,
    BlockingCapture,
    Capture,
    CaptureState,
    CaptureStatus,
    LatestFrameCapture,
    open_capture,
)
from rt_dtgan.media.encoded import EncodedSink, h264_codec_name, open_udp_stream, open_video_file
from rt_dtgan.media.errors import CaptureEnded, PipeClosedError, SinkError, SourceError
from rt_dtgan.media.frames import Frame, latency_ms, latency_ns
from rt_dtgan.media.generated import GeneratedSource
from rt_dtgan.media.image_sequence import ImageSequenceSource
from rt_dtgan.media.multi import MultiSink
from rt_dtgan.media.null import NullSink
from rt_dtgan.media.pacing import LatencyMeter, LatencySummary, Pacer, PacerStats, RateMeter
from rt_dtgan.media.sink import Sink, SinkKind
from rt_dtgan.media.sink_kinds import SINK_KINDS, open_sink, open_sinks
from rt_dtgan.media.source import Source, SourceKind, SourceOptions, SourceRequest, SyntheticFactory, parse_size
from rt_dtgan.media.source_kinds import SOURCE_KINDS, open_source
from rt_dtgan.media.threaded import ThreadedSink
from rt_dtgan.media.virtualcam import VirtualCameraSink
from rt_dtgan.media.window import PreviewWindow, WindowAction
from rt_dtgan.media.y4m import Y4MSink
from rt_dtgan.media.zmq_pub import ZmqPublisherSink

__all__ = [
    "SINK_KINDS",
    "SOURCE_KINDS",
    "AVSource",
    "Backoff",
    "BlockingCapture",
    "Capture",
    "CaptureEnded",
    "CaptureState",
    "CaptureStatus",
    "EncodedSink",
    "Frame",
    "GeneratedSource",
    "ImageSequenceSource",
    "LatencyMeter",
    "LatencySummary",
    "LatestFrameCapture",
    "MultiSink",
    "NullSink",
    "Pacer",
    "PacerStats",
    "PipeClosedError",
    "PreviewWindow",
    "RateMeter",
    "Sink",
    "SinkError",
    "SinkKind",
    "Source",
    "SourceError",
    "SourceKind",
    "SourceOptions",
    "SourceRequest",
    "SyntheticFactory",
    "ThreadedSink",
    "VirtualCameraSink",
    "WindowAction",
    "Y4MSink",
    "ZmqPublisherSink",
    "h264_codec_name",
    "latency_ms",
    "latency_ns",
    "open_capture",
    "open_sink",
    "open_sinks",
    "open_source",
    "open_udp_stream",
    "open_video_file",
    "parse_size",
]
