"""The `rt-dtgan` command. Arguments are parsed only inside ``main``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rt_dtgan import __version__
from rt_dtgan.commands import data, doctor, export, serve, stream, train, visualize, web
from rt_dtgan.commands.common import CommandLineParser, UsageError
from rt_dtgan.errors import RtDtganError

COMMAND_MODULES = (stream, web, serve, train, visualize, data, export, doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="rt-dtgan",
        description="Real-time Dynamics Transfer GAN: a face video drives the expressions of one portrait.",
    )
    parser.add_argument("--version", action="version", version=f"rt-dtgan {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="also show the native libraries' log lines (MediaPipe, TensorFlow Lite); give it first"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names -> its exit status: 0, 1 for an error of the run, 2 for a
    usage error (every value is checked as it is parsed), 130 after Ctrl-C."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as parsed:  # a usage error, said in one line, or --help and --version done
        return parsed.code if isinstance(parsed.code, int) else 2
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"rt-dtgan {args.command}: {error}", file=sys.stderr)
        return 2
    except RtDtganError as error:
        print(f"rt-dtgan {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console script: native log lines are filtered out unless ``--verbose`` comes first."""
    if "--verbose" not in sys.argv[1:2]:
        from rt_dtgan.quiet import quiet_native_logs

        quiet_native_logs()
    sys.exit(main())


if __name__ == "__main__":
    run()
