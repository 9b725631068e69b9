"""Every option of every command refuses a bad value as it is parsed: an out-of-range, a malformed
and an empty one each give exit status 2 and one line on stderr, no traceback, before anything
is opened or loaded.

One row of OPTIONS per option: (command, option, out-of-range value, malformed value); every
option is also tried empty. A flag's row has FLAG: it must refuse ``--flag=x`` and ``--flag=``.
A new option needs its row (``test_every_option_has_a_row`` finds one without); a row whose
option this parser does not have is skipped, so that a row may come before its option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rt_dtgan import cli
from rt_dtgan.cli import build_parser

HERE = str(Path(__file__).parent)  # a folder that exists, where a file is wanted
A_FILE = str(Path(__file__))  # a file that exists, where a folder is wanted
MISSING_FILE = "no/such/file.safetensors"
MISSING_FOLDER = "no/such/folder"
BELOW_A_FILE = f"{A_FILE}/inside"  # cannot be made: its parent is a file
FLAG = "flag"
NONE = None  # no value of this kind exists for the option (said why in the row's comment)

# The command's words and its required options, all valid; a row's option is added to them.
BASE = {
    "rt-dtgan": [],
    "transfer": ["transfer", "--source", "synthetic:1", "--target", "synthetic:2", "--out", "out.mp4"],
    "demo": ["demo"],
    "web": ["web"],
    "live": ["live", "--source", "synthetic:1", "--target", "synthetic:2"],
    "serve": ["serve"],
    "broker": ["broker"],
    "keys": ["keys", "--out", "keys", "--name", "server"],
    "train encoder": ["train", "encoder", "--run-dir", "run"],
    "train gan": ["train", "gan", "--run-dir", "run", "--encoder", "paper"],
    "train geometry": ["train", "geometry", "--run-dir", "run", "--data", HERE],
    "eval": ["eval", "--synthetic"],
    "visualize": ["visualize", "--source", "synthetic:1", "--out", "out.mp4"],
    "data synth": ["data", "synth", "--out", "data", "--identities", "1"],
    "data prepare": ["data", "prepare", "--source", HERE, "--out", "prepared"],
    "export": ["export", "--checkpoint", "paper", "--out", "engines"],
    "doctor": ["doctor"],
    "info": ["info", "paper"],
}

# Kinds of value that many options share: (out of range, malformed).
CHECKPOINT = (MISSING_FILE, HERE)
EXISTING_FILE = (MISSING_FILE, HERE)
EXISTING_FOLDER = (MISSING_FOLDER, A_FILE)
OUTPUT_FOLDER = (BELOW_A_FILE, A_FILE)
OUTPUT = ("udp://127.0.0.1:99999", "out.xyz")
SOURCE = ("no/such/video.mp4", "synthetic:x")
PORTRAIT = ("no/such/portrait.jpg", "synthetic:x")
BIND = ("tcp://127.0.0.1:99999", "tcp://127.0.0.1:notaport")
CONNECT = ("tcp://127.0.0.1:*", "tcp://127.0.0.1:notaport")  # a client cannot connect to "any port"
COUNT = ("0", "two")
NON_NEGATIVE_COUNT = ("-1", "1.5")
POSITIVE = ("0", "fast")
NON_NEGATIVE = ("-1", "lots")
SIZE = ("512", "big")

MODEL = [("--checkpoint", *CHECKPOINT), ("--backend", "tensorrt9", "TORCH"), ("--engines", *EXISTING_FOLDER),
         ("--threads", "0", "all"), ("--cuda-graphs", FLAG, FLAG)]  # fmt: skip
FACE = [("--portrait-size", "10", "big"), ("--auto-reference", FLAG, FLAG), ("--strength", "99", "strong"),
        ("--pose", "sideways", "FOLLOW"), ("--pose-strength", "9", "far"), ("--faces", "0", "many")]  # fmt: skip
LIMITS = [("--streams-per-client", *COUNT), ("--streams-per-key", *COUNT), ("--opens-per-s", *POSITIVE)]
TRAIN_SHARED = [
    ("--run-dir", *OUTPUT_FOLDER), ("--size", *SIZE), ("--steps", *COUNT), ("--batch-size", *COUNT),
    ("--min-length", "1", "short"), ("--max-length", "61", "long"), ("--identities", *COUNT),
    ("--data", *EXISTING_FOLDER), ("--seed", *NON_NEGATIVE_COUNT), ("--workers", *NON_NEGATIVE_COUNT),
    ("--checkpoint-every", *COUNT), ("--image-every", *COUNT), ("--tensorboard", FLAG, FLAG),
    ("--no-progress", FLAG, FLAG), ("--sequences", "forever", "ONSET"), ("--head-pose", "upside-down", "ALIGNED"),
    ("--sensor-noise", "per-pixel", "PER-FRAME"), ("--lr", *POSITIVE), ("--init", *CHECKPOINT),
]  # fmt: skip

OPTIONS = [
    *[("rt-dtgan", *row) for row in [("--version", FLAG, FLAG), ("--verbose", FLAG, FLAG)]],
    *[("transfer", *row) for row in [
        ("--source", *SOURCE), ("--target", *PORTRAIT), ("--out", *OUTPUT), ("--reference", *EXISTING_FILE),
        ("--frames", *COUNT), *FACE, *MODEL,
    ]],
    *[("demo", *row) for row in [("--out", *OUTPUT), ("--frames", *COUNT), ("--synthetic", FLAG, FLAG), *FACE, *MODEL]],
    *[("web", *row) for row in [
        ("--port", "65536", "http"), ("--bind", "a" * 254, "not an address"), ("--remote", *CONNECT),
        ("--cert", *EXISTING_FILE), ("--key", *EXISTING_FILE), ("--max-sessions", "65", "many"), *FACE, *MODEL,
    ]],
    *[("live", *row) for row in [
        ("--camera", "-1", "cam"), ("--source", *SOURCE), ("--target", *PORTRAIT), ("--output", *OUTPUT),
        ("--reference", *EXISTING_FILE), ("--no-pace", FLAG, FLAG), ("--mirror", FLAG, FLAG), ("--size", "0x480", "big"),
        ("--fps", "0", "fast"), ("--frames", *COUNT), ("--control", *BIND), ("--remote", *CONNECT),
        ("--compress", FLAG, FLAG), ("--client-key", *EXISTING_FILE), ("--server-key", *EXISTING_FILE), *FACE, *MODEL,
    ]],
    *[("serve", *row) for row in [
        ("--bind", *BIND), ("--broker", *CONNECT), ("--max-streams", "5000", "many"), ("--idle-timeout", *POSITIVE),
        ("--reclaim-idle", *POSITIVE), ("--curve-dir", *EXISTING_FOLDER), *LIMITS, *MODEL,
        ("--ray", "head:99999", "head"), ("--min-replicas", "0", "two"), ("--max-replicas", "1025", "four"),
        ("--streams-per-replica", *COUNT), ("--replica-cpus", "-1", "one"),
    ]],
    *[("broker", *row) for row in [("--front", *BIND), ("--back", *BIND), ("--curve-dir", *EXISTING_FOLDER), *LIMITS]],
    *[("keys", *row) for row in [("--out", *OUTPUT_FOLDER), ("--name", "n" * 101, "a/b")]],
    *[("train encoder", *row) for row in [
        *TRAIN_SHARED, ("--control-weight", *NON_NEGATIVE), ("--landmark-weight", *NON_NEGATIVE),
        ("--lower-face-stretch", "2.5", "long"),
    ]],
    *[("train gan", *row) for row in [
        *TRAIN_SHARED, ("--encoder", *CHECKPOINT), ("--d-lr", *POSITIVE), ("--lambda-adversarial", *NON_NEGATIVE),
        ("--lambda-spatial", *NON_NEGATIVE), ("--lambda-dynamics", *NON_NEGATIVE), ("--lambda-motion", *NON_NEGATIVE),
        ("--no-suppression", FLAG, FLAG), ("--init-parts", "encoder", "embedder,,generator"),
    ]],
    *[("train geometry", *row) for row in [
        ("--run-dir", *OUTPUT_FOLDER), ("--data", *EXISTING_FOLDER),
        ("--hold-out", NONE, "talker1,,talker2"),  # any id is in range until the data is read
        ("--size", *SIZE), ("--steps", *COUNT), ("--refine-steps", *NON_NEGATIVE_COUNT),
        ("--adversarial-steps", *NON_NEGATIVE_COUNT), ("--adversarial-weight", *NON_NEGATIVE),
        ("--no-suppression", FLAG, FLAG), ("--seed", *NON_NEGATIVE_COUNT), ("--checkpoint-every", *COUNT),
        ("--no-progress", FLAG, FLAG),
    ]],
    *[("eval", *row) for row in [
        ("--checkpoint", *CHECKPOINT), ("--synthetic", FLAG, FLAG), ("--identities", *COUNT), ("--length", "61", "long"),
        ("--judge", *CHECKPOINT), ("--ablation", *CHECKPOINT), ("--head-pose", "upside-down", "ALIGNED"),
        ("--json", BELOW_A_FILE, HERE),
    ]],
    *[("visualize", *row) for row in [
        ("--source", *SOURCE), ("--out", *OUTPUT), ("--checkpoint", *CHECKPOINT), ("--frames", *COUNT),
    ]],
    *[("data synth", *row) for row in [
        ("--out", *OUTPUT_FOLDER), ("--identities", *COUNT), ("--size", *SIZE), ("--seed", *NON_NEGATIVE_COUNT),
        ("--sequences", *NON_NEGATIVE_COUNT), ("--freeform-length", *NON_NEGATIVE_COUNT), ("--lossy", FLAG, FLAG),
        ("--overwrite", FLAG, FLAG),
    ]],
    *[("data prepare", *row) for row in [
        ("--source", *EXISTING_FOLDER), ("--out", *OUTPUT_FOLDER), ("--layout", "voxceleb", "FOLDER"), ("--size", *SIZE),
        ("--workers", *COUNT),
    ]],
    *[("export", *row) for row in [
        ("--checkpoint", *CHECKPOINT), ("--backend", "torch", "ONNX RUNTIME"), ("--precision", "fp64", "half"),
        ("--size", *SIZE), ("--max-batch", *COUNT), ("--out", *OUTPUT_FOLDER),
    ]],
    *[("doctor", *row) for row in [("--checkpoint", *CHECKPOINT), ("--size", *SIZE), ("--frames", *COUNT)]],
    *[("info", *row) for row in [("checkpoint", *CHECKPOINT), ("--json", FLAG, FLAG)]],
]  # fmt: skip


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(command words, parser) for every parser that takes options, subcommands included."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*words, name))


def _options() -> dict[tuple[str, str], argparse.Action]:
    """(command, option) -> its action, for every option of every command but --help."""
    found = {}
    for words, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = max(action.option_strings, key=len) if action.option_strings else action.dest
            found[(" ".join(words) or "rt-dtgan", name)] = action
    return found


PARSER_OPTIONS = _options()


def _cases():
    for command, option, out_of_range, malformed in OPTIONS:
        kinds = {"out of range": out_of_range, "malformed": malformed, "empty": ""}
        for kind, value in kinds.items():
            if value is not NONE:
                yield pytest.param(command, option, kind, value, id=f"{command} {option} {kind}")


def _argv(command: str, option: str, value: str) -> list[str]:
    base = BASE[command]
    if option == "checkpoint":  # info's positional: the value replaces the valid one
        return [*base[:-1], value]
    if value == FLAG:
        raise AssertionError("a flag's row is tried with --flag=x and --flag=")
    given = [f"{option}={value}"] if PARSER_OPTIONS[(command, option)].nargs == 0 else [option, value]
    if command == "rt-dtgan":
        return [*given, "doctor"]
    return [*base, *given]


@pytest.mark.parametrize(("command", "option", "kind", "value"), list(_cases()))
def test_a_bad_value_is_one_line_and_status_2_at_parse_time(command, option, kind, value, capsys):
    if (command, option) not in PARSER_OPTIONS:
        pytest.skip(f"{command} has no {option} (yet)")
    if value == FLAG:
        value = "x" if kind == "malformed" else ""
        if kind == "out of range":
            value = "1"
    parser = build_parser()
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(_argv(command, option, value))
    error = capsys.readouterr().err
    assert stopped.value.code == 2, f"exit status {stopped.value.code}: {error!r}"
    assert error.count("\n") == 1 and error.endswith("\n"), f"not one line: {error!r}"
    assert "Traceback" not in error and error.startswith("rt-dtgan"), error


def test_every_option_has_a_row():
    rows = {(command, option) for command, option, *_ in OPTIONS}
    missing = sorted(set(PARSER_OPTIONS) - rows)
    assert not missing, "options without a row in OPTIONS: " + ", ".join(f"{c} {o}" for c, o in missing)
    assert set(BASE) == {command for command, _ in PARSER_OPTIONS} | {"info"}


def test_the_base_command_lines_parse():
    parser = build_parser()
    for words in BASE.values():
        parser.parse_args(words or ["doctor"])


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["transfer", "--source", "synthetic:1", "--target", "synthetic:2", "--out", "o.mp4", "--strength", "99"],
         "rt-dtgan transfer: argument --strength: must be a number from 0 to 3, got '99'"),
        (["serve", "--bind", "tcp://127.0.0.1:notaport"],
         "rt-dtgan serve: argument --bind: the port of 'tcp://127.0.0.1:notaport' must be a number from 1 to 65535"),
        (["live", "--source", "synthetic:1", "--target", "synthetic:2", "--output", "udp://127.0.0.1:99999"],
         "rt-dtgan live: argument --output: the port of 'udp://127.0.0.1:99999' must be a number from 1 to 65535"),
    ],
)  # fmt: skip
def test_the_values_issue_27_found_are_refused_by_the_command(argv, said, capsys, monkeypatch):
    def parsed_without_a_handler() -> argparse.ArgumentParser:
        parser = build_parser()
        for _, command in _commands(parser):  # a value that parses must not start a serve or a transfer
            command.set_defaults(handler=lambda args: pytest.fail(f"{args.command} parsed {argv}"))
        return parser

    monkeypatch.setattr(cli, "build_parser", parsed_without_a_handler)
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(said) and error.count("\n") == 1, error
