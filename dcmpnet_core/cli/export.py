"""``dcmpnet export``: a checkpoint -> one ONNX model with both networks (the route to TensorRT)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from .common import CommandError


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 480x640, got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"both sides must be >= 16, got {h}x{w}")
    return h, w


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a checkpoint to ONNX (dehazing + DE network in one graph)",
        description="Export both networks as one ONNX model: input 'hazy' (B,3,H,W) RGB in [-1, 1]; outputs "
                    "'dehazed' (unclamped) and 'depth' (raw DE output on the dehazed image). Opset 18 (default) "
                    "uses the dynamo exporter and allows --dynamic; opset 17 (TensorRT 8.6 / JetPack 5) uses the "
                    "TorchScript exporter with a fixed size. Then e.g.: trtexec --onnx=model.onnx --fp16")
    p.add_argument("--weights", type=Path, default=None,
                   help="DCMPNet checkpoint (default: the bundled weights, if installed)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="output format (default: %(default)s)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output file, e.g. model.onnx")
    p.add_argument("--size", type=_size, default=(480, 640), metavar="HxW",
                   help="fixed input size (default: 480x640); ignored with --dynamic")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic batch, height and width (sides >= 25 px; needs opset >= 18)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.overwrite:
        raise CommandError(f"{args.output} exists; pass --overwrite to replace it")
    if args.output.suffix.lower() != ".onnx":
        raise CommandError(f"output must end in .onnx, got {args.output.name!r}")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CommandError("ONNX export needs the 'onnx' package: pip install onnx onnxscript onnxruntime") from None

    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.builder import load_model
    from ..checkpoints.bundled import default_weights_path, missing_weights_message
    from ..checkpoints.format import CheckpointError
    from ..inference.export import DEFAULT_OPSET, export_onnx

    weights = args.weights if args.weights is not None else default_weights_path()
    if weights is None:
        raise CommandError(missing_weights_message(dcp_hint=False))
    try:
        model = load_model(weights).model
    except (FileNotFoundError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    h, w = args.size
    try:
        report = export_onnx(model, args.output, h, w, dynamic=args.dynamic, opset=args.opset or DEFAULT_OPSET,
                             verify=not args.no_verify)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    shape = "x".join(map(str, report.input_shape))
    print(f"wrote {report.path} (opset {report.opset}, {report.exporter} exporter, input hazy {shape}, "
          f"depth_kind {model.depth_kind})")
    if report.max_abs_diff_dehazed is not None:
        print(f"onnxruntime vs PyTorch: max |diff| dehazed {report.max_abs_diff_dehazed:.2e}, "
              f"depth {report.max_abs_diff_depth:.2e}")
    print("fp16 TensorRT engine keeping the norms and the depth head in fp32 (metadata fp32_nodes): "
          "see README 'TensorRT'; the trtexec line is dcmpnet_core.inference.export.trtexec_fp16_command(path)")
    return 0
