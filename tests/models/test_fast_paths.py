"""The fast paths of the science give the reference's numbers: the fused time loop of the loop
cells against the same equations through autograd, and the exact VAA's repeat shortcut
against a roll of every step."""

from __future__ import annotations

import logging

import pytest
import torch

from warmzoo.models.network import build_network
from warmzoo.models.recurrence import eager_loops
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import reachable_states, vaa, vaa_star

LOOP_CELLS = ["brc", "nbrc", "mgu"]


def _warmup_loss_and_grads(spec: RNNSpec, eager: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """h0, VAA* and the gradients of one warm-up loss (prefix pass and roll both through the loop)."""
    net = build_network(spec, seed=0).to(torch.get_default_dtype())
    x = make_task("copy_first_input", 30, 8, seed=0).inputs.to(torch.get_default_dtype())
    generator = torch.Generator().manual_seed(0)
    with eager_loops() if eager else torch.enable_grad():
        h0 = reachable_states(net, x, generator)
        values = vaa_star(net, h0, steps=20, generator=generator, partial=spec.double)
        ((values - 0.95) ** 2).mean().backward()
    return h0.detach(), values.detach(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("cell", LOOP_CELLS)
def test_fused_loop_equals_the_eager_loop(cell: str, double: bool) -> None:
    """Forward bit for bit; gradients to float64 rounding (so the chain rule is exact)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        spec = RNNSpec(cell=cell, input_size=1, hidden_size=16, num_layers=2, double=double)
        h0_fused, vaa_fused, grads_fused = _warmup_loss_and_grads(spec, eager=False)
        h0_eager, vaa_eager, grads_eager = _warmup_loss_and_grads(spec, eager=True)
    finally:
        torch.set_default_dtype(previous)
    assert torch.equal(h0_fused, h0_eager) and torch.equal(vaa_fused, vaa_eager)
    assert grads_fused.keys() == grads_eager.keys()
    for name, grad in grads_eager.items():
        torch.testing.assert_close(grads_fused[name], grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("cell", LOOP_CELLS)
def test_fused_loop_gradients_agree_in_float32(cell: str) -> None:
    spec = RNNSpec(cell=cell, input_size=1, hidden_size=16, num_layers=2)
    _, _, fused = _warmup_loss_and_grads(spec, eager=False)
    _, _, eager = _warmup_loss_and_grads(spec, eager=True)
    for name, grad in eager.items():
        scale = float(grad.abs().max()) + 1e-12
        assert float((fused[name] - grad).abs().max()) / scale < 1e-3, name


def test_a_second_derivative_through_the_fused_loop_raises() -> None:
    """Its backward runs without a graph: a second derivative would be silently wrong, so it must fail."""
    net = build_network(RNNSpec(cell="brc", input_size=1, hidden_size=4), seed=0)
    h = net.layers[0].roll(torch.ones(1), torch.zeros(2, 4), steps=3)
    (grad,) = torch.autograd.grad(h.sum(), net.layers[0].w_c, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()


def test_tracing_runs_the_eager_loop_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    layer = build_network(RNNSpec(cell="nbrc", input_size=1, hidden_size=4), seed=0).layers[0].requires_grad_(False)
    with caplog.at_level(logging.INFO, logger="warmzoo.models.recurrence"), torch.no_grad():
        traced = torch.jit.trace(lambda s: layer.roll(torch.ones(1), s, 3), torch.zeros(2, 4), check_trace=False)
    state = torch.rand(2, 4)
    with torch.no_grad():
        assert torch.equal(traced(state), layer.roll(torch.ones(1), state, 3))
    assert "eager time loop while tracing" in caplog.text


@pytest.mark.parametrize(
    ("cell", "double"), [("brc", False), ("nbrc", True), ("mgu", False), ("gru", False), ("lstm", True)]
)
def test_exact_vaa_shortcut_equals_rolling_every_step(cell: str, double: bool) -> None:
    """Once a whole chunk returns its own input bit for bit, the rest of the roll is skipped:
    the VAA is the same as rolling all S steps (S not a multiple of the chunk, too)."""
    net = build_network(RNNSpec(cell=cell, input_size=1, hidden_size=16, num_layers=2, double=double), seed=0)
    x = make_task("copy_first_input", 50, 16, seed=0).inputs
    h0 = reachable_states(net, x, torch.Generator().manual_seed(0)).detach()
    for steps in (1500, 1730):
        fast = vaa(net, h0, steps=steps, generator=torch.Generator().manual_seed(1))
        with eager_loops():
            full = vaa(net, h0, steps=steps, generator=torch.Generator().manual_seed(1), stop_at_repeat=False)
        assert fast == full
