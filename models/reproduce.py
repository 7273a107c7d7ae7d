"""Cold versus warm training: a runnable reproduction of the learning results of arXiv 2106.01001.

For every cell, arm and seed the same data, the same initial weights (for a given
architecture), the same batches and the same budget are used; the only difference
between `cold` and `warm` is the warm-up run on the freshly initialised network.
Arms:

- `cold`: each cell's standard initialisation (docs/design.md, section 1);
- `warm`: the same weights after a (full) warm-up;
- `double-cold`, `double-warm`: double layers, the latter with the warm-up config's
  `partial` flag (default: only the first half-cells are warmed up), the paper's
  answer to the memory / precision trade-off.

Every number of every run is kept in the report; the summary, Markdown table and
plot are derived from it.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import queue as queue_module
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from warmzoo.models.device import resolve_device
from warmzoo.models.network import build_network
from warmzoo.models.spec import CellName, RNNSpec
from warmzoo.models.tasks import TaskData, TaskName, make_task
from warmzoo.models.training import TrainingConfig, chance_loss, split_task, train
from warmzoo.models.vaa import measure_vaa
from warmzoo.models.warmup import WarmupConfig, warmup

ArmName = Literal["cold", "warm", "double-cold", "double-warm"]
LEARNED_FRACTION = 0.5  # a run "learned" when its test loss is below this fraction of chance


class ReproductionConfig(BaseModel):
    """One experiment: cells x arms x seeds on one task, with one training budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: TaskName = "copy_first_input"
    seq_length: int = Field(default=300, ge=1)
    cells: list[CellName] = Field(default_factory=lambda: ["gru", "lstm", "brc", "nbrc"], min_length=1)
    arms: list[ArmName] = Field(default_factory=lambda: ["cold", "warm"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    hidden_size: int = Field(default=64, ge=2)
    num_layers: int = Field(default=2, ge=1)
    t_max: float = Field(default=600.0, gt=2, description="chrono initialisation horizon")
    num_train: int = Field(default=4096, ge=2)
    num_val: int = Field(default=512, ge=1)
    num_test: int = Field(default=512, ge=1)
    vaa_steps: int = Field(default=10_000, ge=1, description="S of the exact VAA at init and after the warm-up")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    device: str = "auto"

    @field_validator("task")
    @classmethod
    def _task_has_targets(cls, task: str) -> str:
        if task == "gaussian":
            raise ValueError("task 'gaussian' has no targets to learn: choose copy_first_input, denoising or digits")
        return task


@dataclass(frozen=True)
class Unit:
    """One training run."""

    cell: str
    arm: str
    seed: int


ProgressFn = Callable[[int, dict[str, Any] | None], None]  # (steps advanced, finished record or None)


def units(config: ReproductionConfig) -> list[Unit]:
    return [Unit(cell, arm, seed) for cell in config.cells for arm in config.arms for seed in config.seeds]


def unit_steps(config: ReproductionConfig, unit: Unit) -> int:
    """Progress steps of a unit: its warm-up steps (warm arms) plus its training steps."""
    return (config.warmup.steps if unit.arm.endswith("warm") else 0) + config.training.steps


def unit_spec(config: ReproductionConfig, unit: Unit, data: TaskData) -> RNNSpec:
    """The unit's architecture; the task fixes its input and output sizes."""
    return RNNSpec(
        cell=unit.cell,  # type: ignore[arg-type]
        input_size=data.inputs.shape[-1],
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        output_size=data.output_size,
        double=unit.arm.startswith("double"),
        t_max=config.t_max,
    )


def run_unit(config: ReproductionConfig, unit: Unit, advance: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build (and for warm arms warm up) one network, train it, and return every number."""
    advance = advance or (lambda _: None)
    device = resolve_device(config.device)
    data = make_task(config.task, config.seq_length, config.num_train + config.num_val + config.num_test, seed=unit.seed)
    spec = unit_spec(config, unit, data)
    train_data, val_data, test_data = split_task(data, (config.num_train, config.num_val, config.num_test))
    network = build_network(spec, seed=unit.seed).to(device)
    vaa_init = measure_vaa(network, train_data.inputs, steps=config.vaa_steps, seed=unit.seed)[0]
    record: dict[str, Any] = {**asdict(unit), "spec": spec.model_dump(), "vaa_init": vaa_init}
    if unit.arm.endswith("warm"):
        result = warmup(network, train_data.inputs, config.warmup, seed=unit.seed, progress=lambda *_: advance(1))
        record["vaa_warm"] = measure_vaa(network, train_data.inputs, steps=config.vaa_steps, seed=unit.seed)[0]
        record["warmup"] = {"vaa_star_history": result.vaa_star_history, "seconds": result.seconds}
    else:
        record["vaa_warm"], record["warmup"] = None, None
    trained = train(
        network, train_data, val_data, test_data, config.training, seed=unit.seed, progress=lambda *_: advance(1)
    )
    assert trained.test is not None
    record |= {
        "chance_loss": chance_loss(train_data, test_data),
        "history": [asdict(point) for point in trained.history],
        "best_step": trained.best_step,
        "best_val_loss": trained.best_val_loss,
        "test_loss": trained.test.loss,
        "test_accuracy": trained.test.accuracy,
        "train_seconds": trained.seconds,
    }
    return record


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_unit_reporting(config_json: str, unit: Unit, steps: Any) -> dict[str, Any]:
    """Worker-process entry: run a unit and report each step on the shared queue."""
    return run_unit(ReproductionConfig.model_validate_json(config_json), unit, steps.put)


def _drain(steps: Any) -> int:
    advanced = 0
    while True:
        try:
            advanced += steps.get_nowait()
        except queue_module.Empty:
            return advanced


def run_units(
    config: ReproductionConfig, *, jobs: int = 1, threads: int = 1, progress: ProgressFn | None = None
) -> list[dict[str, Any]]:
    """Every unit's record, in `units(config)` order; `jobs` > 1 runs units in parallel processes.

    Each unit is seeded on its own, so the records do not depend on `jobs`."""
    progress = progress or (lambda *_: None)
    todo = units(config)
    if jobs <= 1:
        records = []
        for unit in todo:
            records.append(run_unit(config, unit, lambda n: progress(n, None)))
            progress(0, records[-1])
        return records
    context = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    with context.Manager() as manager, ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        steps = manager.Queue()
        futures: dict[Future[dict[str, Any]], int] = {
            pool.submit(_run_unit_reporting, config.model_dump_json(), unit, steps): i for i, unit in enumerate(todo)
        }
        results: dict[int, dict[str, Any]] = {}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            progress(_drain(steps), None)
            for future in done:
                results[futures[future]] = future.result()
                progress(0, results[futures[future]])
        progress(_drain(steps), None)
    return [results[i] for i in range(len(todo))]


def _spread(values: Iterable[float | None]) -> dict[str, float] | None:
    """Mean, sample standard deviation, min and max (None when no value)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return {"mean": statistics.fmean(present), "std": std, "min": min(present), "max": max(present)}


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (cell, arm), in the order the records came, aggregated over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["cell"], record["arm"]), []).append(record)
    return [
        {
            "cell": cell,
            "arm": arm,
            "seeds": [r["seed"] for r in rows],
            "chance_loss": _spread(r["chance_loss"] for r in rows),
            "vaa_init": _spread(r["vaa_init"] for r in rows),
            "vaa_warm": _spread(r["vaa_warm"] for r in rows),
            "test_loss": _spread(r["test_loss"] for r in rows),
            "test_accuracy": _spread(r["test_accuracy"] for r in rows),
            "best_step": _spread(r["best_step"] for r in rows),
            "learned": sum(r["test_loss"] < LEARNED_FRACTION * r["chance_loss"] for r in rows),
        }
        for (cell, arm), rows in groups.items()
    ]


def run_reproduction(
    config: ReproductionConfig, *, jobs: int = 1, threads: int = 1, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """The whole report: configuration, environment, every run's record and the summary."""
    started = time.perf_counter()
    records = run_units(config, jobs=jobs, threads=threads, progress=progress)
    return {
        "config": config.model_dump(),
        "environment": {
            "torch": torch.__version__,
            "device": str(resolve_device(config.device)),
            "python": platform.python_version(),
            "jobs": jobs,
            "threads_per_job": threads,
        },
        "seconds": time.perf_counter() - started,
        "runs": records,
        "summary": summarise(records),
    }


# -- derived views: Markdown and plot ---------------------------------------------------------


def _fmt(stats: dict[str, float] | None, digits: int = 3, spread: bool = True) -> str:
    if stats is None:
        return "-"
    text = f"{stats['mean']:.{digits}f}"
    if spread:
        text += f" ± {stats['std']:.{digits}f} [{stats['min']:.{digits}f}, {stats['max']:.{digits}f}]"
    return text


def markdown_table(report: dict[str, Any]) -> str:
    """The summary as a Markdown table, with the setting it was measured in."""
    config = report["config"]
    classification = any(row["test_accuracy"] for row in report["summary"])
    header = ["cell", "arm", "VAA init", "VAA warm", "test loss mean ± std [min, max]", "learned", "best step"]
    if classification:
        header.append("test accuracy")
    lines = [
        f"Task `{config['task']}`, T = {config['seq_length']}, {config['num_layers']} x {config['hidden_size']} units, "
        f"{config['training']['steps']} training steps, seeds {config['seeds']}, "
        f"device {report['environment']['device']}, {report['seconds'] / 60:.1f} min. "
        f"VAA: exact, n = 32, S = {config['vaa_steps']}; \"learned\" = test loss < {LEARNED_FRACTION} x chance "
        f"(chance = {_fmt(report['summary'][0]['chance_loss'], spread=False)}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in report["summary"]:
        cells = [
            row["cell"],
            row["arm"],
            _fmt(row["vaa_init"], spread=False),
            _fmt(row["vaa_warm"], spread=False),
            _fmt(row["test_loss"]),
            f"{row['learned']}/{len(row['seeds'])}",
            _fmt(row["best_step"], digits=0, spread=False),
        ]
        if classification:
            cells.append(_fmt(row["test_accuracy"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _curves(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, and the mean / min / max over seeds of `key` along training."""
    steps = [point["step"] for point in records[0]["history"]]
    columns = list(zip(*([point[key] for point in r["history"]] for r in records)))
    return steps, [statistics.fmean(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns]


def plot(report: dict[str, Any], path: Path) -> None:
    """Test loss (mean line, min-max band over seeds) and exact VAA along training, one column per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = report["config"]
    cells = config["cells"]
    figure, axes = plt.subplots(2, len(cells), figsize=(3.2 * len(cells), 5.2), squeeze=False, sharex=True)
    for column, cell in enumerate(cells):
        loss_ax, vaa_ax = axes[0][column], axes[1][column]
        for arm in config["arms"]:
            records = [r for r in report["runs"] if r["cell"] == cell and r["arm"] == arm]
            steps, mean, low, high = _curves(records, "test_loss")
            (line,) = loss_ax.plot(steps, mean, label=arm)
            loss_ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())
            vaa_ax.plot(steps, _curves(records, "vaa")[1], color=line.get_color(), label=arm)
        chance = statistics.fmean(r["chance_loss"] for r in report["runs"] if r["cell"] == cell)
        loss_ax.axhline(chance, color="grey", linestyle="--", linewidth=0.8)
        loss_ax.set_yscale("log")
        loss_ax.set_title(cell)
        vaa_ax.set_xlabel("training step")
        vaa_ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("test loss (dashed: chance)")
    axes[1][0].set_ylabel(f"exact VAA (S = {config['training']['vaa_steps']})")
    axes[0][0].legend(fontsize="small")
    figure.suptitle(
        f"{config['task']}, T = {config['seq_length']}, {config['num_layers']} x {config['hidden_size']}, "
        f"{len(config['seeds'])} seeds",
        fontsize="medium",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json (every number), report.md (the table) and curves.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "curves.png"]
    paths[0].write_text(json.dumps(report, indent=1, allow_nan=False))
    paths[1].write_text(markdown_table(report))
    plot(report, paths[2])
    return paths


def total_steps(config: ReproductionConfig) -> int:
    """Progress steps of the whole experiment (for a progress bar)."""
    return sum(unit_steps(config, unit) for unit in units(config))

