"""`rt-dtgan export`: engines from a checkpoint."""

from __future__ import annotations

import argparse

from rt_dtgan.commands.common import UsageError


def add_parsers(commands) -> None:
    export = commands.add_parser(
        "export",
        help="build inference engines from a checkpoint",
        description="Export the stream graphs (target, calibrate, step) of a checkpoint, with a "
        "meta.json tying them to it. ONNX graphs run in ONNX Runtime; TensorRT plans need an NVIDIA GPU.",
    )
    export.add_argument("--checkpoint", required=True, help="the .safetensors checkpoint to export, or a shipped model name")
    export.add_argument("--backend", choices=("onnx", "tensorrt"), default="onnx")
    export.add_argument(
        "--precision", choices=("fp32", "fp16"), default="fp32", help="TensorRT: fp16 runs G in float16, A and its state in float32"
    )
    export.add_argument("--size", type=int, choices=(64, 128, 256), help="crop size; must match the checkpoint")
    export.add_argument("--max-batch", type=int, default=32, help="most streams batched into one engine call")
    export.add_argument("--out", required=True, help="directory for the engines and meta.json")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from rt_dtgan.checkpoint import load_checkpoint, resolve_checkpoint
    from rt_dtgan.runtime.export import export_onnx
    from rt_dtgan.runtime.tensorrt_backend import export_tensorrt

    if args.backend == "onnx" and args.precision == "fp16":
        raise UsageError("ONNX graphs are exported in fp32; fp16 is a TensorRT build option (--backend tensorrt)")
    if args.max_batch < 1:
        raise UsageError("--max-batch must be at least 1")
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_checkpoint(checkpoint)
    if args.size is not None and args.size != model.config.image_size:
        raise UsageError(f"--size {args.size} does not match the checkpoint's {model.config.image_size} px crops")
    print(f"exporting {args.checkpoint} ({model.config.image_size} px) to {args.out} ...", flush=True)
    if args.backend == "tensorrt":
        meta = export_tensorrt(model, args.out, checkpoint, precision=args.precision, max_batch=args.max_batch)
    else:
        meta = export_onnx(model, args.out, checkpoint, max_batch=args.max_batch)
    for name, graph in meta["graphs"].items():
        built = graph.get("plan", graph["onnx"])
        print(f"  {name:<10} {built}")
    print(f"  meta.json: {meta['backend']}, {meta['precision']}, batch up to {meta['max_batch']}")
    return 0
