"""Warmed versus cold, for one network of the zoo: the same training, seeds, batches and budget.

The `compare` job of a version trains its weights and a cold initialisation of the same spec
on the version's task, with the training of `warmzoo reproduce` (models.training: Adam,
the paper's learning rate and batches, best-validation weights restored, test loss reported).
Both arms of a seed see the same data and the same batches in the same order; the only
difference is where the weights start.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from warmzoo.models.network import Network
from warmzoo.models.reproduce import LEARNED_FRACTION
from warmzoo.models.tasks import make_task
from warmzoo.models.training import TrainingConfig, chance_loss, split_task, train

ARMS = ("warmed", "cold")
MAX_SEEDS = 5
MAX_STEPS = 5000


class ComparisonConfig(BaseModel):
    """The budget of a comparison; the defaults finish in a minute or two on a CPU for 2 x 64 cells."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"seeds": [0], "steps": 300}, {"seeds": [0, 1, 2], "steps": 1000}]},
    )

    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS, description="One run per arm and seed."
    )
    steps: int = Field(default=300, ge=1, le=MAX_STEPS, description="Training steps (batches of 32) per run.")
    evaluations: int = Field(default=15, ge=1, le=100, description="Points of each learning curve (plus step 0).")
    num_train: int = Field(default=1024, ge=32, le=8192, description="Training sequences.")
    num_test: int = Field(default=256, ge=32, le=2048, description="Validation and test sequences, each.")


Progress = Callable[[str, int, int], None]  # (arm, steps done in this arm, steps of this arm)


def compare(
    make: dict[str, Callable[[], Network]],
    task: dict[str, Any],
    config: ComparisonConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train `make[arm]()` for every arm and seed on `task` ({task, seq_length, its parameters});
    returns every learning curve and test loss, and their summary per arm."""
    params = {k: v for k, v in task.items() if k not in ("task", "seq_length", "num_samples")}
    training = TrainingConfig(steps=config.steps, eval_every=max(1, config.steps // config.evaluations))
    sizes = (config.num_train, config.num_test, config.num_test)
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in make}
    chance: list[float] = []
    for arm, build in make.items():
        for i, seed in enumerate(config.seeds):
            data = make_task(task["task"], task["seq_length"], sum(sizes), seed=seed, **params)
            train_data, val_data, test_data = split_task(data, sizes)
            if arm == next(iter(make)):
                chance.append(chance_loss(train_data, test_data))
            network = build()
            done, total = i * config.steps, config.steps * len(config.seeds)
            report = None if progress is None else lambda step, _t, _p, arm=arm, done=done: progress(arm, done + step, total)
            result = train(network, train_data, val_data, test_data, training, seed=seed, progress=report)
            assert result.test is not None
            runs[arm].append(
                {
                    "seed": seed,
                    "history": [asdict(point) for point in result.history],
                    "best_step": result.best_step,
                    "test_loss": result.test.loss,
                    "test_accuracy": result.test.accuracy,
                    "seconds": result.seconds,
                }
            )
    chance_mean = statistics.fmean(chance)
    summary = {
        arm: {
            "test_loss": statistics.fmean(run["test_loss"] for run in arm_runs),
            "learned": sum(run["test_loss"] < LEARNED_FRACTION * c for run, c in zip(arm_runs, chance, strict=True)),
        }
        for arm, arm_runs in runs.items()
    }
    return {
        "chance_loss": chance_mean,
        "learned_fraction": LEARNED_FRACTION,
        "training": training.model_dump(),
        "runs": runs,
        "summary": summary,
    }
