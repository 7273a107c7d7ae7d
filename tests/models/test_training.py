"""Task training: losses per task kind, chance levels, best-validation weights restored."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.training import TrainingConfig, chance_loss, evaluate, split_task, task_loss, train


def test_split_task_keeps_targets_aligned() -> None:
    data = make_task("denoising", 20, 30, seed=0)
    train_data, val_data, test_data = split_task(data, (10, 5, 15))
    assert [d.inputs.shape[0] for d in (train_data, val_data, test_data)] == [10, 5, 15]
    assert torch.equal(val_data.targets, data.targets[10:15])
    with pytest.raises(ValueError, match="need 31"):
        split_task(data, (10, 5, 16))


def test_losses_score_the_last_steps() -> None:
    data = make_task("denoising", 20, 4, seed=0)
    outputs = torch.zeros(4, 20, 1)
    outputs[:, -5:] = data.targets
    assert float(task_loss(outputs, data.targets, data)) == 0.0
    digits = make_task("digits", 64, 50, seed=0)
    logits = torch.zeros(50, 64, 10)
    logits[torch.arange(50), -1, digits.targets] = 100.0
    assert float(task_loss(logits, digits.targets, digits)) < 1e-6


def test_chance_loss_is_the_target_variance_and_the_prior_entropy() -> None:
    train_data, test_data = split_task(make_task("copy_first_input", 5, 20_000, seed=0), (10_000, 10_000))
    assert chance_loss(train_data, test_data) == pytest.approx(1.0, abs=0.05)
    train_data, test_data = split_task(make_task("digits", 64, 1000, seed=0), (500, 500))
    assert chance_loss(train_data, test_data) == pytest.approx(torch.log(torch.tensor(10.0)).item(), abs=0.1)


def test_train_restores_the_best_validation_weights() -> None:
    torch.manual_seed(0)
    train_data, val_data, test_data = split_task(make_task("copy_first_input", 10, 120, seed=0), (80, 20, 20))
    net = build_network(RNNSpec(cell="gru", input_size=1, hidden_size=8), seed=0)
    config = TrainingConfig(steps=20, eval_every=5, learning_rate=1e-1, vaa_steps=20)
    result = train(net, train_data, val_data, test_data, config, seed=0)
    assert [p.step for p in result.history] == [0, 5, 10, 15, 20]
    best = min(result.history, key=lambda p: p.val_loss)
    assert result.best_step == best.step and result.best_val_loss == best.val_loss
    assert result.test == evaluate(net, test_data)
    assert result.test.loss == pytest.approx(best.test_loss)
