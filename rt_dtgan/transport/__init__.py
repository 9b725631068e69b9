"""ZeroMQ transport: the engine in a worker process or on another machine (docs/protocol.md).

``Worker``/``run_worker`` serve a StreamEngine; ``StreamClient`` drives one stream on it;
``RemoteDriver`` drives that stream as the pipeline's LocalDriver drives one in-process;
``ModelInfo`` says what the worker's model takes and gives (crops, or crops with their
meshes in and keypoint motions out); ``ReplicaPool``/``run_edge`` (``serve --ray``, needs
the ``cluster`` extra) serve through the same Worker with the engines as replicas on a Ray
cluster (docs/cluster.md); ``Broker``/``run_broker`` spread streams over several workers;
``generate_keys`` makes the CURVE certificates a non-loopback address needs;
``ControlChannel`` takes commands for a running ``live`` from other programs.
"""

from rt_dtgan.lazy import lazy_attributes

# Imported on first use (PEP 562), so that importing a light module of this package, as the
# CLI's parsers do, does not import torch through the worker.
_HOMES = {
    "DEFAULT_ADDRESS": "addresses",
    "DEFAULT_BROKER_BACK": "addresses",
    "Broker": "broker",
    "BrokerConfig": "broker",
    "run_broker": "broker",
    "ClientConfig": "client",
    "LinkStatus": "client",
    "RemoteResult": "client",
    "StreamClient": "client",
    "TransportError": "client",
    "ClusterConfig": "cluster",
    "ReplicaPool": "cluster",
    "run_edge": "cluster",
    "ControlChannel": "control",
    "RemoteDriver": "driver",
    "PROTOCOL_VERSION": "protocol",
    "ErrorCode": "protocol",
    "MessageType": "protocol",
    "ModelInfo": "protocol",
    "ProtocolError": "protocol",
    "ClientKeys": "security",
    "SecurityError": "security",
    "generate_keys": "security",
    "is_local_address": "security",
    "ClientLimits": "serving",
    "Worker": "worker",
    "WorkerConfig": "worker",
    "run_worker": "worker",
}


__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_BROKER_BACK",
    "PROTOCOL_VERSION",
    "Broker",
    "BrokerConfig",
    "ClientConfig",
    "ClientKeys",
    "ClientLimits",
    "ClusterConfig",
    "ControlChannel",
    "ErrorCode",
    "LinkStatus",
    "MessageType",
    "ModelInfo",
    "ProtocolError",
    "RemoteDriver",
    "RemoteResult",
    "ReplicaPool",
    "SecurityError",
    "StreamClient",
    "TransportError",
    "Worker",
    "WorkerConfig",
    "generate_keys",
    "is_local_address",
    "run_broker",
    "run_edge",
    "run_worker",
]
