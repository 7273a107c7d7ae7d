"""The `warmzoo` command line: one verb per subcommand, each a thin wrapper."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models.spec import CELLS
from models.tasks import TASKS

Command = Callable[[argparse.Namespace], int]


def _warmup(args: argparse.Namespace) -> int:
    """Warm a network up locally, no server: weights.safetensors + report.json in --out."""
    from tqdm import tqdm

    from models.device import resolve_device
    from models.network import build_network
    from models.spec import RNNSpec
    from models.tasks import TASK_INPUT_SIZES, make_task
    from models.vaa import measure_vaa
    from models.warmup import WarmupConfig, warmup
    from models.weights import weights_bytes

    input_size = TASK_INPUT_SIZES[args.task] or args.input_size
    spec = RNNSpec(
        cell=args.cell,
        input_size=input_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        output_size=args.output_size,
        double=args.double,
        t_max=args.t_max,
    )
    config = WarmupConfig(steps=args.steps, learning_rate=args.learning_rate)
    task_params = {"input_size": input_size} if args.task == "gaussian" else {}
    data = make_task(args.task, args.seq_length, args.num_samples, seed=args.seed, **task_params)
    device = resolve_device(args.device)
    network = build_network(spec, seed=args.seed).to(device)

    started = time.perf_counter()
    vaa_before = measure_vaa(network, data.inputs, steps=args.vaa_steps, seed=args.seed)[0]
    with tqdm(total=config.steps, desc=f"warm-up {spec.cell}", unit="step", disable=args.quiet) as bar:

        def progress(step: int, total: int, value: float) -> None:
            bar.update(1)
            bar.set_postfix(vaa_star=f"{value:.3f}")

        result = warmup(network, data.inputs, config, seed=args.seed, progress=progress)
    vaa_after = measure_vaa(network, data.inputs, steps=args.vaa_steps, seed=args.seed)[0]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.safetensors").write_bytes(weights_bytes(network))
    report = {
        "spec": spec.model_dump(),
        "warmup": config.model_dump(),
        "data": {"task": args.task, "seq_length": args.seq_length, "num_samples": args.num_samples},
        "seed": args.seed,
        "device": str(device),
        "vaa_steps": args.vaa_steps,
        "vaa_before": vaa_before,
        "vaa_after": vaa_after,
        "vaa_star_history": result.vaa_star_history,
        "seconds": time.perf_counter() - started,
        "warmup_seconds": result.seconds,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"VAA {vaa_before:.3f} -> {vaa_after:.3f}; wrote {out / 'weights.safetensors'} and {out / 'report.json'}")
    return 0


def _add_warmup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warmup", help="warm up a network locally and write weights + report")
    p.add_argument("--cell", choices=CELLS, required=True)
    p.add_argument("--hidden-size", type=int, required=True)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--output-size", type=int, default=1)
    p.add_argument("--input-size", type=int, default=1, help="only for --task gaussian")
    p.add_argument("--double", action="store_true", help="double layers (partial warm-up of the first halves)")
    p.add_argument("--t-max", type=float, default=600.0, help="chrono initialisation horizon")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--seq-length", type=int, required=True)
    p.add_argument("--num-samples", type=int, default=512)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vaa-steps", type=int, default=10_000, help="S of the exact VAA before and after")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="directory for weights.safetensors and report.json")
    p.set_defaults(func=_warmup)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warmzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_warmup(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
