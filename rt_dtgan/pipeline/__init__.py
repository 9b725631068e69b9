"""The live path over the face, media and runtime packages: ``FaceTransfer`` turns a source
frame into a whole-portrait frame (``transfer``), ``run_frames`` is the one frame loop that
``rt-dtgan transfer``, ``rt-dtgan live`` and the benchmarks run (``loop``, with the
``FrameHooks`` of ``hooks``), and ``inputs`` opens portraits and synthetic drivers from
their specs. A remote engine's driver, ``RemoteDriver``, is in ``rt_dtgan.transport``.
"""

from rt_dtgan.lazy import lazy_attributes

# Imported on first use (PEP 562), as in rt_dtgan.transport: the commands define their hooks
# over the light ``hooks`` module without importing torch through the rest.
_HOMES = {
    "FrameHooks": "hooks",
    "load_target_spec": "inputs",
    "synthetic_source_factory": "inputs",
    "run_frames": "loop",
    "FaceTransfer": "transfer",
    "FrameReport": "transfer",
    "LocalDriver": "transfer",
    "SteppedFrame": "transfer",
    "SteppingStage": "transfer",
    "StreamDriver": "transfer",
    "TrackedFrame": "transfer",
    "TrackingStage": "transfer",
}


__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = [
    "FaceTransfer",
    "FrameHooks",
    "FrameReport",
    "LocalDriver",
    "SteppedFrame",
    "SteppingStage",
    "StreamDriver",
    "TrackedFrame",
    "TrackingStage",
    "load_target_spec",
    "run_frames",
    "synthetic_source_factory",
]
