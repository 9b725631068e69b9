"""`rt-dtgan serve`, `rt-dtgan broker` and `rt-dtgan keys`: the engine over ZeroMQ."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rt_dtgan.commands.common import (
    UsageError,
    add_model_arguments,
    bind_address,
    connect_address,
    engine_from_arguments,
    existing_folder,
    file_name,
    integer,
    number,
    output_folder,
    ray_address,
)
from rt_dtgan.transport.addresses import DEFAULT_ADDRESS, DEFAULT_BROKER_BACK
from rt_dtgan.transport.serving import ClientLimits

MAX_STREAMS = 4096  # WorkerConfig's bound
MAX_REPLICAS = 1024  # ClusterConfig's bound


def add_parsers(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the engine to remote clients over ZeroMQ (docs/protocol.md)",
        description="Binds to loopback unless told otherwise; any other address needs --curve-dir.",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--bind", type=bind_address, help=f"address to serve on (default: {DEFAULT_ADDRESS})")
    where.add_argument("--broker", type=connect_address, help="instead of binding, join a broker's back end at this address")
    serve.add_argument("--max-streams", type=integer(1, MAX_STREAMS), default=16, help="streams served at once")
    serve.add_argument(
        "--idle-timeout", type=number(0, above=True), default=60.0, help="seconds before an idle stream expires"
    )
    serve.add_argument(
        "--reclaim-idle", type=number(0, above=True), default=5.0,
        help="seconds without a message after which a stream gives its slot to a new one",
    )
    serve.add_argument(
        "--curve-dir", type=existing_folder, help="server.key, server.key_secret, authorized_clients/ (rt-dtgan keys)"
    )
    add_limit_arguments(serve)
    add_cluster_arguments(serve)
    add_model_arguments(serve, threads=None)
    serve.set_defaults(handler=run_serve)

    broker = commands.add_parser(
        "broker", help="spread streams over workers that dial out to it (more engines on a Ray cluster: serve --ray)"
    )
    broker.add_argument("--front", type=bind_address, default=DEFAULT_ADDRESS, help="address clients connect to")
    broker.add_argument("--back", type=bind_address, default=DEFAULT_BROKER_BACK, help="address workers connect to")
    broker.add_argument("--curve-dir", type=existing_folder, help="as for serve; needed beyond loopback")
    add_limit_arguments(broker)
    broker.set_defaults(handler=run_broker)

    keys = commands.add_parser("keys", help="make a CURVE key pair for a server or a client")
    keys.add_argument("--out", required=True, type=output_folder, help="directory for NAME.key and NAME.key_secret")
    keys.add_argument("--name", required=True, type=file_name, help="server, or a client's name")
    keys.set_defaults(handler=run_keys)


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """What one client may hold (ClientLimits)."""
    defaults = ClientLimits()
    parser.add_argument(
        "--streams-per-client", type=integer(1), default=defaults.streams_per_client, help="streams one connection may hold"
    )
    parser.add_argument(
        "--streams-per-key", type=integer(1), default=defaults.streams_per_key, help="streams one CURVE client key may hold"
    )
    parser.add_argument(
        "--opens-per-s", type=number(0, above=True), default=defaults.opens_per_s, help="OPENs per second one connection may send"
    )


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """--ray and the replicas' bounds (docs/cluster.md)."""
    cluster = parser.add_argument_group("engines on a Ray cluster (pip install 'rt-dtgan[cluster]'; docs/cluster.md)")
    cluster.add_argument(
        "--ray", type=ray_address, metavar="ADDRESS",
        help="run the engines as replicas on a Ray cluster behind this edge: local (start one here), auto (join the one "
        "running on this machine) or HOST:PORT of its head",
    )
    cluster.add_argument("--min-replicas", type=integer(1, MAX_REPLICAS), default=2, help="engine replicas kept at least")
    cluster.add_argument("--max-replicas", type=integer(1, MAX_REPLICAS), default=4, help="engine replicas at most")
    cluster.add_argument(
        "--streams-per-replica", type=integer(1, MAX_STREAMS), default=8, help="streams per replica before another starts"
    )
    cluster.add_argument(
        "--replica-cpus", type=number(0), default=1.0, help="CPUs a replica asks of a node without GPUs (one GPU where there are)"
    )


def client_limits(args: argparse.Namespace) -> ClientLimits:
    return ClientLimits(args.streams_per_client, args.streams_per_key, args.opens_per_s)


def run_serve(args: argparse.Namespace) -> int:
    from rt_dtgan.transport import WorkerConfig, run_worker

    options = dict(
        max_streams=args.max_streams,
        idle_timeout_s=args.idle_timeout,
        reclaim_idle_s=args.reclaim_idle,
        curve_dir=_path(args.curve_dir),
        limits=client_limits(args),
    )
    if args.broker:
        config = WorkerConfig(bind=None, broker=args.broker, **options)
    else:
        config = WorkerConfig(bind=args.bind or DEFAULT_ADDRESS, **options)
    if args.ray:
        return _serve_on_ray(args, config)
    engine, checkpoint = engine_from_arguments(args)
    print(f"serving {checkpoint} on {config.bind or 'broker ' + config.broker}; Ctrl-C stops", file=sys.stderr)
    run_worker(config, engine)
    return 0


def _serve_on_ray(args: argparse.Namespace, config) -> int:
    """The edge on ``config.bind``, its engines replicas on the Ray cluster at ``args.ray``."""
    import logging

    from rt_dtgan.optional import require

    if args.broker:
        raise UsageError("--ray serves clients itself: give --bind, not --broker")
    if args.min_replicas > args.max_replicas:
        raise UsageError(f"--min-replicas {args.min_replicas} is above --max-replicas {args.max_replicas}")
    require("ray", "rt-dtgan serve --ray")
    from rt_dtgan.transport.cluster import ClusterConfig, run_edge
    from rt_dtgan.transport.replica import CheckpointRecipe

    cluster = ClusterConfig(
        address=args.ray, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
        streams_per_replica=args.streams_per_replica, replica_cpus=args.replica_cpus,
    )
    threads = args.threads or max(1, round(args.replica_cpus))
    recipe = CheckpointRecipe(_absolute(args.checkpoint), args.backend, _absolute(args.engines), threads, args.cuda_graphs)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("rt_dtgan.transport").addHandler(handler)
    logging.getLogger("rt_dtgan.transport").setLevel(logging.INFO)
    print(f"serving {args.checkpoint or 'the default model'} on {config.bind} with engines on Ray ({args.ray}); "
          "Ctrl-C stops", file=sys.stderr)
    run_edge(config, cluster, recipe)
    return 0


def run_broker(args: argparse.Namespace) -> int:
    from rt_dtgan.transport import BrokerConfig
    from rt_dtgan.transport import run_broker as broker_loop

    config = BrokerConfig(front=args.front, back=args.back, curve_dir=_path(args.curve_dir), limits=client_limits(args))
    print(f"broker: clients on {config.front}, workers on {config.back}; Ctrl-C stops", file=sys.stderr)
    broker_loop(config)
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from rt_dtgan.transport import generate_keys

    public, secret = generate_keys(Path(args.out), args.name)
    print(f"public key {public} (give it to the other side), secret key {secret} (keep it)")
    return 0


def _path(folder: str | None) -> Path | None:
    return Path(folder) if folder is not None else None


def _absolute(path: str | None) -> str | None:
    """A file or folder that exists here, made absolute (a replica's working directory differs);
    anything else (a shipped model's name, None) as given."""
    return str(Path(path).resolve()) if path is not None and Path(path).exists() else path
