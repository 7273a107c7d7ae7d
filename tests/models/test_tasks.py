"""Task generators: shapes, targets and determinism."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.tasks import TASK_INPUT_SIZES, make_task


def test_copy_first_input() -> None:
    task = make_task("copy_first_input", 30, 8, seed=1)
    assert task.inputs.shape == (8, 30, 1) and task.targets.shape == (8, 1, 1)
    assert torch.equal(task.targets[:, 0], task.inputs[:, 0])
    assert task.kind == "regression" and task.target_steps == 1


def test_denoising_marks_and_targets() -> None:
    T = 40
    task = make_task("denoising", T, 16, seed=2)
    x, marks = task.inputs, task.inputs[:, :, 1]
    assert x.shape == (16, T, 2) and task.targets.shape == (16, 5, 1) and task.target_steps == 5
    assert ((marks == 1).sum(dim=1) == 5).all()
    assert (marks[:, T - 5] == -1).all()
    assert (marks[:, T - 5 :] != 1).all()  # marked positions lie in the first T - pad steps
    for i in range(16):
        positions = (marks[i] == 1).nonzero().flatten()
        torch.testing.assert_close(task.targets[i, :, 0], x[i, positions, 0])  # in order


def test_digits_is_real_data_read_pixel_by_pixel() -> None:
    task = make_task("digits", 80, 50, seed=0)
    assert task.inputs.shape == (50, 80, 1) and task.kind == "classification"
    assert task.targets.dtype == torch.int64 and set(task.targets.tolist()) <= set(range(10))
    assert task.inputs[:, 64:].abs().sum() == 0  # blank steps after the 64 pixels
    assert 0 <= task.inputs.min() and task.inputs.max() <= 1 and task.inputs.max() > 0.9


def test_gaussian_has_the_requested_width() -> None:
    task = make_task("gaussian", 12, 4, seed=0, input_size=3)
    assert task.inputs.shape == (4, 12, 3) and task.targets is None


@pytest.mark.parametrize("name", sorted(TASK_INPUT_SIZES))
def test_same_seed_same_data(name: str) -> None:
    a, b = make_task(name, 70, 6, seed=9), make_task(name, 70, 6, seed=9)
    assert torch.equal(a.inputs, b.inputs)
    assert TASK_INPUT_SIZES[name] in (None, a.inputs.shape[-1])


def test_unknown_task_and_bad_lengths() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        make_task("nope", 10, 2)
    with pytest.raises(ValueError, match="seq_length"):
        make_task("denoising", 8, 2)
    with pytest.raises(ValueError, match="seq_length"):
        make_task("digits", 10, 2)
