"""`rt-dtgan export`: engines from a checkpoint, for any backend in the registry with an exporter."""

from __future__ import annotations

import argparse

from rt_dtgan.commands.common import UsageError, checkpoint, integer, output_folder


def add_parsers(commands) -> None:
    from rt_dtgan.runtime.backends import EXPORTERS, backend_name

    export = commands.add_parser(
        "export",
        help="build inference engines from a checkpoint",
        description="Export the stream graphs (target, calibrate, step) of a checkpoint, with a "
        "meta.json tying them to it. ONNX graphs run in ONNX Runtime; TensorRT plans need an NVIDIA GPU.",
    )
    export.add_argument(
        "--checkpoint", required=True, type=checkpoint, help="the .safetensors checkpoint to export, or a shipped model name"
    )
    export.add_argument("--backend", type=backend_name, choices=tuple(EXPORTERS), default="onnxruntime", help=_backend_help(EXPORTERS))
    export.add_argument("--precision", choices=_precisions(EXPORTERS), default="fp32", help=_precision_help(EXPORTERS))
    export.add_argument("--size", type=int, choices=(64, 128, 256), help="crop size; must match the checkpoint")
    export.add_argument("--max-batch", type=integer(1), default=32, help="most streams batched into one engine call")
    export.add_argument("--out", required=True, type=output_folder, help="directory for the engines and meta.json")
    export.set_defaults(handler=run_export)


def _backend_help(exporters: dict) -> str:
    old_names = [f"{alias}: the old name of {name}" for name, entry in exporters.items() for alias in entry.aliases]
    return "the backend that will run the engines" + (f" ({'; '.join(old_names)})" if old_names else "")


def _precisions(exporters: dict) -> tuple[str, ...]:
    return tuple(dict.fromkeys(precision for entry in exporters.values() for precision in entry.precisions))


def _precision_help(exporters: dict) -> str:
    return f"{_offering('fp16', exporters)}: fp16 runs G in float16, A and its state in float32"


def _offering(precision: str, exporters: dict) -> str:
    return " or ".join(f"--backend {name}" for name, entry in exporters.items() if precision in entry.precisions)


def run_export(args: argparse.Namespace) -> int:
    from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint
    from rt_dtgan.runtime.backends import EXPORTERS

    exporter = EXPORTERS[args.backend]
    if args.precision not in exporter.precisions:
        raise UsageError(
            f"{exporter.engines} are exported in {'/'.join(exporter.precisions)}; "
            f"{args.precision} is a build option of {_offering(args.precision, EXPORTERS)}"
        )
    path = resolve_checkpoint(args.checkpoint)
    model = load_checkpoint(path)
    if args.size is not None and args.size != model.config.image_size:
        raise UsageError(f"--size {args.size} does not match the checkpoint's {model.config.image_size} px crops")
    print(f"exporting {args.checkpoint} ({model.config.image_size} px) to {args.out} ...", flush=True)
    meta = exporter.export(model, args.out, path, precision=args.precision, max_batch=args.max_batch)
    for name, graph in meta["graphs"].items():
        built = graph.get("plan", graph["onnx"])
        print(f"  {name:<10} {built}")
    print(f"  meta.json: {meta['backend']}, {meta['precision']}, batch up to {meta['max_batch']}")
    return 0
