"""Task training with the paper's recipe (arXiv 2106.01001, section 5).

Adam, learning rate 1e-3, batches of 32; the loss is the MSE on the last
`target_steps` outputs (regression) or the cross-entropy of the last output
(classification). The weights with the best validation loss are restored at the
end, and the test loss is reported for them. Along the way, every `eval_every`
steps, the validation and test losses and the exact VAA are recorded, so a
learning curve and the evolution of multistability can be drawn from one run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from warmzoo.models.network import Network
from warmzoo.models.tasks import TaskData
from warmzoo.models.vaa import measure_vaa


class TrainingConfig(BaseModel):
    """Every knob of task training; the defaults are the paper's except the budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(default=1000, ge=0, description="Adam steps (batches).")
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam learning rate.")
    batch_size: int = Field(default=32, ge=1, description="Sequences per step.")
    eval_every: int = Field(default=50, ge=1, description="Steps between validation/test/VAA measurements.")
    eval_batch_size: int = Field(default=256, ge=1, description="Sequences per forward pass when evaluating.")
    vaa_steps: int = Field(
        default=1000, ge=1, description="S of the exact VAA along training (smaller than a reported 10000: cost)."
    )
    vaa_samples: int = Field(default=32, ge=2, description="n of the exact VAA along training.")
    vaa_estimates: int = Field(
        default=1, ge=1, le=100, description="Estimates averaged per VAA point along training (the paper's code: 10)."
    )
    vaa_replacement: bool = Field(
        default=False, description="Draw each estimate's sequences with replacement (the paper's code does)."
    )


@dataclass(frozen=True)
class Metrics:
    loss: float
    accuracy: float | None  # classification only


@dataclass(frozen=True)
class EvalPoint:
    """One measurement along training; `train_loss` is the mean batch loss since the previous point."""

    step: int
    train_loss: float | None
    val_loss: float
    test_loss: float
    test_accuracy: float | None
    vaa: float


@dataclass
class TrainingResult:
    history: list[EvalPoint] = field(default_factory=list)
    best_step: int = 0
    best_val_loss: float = float("inf")
    test: Metrics | None = None  # with the best-validation weights restored
    seconds: float = 0.0


ProgressFn = Callable[[int, int, EvalPoint | None], None]


def split_task(data: TaskData, sizes: tuple[int, ...]) -> tuple[TaskData, ...]:
    """Consecutive slices of `sizes` sequences (train, validation, test), targets alongside."""
    if sum(sizes) > data.inputs.shape[0]:
        raise ValueError(f"splits {sizes} need {sum(sizes)} sequences, the task has {data.inputs.shape[0]}")
    parts, start = [], 0
    for size in sizes:
        rows = slice(start, start + size)
        targets = None if data.targets is None else data.targets[rows]
        parts.append(TaskData(data.inputs[rows], targets, data.kind, data.target_steps, data.output_size))
        start += size
    return tuple(parts)


def task_loss(outputs: Tensor, targets: Tensor, data: TaskData) -> Tensor:
    """outputs [B, T, O] -> the scalar loss of the task: MSE on the scored steps, or CE at the last step."""
    if data.kind == "regression":
        return F.mse_loss(outputs[:, -data.target_steps :], targets)
    if data.kind == "classification":
        return F.cross_entropy(outputs[:, -1], targets)
    raise ValueError(f"a task of kind {data.kind!r} has no targets to train on")


def chance_loss(train: TaskData, test: TaskData) -> float:
    """Test loss of the best input-blind predictor fitted on the training set: the mean
    target per scored step (regression) or the class frequencies (classification)."""
    assert train.targets is not None and test.targets is not None
    if train.kind == "regression":
        return float(F.mse_loss(train.targets.mean(dim=0).expand_as(test.targets), test.targets))
    frequencies = torch.bincount(train.targets, minlength=train.output_size).float() / train.targets.numel()
    return float(-torch.log(frequencies.clamp_min(1e-12))[test.targets].mean())


@torch.no_grad()
def evaluate(network: Network, data: TaskData, batch_size: int = 256) -> Metrics:
    """Loss (and accuracy) over a whole split, `batch_size` sequences at a time."""
    assert data.targets is not None
    total, correct, n = 0.0, 0, data.inputs.shape[0]
    for start in range(0, n, batch_size):
        x = data.inputs[start : start + batch_size].to(network.device)
        y = data.targets[start : start + batch_size].to(network.device)
        outputs = network(x)[0]
        total += float(task_loss(outputs, y, data)) * x.shape[0]
        if data.kind == "classification":
            correct += int((outputs[:, -1].argmax(dim=-1) == y).sum())
    accuracy = correct / n if data.kind == "classification" else None
    return Metrics(total / n, accuracy)


def train(
    network: Network,
    train_data: TaskData,
    val_data: TaskData,
    test_data: TaskData,
    config: TrainingConfig | None = None,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TrainingResult:
    """Train `network` in place, then restore its best-validation weights.

    Batches are drawn with replacement by a generator seeded with `seed`, so cold and
    warm networks given the same seed see the same batches in the same order.
    `progress(step, total, point)` is called after every step, with the measurement
    made at that step or None."""
    config = config or TrainingConfig()
    assert train_data.targets is not None
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    result, started = TrainingResult(), time.perf_counter()
    best_state = copy.deepcopy(network.state_dict())
    batch_losses: list[float] = []

    def measure(step: int) -> EvalPoint:
        nonlocal best_state
        network.eval()
        val = evaluate(network, val_data, config.eval_batch_size)
        test = evaluate(network, test_data, config.eval_batch_size)
        estimates = measure_vaa(
            network,
            train_data.inputs,
            steps=config.vaa_steps,
            n=config.vaa_samples,
            repeats=config.vaa_estimates,
            seed=seed,
            replacement=config.vaa_replacement,
        )
        vaa = sum(estimates) / len(estimates)
        train_loss = sum(batch_losses) / len(batch_losses) if batch_losses else None
        batch_losses.clear()
        point = EvalPoint(step, train_loss, val.loss, test.loss, test.accuracy, vaa)
        result.history.append(point)
        if val.loss < result.best_val_loss:
            result.best_step, result.best_val_loss = step, val.loss
            best_state = copy.deepcopy(network.state_dict())
        network.train()
        return point

    measure(0)
    network.train()
    for step in range(1, config.steps + 1):
        rows = torch.randint(0, train_data.inputs.shape[0], (config.batch_size,), generator=generator)
        x, y = train_data.inputs[rows].to(network.device), train_data.targets[rows].to(network.device)
        loss = task_loss(network(x)[0], y, train_data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        batch_losses.append(float(loss.detach()))
        point = measure(step) if step % config.eval_every == 0 or step == config.steps else None
        if progress is not None:
            progress(step, config.steps, point)
    network.load_state_dict(best_state)
    network.eval()
    result.test = evaluate(network, test_data, config.eval_batch_size)
    result.seconds = time.perf_counter() - started
    return result
