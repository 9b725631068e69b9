"""What the commands share: the usage error, the parser whose errors are one line, the types
that check every value as it is parsed, the model and backend arguments."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


class UsageError(ValueError):
    """A command-line value is invalid; printed as one line, exit status 2."""


MAX_THREADS = 1024


def add_model_arguments(parser: argparse.ArgumentParser, threads: int | None = 1) -> None:
    """--checkpoint, --backend, --engines, --threads. The stream commands default to one
    engine thread: the face tracker needs the other cores, and CPU threads that wait on each
    other stall (measured: engine step 8 ms with one thread beside MediaPipe, 240 ms with two)."""
    from rt_dtgan.runtime.backends import BACKEND_CHOICES

    parser.add_argument(
        "--checkpoint",
        type=checkpoint,
        help="model checkpoint file, or a model shipped with rt-dtgan: geometry (the default: the face mesh drives a warp "
        "of the portrait) or paper (the paper's pixel model, trained on synthetic faces)",
    )
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="engine backend (default: auto)")
    parser.add_argument(
        "--engines", type=existing_folder, help="directory of engines made by `rt-dtgan export` for this checkpoint"
    )
    parser.add_argument(
        "--threads", type=integer(1, MAX_THREADS), default=threads, help=f"CPU threads for the engine (default: {threads or 'all cores'})"
    )
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="torch backend on a CUDA GPU: replay recorded CUDA graphs"
    )


def engine_from_arguments(args: argparse.Namespace):
    """-> (StreamEngine, checkpoint path) for the model arguments; says on stderr which backend runs."""
    import sys

    from rt_dtgan.runtime.engine import open_engine

    engine, checkpoint, why = open_engine(args.checkpoint, args.backend, args.engines, args.threads, args.cuda_graphs)
    print(f"engine: {engine.backend.describe()} ({why})", file=sys.stderr)
    return engine, checkpoint


# -- the command line's parser and the types of its values ----------------------------------------
#
# Every value is checked as it is parsed: a bad one is a usage error of one line (exit status 2)
# before anything is opened or loaded. Each type below is a callable for argparse's ``type=``; it
# raises ArgumentTypeError with the reason, which the parser prints after the option's name.


class CommandLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr, as a UsageError's, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def integer(low: int, high: int | None = None, *, also: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` up (to ``high``), or the one value ``also`` beside them."""
    span = f"from {low} up" if high is None else f"from {low} to {high}"
    said = f"an integer {span}" + (f", or {also}" if also is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {said}, got {text!r}") from None
        if value != also and not (low <= value and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"must be {said}, got {text!r}")
        return value

    return parse


def number(low: float, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number from ``low`` (or, with ``above``, more than ``low``) up, to ``high``."""
    start = f"above {low:g}" if above else f"from {low:g}"
    said = f"a number {start}" + ("" if high is None else f" to {high:g}")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {said}, got {text!r}") from None
        in_range = (value > low if above else value >= low) and (value <= high if high is not None else math.isfinite(value))
        if not in_range:
            raise argparse.ArgumentTypeError(f"must be {said}, got {text!r}")
        return value

    return parse


def existing_file(text: str) -> str:
    """A file that exists."""
    return _existing(text, "file", Path.is_file, "folder")


def existing_folder(text: str) -> str:
    """A folder that exists."""
    return _existing(text, "folder", Path.is_dir, "file")


def _existing(text: str, kind: str, is_kind, other: str) -> str:
    """``text`` when it names an existing ``kind`` (``is_kind`` says), else a usage error."""
    path = Path(_given(text, f"a {kind}")).expanduser()
    if path.exists() and not is_kind(path):
        raise argparse.ArgumentTypeError(f"{text} is a {other}; give a {kind}")
    if not is_kind(path):
        raise argparse.ArgumentTypeError(f"no such {kind}: {text}")
    return text


def output_folder(text: str) -> str:
    """A folder to write into (made if missing), not an existing file nor below one."""
    path = Path(_given(text, "a folder")).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    _below_a_folder(path, text)
    return text


def output_file(text: str) -> str:
    """A file to write (replaced if it exists), not a folder nor below a file."""
    path = Path(_given(text, "a file")).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file")
    _below_a_folder(path, text)
    return text


def checkpoint(text: str) -> str:
    """A checkpoint file, or the name of a model shipped with rt-dtgan."""
    from rt_dtgan.models.checkpoint import SHIPPED_MODELS

    if text in SHIPPED_MODELS and not Path(text).exists():
        return text
    path = Path(_given(text, f"a checkpoint file or a shipped model ({', '.join(SHIPPED_MODELS)})")).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a checkpoint file or a shipped model ({', '.join(SHIPPED_MODELS)})")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such checkpoint file or shipped model ({', '.join(SHIPPED_MODELS)}): {text}")
    return text


def checkpoint_or_none(text: str) -> str:
    """``checkpoint``, or the word none."""
    return text if text == "none" else checkpoint(text)


def source(text: str) -> str:
    """A source as ``open_source`` takes it (a kind claims it; a synthetic seed or a lavfi graph given)."""
    from rt_dtgan.media.errors import SourceError
    from rt_dtgan.media.source_kinds import check_source_spec

    try:
        check_source_spec(text)
    except SourceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def camera(text: str) -> str:
    """A camera index or device path (tried only when opened)."""
    from rt_dtgan.media.av_source import CAMERA_SOURCE

    if not CAMERA_SOURCE.claims(text.strip()):
        raise argparse.ArgumentTypeError(f"must be {CAMERA_SOURCE.help}, got {text!r}")
    return text


def portrait(text: str) -> str:
    """A portrait image file, or synthetic:SEED."""
    from rt_dtgan.synth.dataset import SYNTHETIC_PREFIX, parse_synthetic_spec

    if text.startswith(SYNTHETIC_PREFIX):
        try:
            parse_synthetic_spec(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text
    return existing_file(text)


def output(text: str) -> str:
    """An output as ``open_sink`` takes it (a known kind, a real port)."""
    from rt_dtgan.media.errors import SinkError
    from rt_dtgan.media.sink_kinds import check_sink_spec

    try:
        check_sink_spec(text)
    except SinkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def capture_size(text: str) -> str:
    """WIDTHxHEIGHT in positive integers."""
    from rt_dtgan.media.errors import SourceError
    from rt_dtgan.media.source import parse_size

    try:
        parse_size(text)
    except SourceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def bind_address(text: str) -> str:
    """A ZeroMQ address to bind: tcp://HOST:PORT (PORT may be * for any free one) or ipc://PATH."""
    return _address(text, any_port=True)


def connect_address(text: str) -> str:
    """A ZeroMQ address to connect to: tcp://HOST:PORT or ipc://PATH."""
    return _address(text, any_port=False)


def ray_address(text: str) -> str:
    """Where the Ray cluster is: local (start one in this process), auto (the one running on
    this machine) or HOST:PORT of its head (GCS)."""
    if text in ("local", "auto"):
        return text
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"must be local, auto or HOST:PORT of the cluster's head, got {text!r}")
    return text


def host(text: str) -> str:
    """An address to listen on: an IPv4 or IPv6 address, or a host name."""
    import ipaddress
    import re

    name = _given(text, "an address").strip()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        labels = name.rstrip(".").split(".")
        if not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels) or len(name) > 253:
            raise argparse.ArgumentTypeError(f"must be an IP address or a host name, got {text!r}") from None
    return name


def strength(text: str) -> float:
    """A warping model's expression strength, within the engine's range."""
    from rt_dtgan.transport.protocol import STRENGTH_RANGE

    return number(*STRENGTH_RANGE)(text)


def file_name(text: str) -> str:
    """A plain file name (no folder), of at most 100 characters."""
    name = _given(text, "a name").strip()
    if len(name) > 100:
        raise argparse.ArgumentTypeError(f"a name has at most 100 characters, got {len(name)}")
    if name in (".", "..") or any(character in name for character in '/\\:*?"<>|') or not name.isprintable():
        raise argparse.ArgumentTypeError(f"a name is a plain file name (letters, digits, - and _), got {text!r}")
    return name


def names(allowed: tuple[str, ...] | None = None) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names, at least one (each of ``allowed``, where given)."""

    def parse(text: str) -> tuple[str, ...]:
        given = tuple(name.strip() for name in text.split(","))
        if not any(given) or not all(given):
            raise argparse.ArgumentTypeError(f"must be names separated by commas, got {text!r}")
        unknown = [name for name in given if allowed is not None and name not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: not one of {', '.join(allowed)}")
        return given

    return parse


def _address(text: str, any_port: bool) -> str:
    from rt_dtgan.endpoints import parse_endpoint

    try:
        parse_endpoint(text, ("tcp", "ipc"), any_port=any_port)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _below_a_folder(path: Path, text: str) -> None:
    """Refuse a path that cannot be made because the nearest of its parents that exists is a file."""
    existing = next((parent for parent in path.absolute().parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text} cannot be made: {existing} is a file")


def _given(text: str, what: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"is empty; give {what}")
    return text
