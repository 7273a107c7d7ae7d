"""Input data for warm-ups and training: generated tasks and one real-data task.

Every task is an input tensor [N, T, I] plus what training needs: targets for the
last `target_steps` steps (regression) or a class per sequence (classification).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from warmzoo.models.spec import TASK_INPUT_SIZES

TaskName = Literal["copy_first_input", "denoising", "gaussian", "digits"]


@dataclass(frozen=True)
class TaskData:
    inputs: Tensor  # [N, T, I] float32
    targets: Tensor | None  # [N, target_steps, O] float32, or [N] int64 class labels
    kind: Literal["regression", "classification", "none"]
    target_steps: int  # how many final steps are scored (1 for classification)
    output_size: int


def copy_first_input(seq_length: int, num_samples: int, generator: torch.Generator) -> TaskData:
    """x_t ~ N(0, 1); the target is x_1, asked at the last step only."""
    x = torch.randn(num_samples, seq_length, 1, generator=generator)
    return TaskData(x, x[:, :1, :].clone(), "regression", 1, 1)


def denoising(seq_length: int, num_samples: int, generator: torch.Generator, pad: int = 5) -> TaskData:
    """Channel 0 is noise; channel 1 marks 5 positions in the first T - pad steps with +1
    and step T-5 with -1; the targets are the 5 marked values, in order, at the last 5 steps."""
    marks = 5
    if pad < 0:
        raise ValueError(f"denoising needs pad >= 0, got {pad}")
    if seq_length - pad < marks:
        raise ValueError(f"denoising needs seq_length >= {marks + pad}")
    x = torch.zeros(num_samples, seq_length, 2)
    x[:, :, 0] = torch.randn(num_samples, seq_length, generator=generator)
    positions = torch.rand(num_samples, seq_length - pad, generator=generator).argsort(dim=1)[:, :marks]
    positions = positions.sort(dim=1).values
    x[:, :, 1].scatter_(1, positions, 1.0)
    x[:, seq_length - 5, 1] = -1.0
    targets = x[:, :, 0].gather(1, positions).unsqueeze(-1)
    return TaskData(x, targets, "regression", marks, 1)


def gaussian(seq_length: int, num_samples: int, generator: torch.Generator, input_size: int = 1) -> TaskData:
    """Noise sequences: the relevant inputs of a warm-up when only a spec is known."""
    x = torch.randn(num_samples, seq_length, input_size, generator=generator)
    return TaskData(x, None, "none", 0, 0)


def digits(seq_length: int, num_samples: int, generator: torch.Generator) -> TaskData:
    """The 8x8 handwritten digits shipped with scikit-learn, read pixel by pixel (64 steps,
    values in [0, 1]), followed by blank steps up to `seq_length`; the class is asked at the end."""
    from sklearn.datasets import load_digits  # bundled with the package: no download

    data = load_digits()
    pixels = torch.tensor(data.data, dtype=torch.float32) / 16.0  # [1797, 64]
    labels = torch.tensor(data.target, dtype=torch.int64)
    if seq_length < pixels.shape[1]:
        raise ValueError(f"digits needs seq_length >= {pixels.shape[1]} (one step per pixel)")
    pick = torch.randint(0, pixels.shape[0], (num_samples,), generator=generator)
    x = torch.zeros(num_samples, seq_length, 1)
    x[:, : pixels.shape[1], 0] = pixels[pick]
    return TaskData(x, labels[pick], "classification", 1, 10)


TASKS: dict[str, Callable[..., TaskData]] = {
    "copy_first_input": copy_first_input,
    "denoising": denoising,
    "gaussian": gaussian,
    "digits": digits,
}
assert set(TASKS) == set(TASK_INPUT_SIZES), "every task declares its input width in models.spec"


def make_task(name: str, seq_length: int, num_samples: int, seed: int = 0, **params: int) -> TaskData:
    """Generate a task's data set; the same seed gives the same data."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    generator = torch.Generator().manual_seed(seed)
    return TASKS[name](seq_length, num_samples, generator, **params)
