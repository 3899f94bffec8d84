"""``dcmpnet bench``: latency of the inference fast paths against plain eager fp32, in one run."""
from __future__ import annotations

import argparse
import sys

from ..inference.options import ENGINE_OPTIONS
from .common import CommandError, add_engine_arguments, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark inference modes; the first row is the eager fp32 reference",
                       description="Times the network (dehazing + depth) on one random frame in each mode and "
                                   "prints one table: mode, median and p90 latency, fps, speed-up over the eager "
                                   "fp32 reference (first row) and the max abs output difference to it.")
    p.add_argument("--size", default="480x640", help="frame size HxW (default: %(default)s)")
    p.add_argument("--config", default="paper", help="model variant name (default: %(default)s)")
    p.add_argument("--weights", default=None, help="checkpoint to benchmark instead of random weights")
    add_engine_arguments(p, ["device", "precision", "mode"], defaults={"device": "cpu", "precision": ["fp32"],
                                                                 "mode": None},
                         nargs={"precision": "+", "mode": "+"}, choices={"mode": ()},
                         helps={"precision": "precisions to time besides the eager fp32 reference",
                                "mode": "inference modes to time (eager, fast, compile, cuda_graphs; a +nhwc or "
                                        "+nchw suffix forces the memory layout); default: eager fast, and "
                                        "cuda_graphs on GPU; with --engine: auto"})
    p.add_argument("--modes", dest="mode", nargs="+", type=ENGINE_OPTIONS["mode"].parse, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)           # the spelling before --mode; kept for old command lines
    p.add_argument("--repeat", type=int, default=5, help="timed runs per row (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs per row before timing (CUDA graphs capture on the second call; "
                        "default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="frames per forward (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--engine", action="store_true",
                   help="time the whole engine (dcmpnet_core.inference.engine.Dehazer) on a uint8 photo frame "
                        "instead of the bare networks; the reference is the engine in eager fp32 at full resolution")
    add_engine_arguments(p, ["max_pixels"], helps={"max_pixels": "with --engine: run the network on at most this "
                                                                  "many pixels (guided upsampling back)"})
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch  # here, not at the top: `dcmpnet --help` must not import torch

    from ..checkpoints.builder import load_model
    from ..evaluation.bench import format_table, run_benchmark, run_engine_benchmark
    from ..models.dcmpnet import DCMPNet

    h, w = parse_size(args.size)
    if args.repeat < 1 or args.batch < 1 or args.warmup < 0:
        raise CommandError("--repeat and --batch must be at least 1, --warmup at least 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {args.device}: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.weights).model if args.weights else DCMPNet(args.config)
    modes = args.mode or (["eager", "fast", "cuda_graphs"] if args.device.startswith("cuda") else ["eager", "fast"])
    name = args.weights or f"variant '{args.config}' (random weights)"
    dev_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "CPU"
    print(f"dcmpnet bench: {name}, {h}x{w}, batch {args.batch}, device {args.device} ({dev_name}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    say = lambda m: print(f"  timing {m} ...", file=sys.stderr, flush=True)  # noqa: E731
    if args.engine:
        rows = run_engine_benchmark(model, h, w, args.device, args.mode or ["auto"], args.precision,
                                    max_pixels=args.max_pixels, repeat=args.repeat, warmup=args.warmup,
                                    progress=say)
    else:
        if args.max_pixels:
            raise CommandError("--max-pixels needs --engine (the bare networks always run at --size)")
        rows = run_benchmark(model, h, w, args.device, modes, args.precision, repeat=args.repeat, batch=args.batch,
                             warmup=args.warmup, progress=say)
    print(format_table(rows))
    return 0
