"""The warm-up procedure: its effect per cell, partial warm-up, reproducibility, control."""

from __future__ import annotations

import pytest
import torch

from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import measure_vaa
from warmzoo.models.warmup import WarmupConfig, WarmupDiverged, shuffled_batches, stabilization_steps, warmup

COPY_100 = make_task("copy_first_input", 100, 256, seed=0).inputs


def _paper_setup(cell: str) -> tuple[torch.nn.Module, float, float]:
    """Default warm-up on copy_first_input (T = 100, 2 x 64); exact VAA with S = 2000, n = 32."""
    net = build_network(RNNSpec(cell=cell, input_size=1, hidden_size=64, num_layers=2), seed=0)
    before = measure_vaa(net, COPY_100, steps=2000, n=32, seed=1)[0]
    warmup(net, COPY_100, WarmupConfig(), seed=0)
    after = measure_vaa(net, COPY_100, steps=2000, n=32, seed=1)[0]
    return net, before, after


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_warmup_makes_monostable_cells_multistable(cell: str) -> None:
    _, before, after = _paper_setup(cell)
    assert before <= 0.1, f"{cell} should start monostable, VAA = {before}"
    assert after >= 0.5, f"{cell} VAA after warm-up = {after}"


@pytest.mark.slow
def test_warmup_chrono_reaches_multistability() -> None:
    assert _paper_setup("chrono")[2] >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["brc", "nbrc"])
def test_bistable_cells_start_multistable(cell: str) -> None:
    net = build_network(RNNSpec(cell=cell, input_size=1, hidden_size=64, num_layers=2), seed=0)
    assert measure_vaa(net, COPY_100, steps=2000, n=32, seed=1)[0] >= 0.25  # 1/n = 0.03


def _moved_by_partial_warmup(cell: str, **config: object) -> dict[str, float]:
    """Largest change of every parameter of a 2-layer double network over a short partial warm-up."""
    net = build_network(RNNSpec(cell=cell, input_size=1, hidden_size=16, num_layers=2, double=True), seed=0)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    warmup(net, make_task("copy_first_input", 30, 64).inputs, WarmupConfig(steps=15, **config), seed=0)
    return {name: (p.detach() - before[name]).abs().max().item() for name, p in net.named_parameters()}


@pytest.mark.parametrize("cell", ["gru", "lstm", "brc"])
def test_partial_warmup_moves_second_halves_through_h0_by_default(cell: str) -> None:
    """As in the paper's code: Adam holds every parameter; the second half-cells of the first
    layer get the gradient that reaches them through the next layer's h0, the last layer's do not."""
    moved = _moved_by_partial_warmup(cell)
    for name, change in moved.items():
        if ".first." in name or name.startswith("layers.0.second."):
            assert change > 1e-3, f"{name} did not move"
        else:  # layers.1.second.* and the readout: no gradient reaches them
            assert change == 0.0, f"{name} moved by {change}"


@pytest.mark.parametrize("cell", ["gru", "lstm", "brc"])
def test_partial_freeze_keeps_second_halves(cell: str) -> None:
    for name, change in _moved_by_partial_warmup(cell, partial_freeze=True).items():
        if ".second." in name:
            assert change == 0.0, f"{name} moved by {change}"
        elif ".first." in name:
            assert change > 1e-3, f"{name} did not move"


def test_warmup_keeps_the_last_smaller_batch_of_a_pass() -> None:
    """70 sequences in batches of 32: 32, 32, 6 per pass (the paper's code keeps the remainder);
    a remainder of one sequence is skipped, since VAA* needs two end states."""
    sizes = [len(b) for b, _ in zip(shuffled_batches(70, 32, torch.Generator().manual_seed(0)), range(6))]
    assert sizes == [32, 32, 6, 32, 32, 6]
    sizes = [len(b) for b, _ in zip(shuffled_batches(65, 32, torch.Generator().manual_seed(0)), range(4))]
    assert sizes == [32, 32, 32, 32]
    pass_ = torch.cat([b for b, _ in zip(shuffled_batches(70, 32, torch.Generator().manual_seed(0)), range(3))])
    assert sorted(pass_.tolist()) == list(range(70))


def test_full_warmup_of_double_layers_trains_both_halves() -> None:
    net = build_network(RNNSpec(cell="gru", input_size=1, hidden_size=8, num_layers=1, double=True), seed=0)
    before = net.layers[0].second.rnn.weight_hh_l0.detach().clone()
    warmup(net, make_task("copy_first_input", 20, 64).inputs, WarmupConfig(steps=5, partial=False), seed=0)
    assert not torch.equal(before, net.layers[0].second.rnn.weight_hh_l0.detach())


@pytest.mark.parametrize("cell", ["gru", "brc"])
def test_seeded_runs_are_reproducible(cell: str) -> None:
    data = make_task("denoising", 20, 64, seed=3).inputs
    runs = []
    for _ in range(2):
        net = build_network(RNNSpec(cell=cell, input_size=2, hidden_size=8, num_layers=2), seed=5)
        result = warmup(net, data, WarmupConfig(steps=8), seed=7)
        runs.append((result.vaa_star_history, [p.detach().clone() for p in net.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_progress_and_cooperative_stop() -> None:
    net = build_network(RNNSpec(cell="mgu", input_size=1, hidden_size=4), seed=0)
    seen: list[tuple[int, int, float]] = []
    result = warmup(
        net,
        make_task("gaussian", 10, 32).inputs,
        WarmupConfig(steps=50),
        progress=lambda step, total, value: seen.append((step, total, value)),
        should_stop=lambda: len(seen) >= 3,
    )
    assert result.stopped and result.steps_done == 3
    assert [s[:2] for s in seen] == [(1, 50), (2, 50), (3, 50)]
    assert all(0 < s[2] <= 1 for s in seen)
    assert result.vaa_star_history == [s[2] for s in seen]


def test_nan_stops_the_run_with_a_clear_error() -> None:
    net = build_network(RNNSpec(cell="gru", input_size=1, hidden_size=4), seed=0)
    with torch.no_grad():
        net.layers[0].rnn.weight_hh_l0.fill_(float("nan"))
    with pytest.raises(WarmupDiverged, match="NaN"):
        warmup(net, make_task("gaussian", 10, 32).inputs, WarmupConfig(steps=3))


def test_stabilization_schedule() -> None:
    config, generator = WarmupConfig(), torch.Generator().manual_seed(0)
    assert stabilization_steps(0, config, generator) == 1  # U{1..1}
    draws = [stabilization_steps(50, config, generator) for _ in range(300)]
    assert min(draws) >= 1 and max(draws) <= 200 and max(draws) > 150
    assert max(stabilization_steps(3, config, generator) for _ in range(300)) == 31
