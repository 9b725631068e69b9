"""``RemoteDriver``: a stream on a remote worker, driven as ``pipeline.LocalDriver`` drives one
in-process (both are ``pipeline.StreamDriver``s)."""

from __future__ import annotations

import numpy as np

from rt_dtgan.runtime.engine import AlignedFace, Generated
from rt_dtgan.transport.client import StreamClient


class RemoteDriver:
    """A stream on a remote worker (a connected StreamClient). Live (``blocking`` False):
    submit the newest face and take the newest result, or None while none has arrived.
    Offline (``blocking`` True): exactly one result per face. Faces go with their mesh where
    the worker's model reads meshes or warps; results are what LocalDriver gives: a crop or
    a KeypointMotion, ``strength`` scaling a warping model's motion."""

    def __init__(
        self, client: StreamClient, target: AlignedFace, reference: AlignedFace | None, blocking: bool, strength: float = 1.0
    ) -> None:
        self.client, self.blocking = client, blocking
        reference_crop, reference_mesh = (None, None) if reference is None else (reference.crop, self._mesh(reference))
        client.open(
            target.crop, reference_crop, target_mesh=self._mesh(target), reference_mesh=reference_mesh, strength=strength
        )

    def step(self, face: AlignedFace) -> Generated | None:
        if self.blocking:
            return self.client.process(face.crop, mesh=self._mesh(face)).generated
        self.client.submit(face.crop, mesh=self._mesh(face))
        result = self.client.poll()
        return None if result is None else result.generated

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        if reference is None:
            self.client.recalibrate()
        else:
            self.client.recalibrate(reference.crop, reference_mesh=self._mesh(reference))

    def interrupt(self) -> None:
        """A step or recalibration waiting on the worker gives up now (from any thread)."""
        self.client.interrupt()

    @property
    def link(self) -> str:
        """The client's connection state: 'connecting', 'streaming', 'outage' or 'closed'."""
        return self.client.status.value

    def close(self) -> None:
        self.client.close()

    def _mesh(self, face: AlignedFace) -> np.ndarray | None:
        """The face's mesh where the worker's model needs it, else None."""
        return face.mesh if self.client.model.needs_mesh else None
