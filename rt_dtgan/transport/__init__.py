"""ZeroMQ transport: the engine in a worker process or on another machine (docs/protocol.md).

``Worker``/``run_worker`` serve a StreamEngine; ``StreamClient`` drives one stream on it;
``ModelInfo`` says what the worker's model takes and gives (crops, or crops with their
meshes in and keypoint motions out); ``Broker``/``run_broker`` spread streams over several
workers; ``generate_keys`` makes the CURVE certificates a non-loopback address needs.
"""

from rt_dtgan.transport.broker import Broker, BrokerConfig, run_broker
from rt_dtgan.transport.client import ClientConfig, LinkStatus, RemoteResult, StreamClient, TransportError
from rt_dtgan.transport.protocol import PROTOCOL_VERSION, ErrorCode, MessageType, ModelInfo, ProtocolError
from rt_dtgan.transport.security import ClientKeys, SecurityError, generate_keys, is_local_address
from rt_dtgan.transport.worker import Worker, WorkerConfig, run_worker

__all__ = [
    "PROTOCOL_VERSION",
    "Broker",
    "BrokerConfig",
    "ClientConfig",
    "ClientKeys",
    "ErrorCode",
    "LinkStatus",
    "MessageType",
    "ModelInfo",
    "ProtocolError",
    "RemoteResult",
    "SecurityError",
    "StreamClient",
    "TransportError",
    "Worker",
    "WorkerConfig",
    "generate_keys",
    "is_local_address",
    "run_broker",
    "run_worker",
]
