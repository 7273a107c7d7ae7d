"""The time loop of the loop cells (brc, nbrc, mgu) as one autograd node.

Written op by op, autograd records every elementwise op of every step and replays each
as its own node in the backward: at the warm-up's sizes (n = 32, H = 32-256) that
bookkeeping, not arithmetic, is most of a step. Here the forward runs the cell's own
equations with the graph off, keeps the few tensors the backward needs, and the
backward is the chain rule written out per step; the recurrent weights' gradients are
then one reduction over all steps. The forward's ops are the cell's `recur` op for op,
so outputs equal the eager loop bit for bit; gradients agree to float32 rounding.

The eager loop (the same `step`, one autograd op at a time) stays the reference: `eager_loops()`
switches to it (benchmarks, tests), and so does anything this node cannot serve
(tracing), with a log line; a second derivative through it raises instead of being wrong.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

log = logging.getLogger(__name__)

_fused_enabled = True
_fallbacks_logged: set[str] = set()


@contextlib.contextmanager
def eager_loops() -> Iterator[None]:
    """Run the loop cells step by step through autograd (the reference path) inside the block."""
    global _fused_enabled
    previous, _fused_enabled = _fused_enabled, False
    try:
        yield
    finally:
        _fused_enabled = previous


def fused_available() -> bool:
    """Whether the fused loop can serve this call; logs (once) when it cannot."""
    if not _fused_enabled:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        if "tracing" not in _fallbacks_logged:
            _fallbacks_logged.add("tracing")
            log.info("loop cells: eager time loop while tracing (a custom autograd node does not trace)")
        return False
    return True


class Kernel(Protocol):
    """One cell's step with the graph off, and the chain rule of a whole loop of steps."""

    def step(self, p_t: Tensor, h: Tensor, weights: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """(h', what the backward needs) from the step's input projection p_t and h."""
        ...

    def backward(
        self, saved: list[tuple[Tensor, ...]], weights: tuple[Tensor, ...], grads: Tensor | None, dh: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """(dL/dp of every step [steps, B, G*H], dL/dh0, dL/d(weights)) from dL/d(final state) `dh`
        and, for a sequence, dL/d(output) of every step `grads` [B, steps, H]."""
        ...


def _stacked(saved: list[tuple[Tensor, ...]]) -> list[Tensor]:
    """Every saved tensor of every step, stacked: [steps, B, H] each."""
    return [torch.stack(column) for column in zip(*saved)]


def _matmul_grad(dz: Tensor, inputs: Tensor) -> Tensor:
    """dL/dW of z = inputs @ W.T summed over steps and batch: dz [steps, B, out], inputs [steps, B, in]."""
    return dz.reshape(-1, dz.shape[-1]).T @ inputs.reshape(-1, inputs.shape[-1])


def _add_output_grad(dh: Tensor, grads: Tensor | None, t: int) -> Tensor:
    return dh if grads is None else dh + grads[:, t]


class BistableKernel:
    """BRC (self-connections, weights [w_c; 2 w_a] as [2, H]) and nBRC (whole-layer feedback,
    [Wc; 2 Wa] as [2H, H]); the a-gate's projection arrives doubled too (`BistableCell`):
    c, s = sigma([z_c; 2 z_a]); a = 2s = 1 + tanh(z_a); n = tanh(p_h + a*h); h' = c*h + (1 - c)*n.

    The backward computes every step's local derivatives in a few ops over all steps at
    once; only dL/dh is carried step by step: for BRC a product with a diagonal Jacobian
    (two ops a step), for nBRC one matrix product more."""

    def __init__(self, neuromodulated: bool) -> None:
        self.neuromodulated = neuromodulated

    def step(self, p_t: Tensor, h: Tensor, weights: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        B, H = h.shape
        if self.neuromodulated:
            c, s = torch.sigmoid(torch.addmm(p_t[:, : 2 * H], h, weights[0].T)).split(H, dim=-1)
        else:
            c, s = torch.sigmoid(torch.addcmul(p_t[:, : 2 * H].view(B, 2, H), weights[0], h.unsqueeze(1))).unbind(1)
        n = torch.tanh(torch.addcmul(p_t[:, 2 * H :], s, h, value=2))
        return torch.lerp(n, h, c), (h, c, s, n)

    def backward(
        self, saved: list[tuple[Tensor, ...]], weights: tuple[Tensor, ...], grads: Tensor | None, dh: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        h, c, s, n = _stacked(saved)
        H = h.shape[-1]
        k_n = (1 - c) * (1 - n * n)  # dz_n = dh' * k_n
        k_c = (h - n) * c * (1 - c)  # dz_c = dh' * k_c
        k_a = 2 * k_n * h * s * (1 - s)  # dz_a (of the doubled pre-activation) = dh' * k_a
        direct = c + 2 * k_n * s  # dh / dh' through the update and the candidate
        dhs = [dh] * len(saved)  # placeholders, every entry is overwritten
        if self.neuromodulated:
            k_ca = torch.cat([k_c, k_a], dim=-1)
            for t in range(len(saved) - 1, -1, -1):
                dh = dhs[t] = _add_output_grad(dh, grads, t)
                dh = torch.addmm(dh * direct[t], torch.cat([dh, dh], dim=-1) * k_ca[t], weights[0])
        else:
            w_c, w_a = weights[0]
            jacobian = direct + k_c * w_c + k_a * w_a  # diagonal: dh = dh' * jacobian
            for t in range(len(saved) - 1, -1, -1):
                dh = dhs[t] = _add_output_grad(dh, grads, t)
                dh = dh * jacobian[t]
        d_out = torch.stack(dhs)  # dL/dh' of every step
        dz_ca = torch.cat([d_out * k_c, d_out * k_a], dim=-1)
        dp = torch.cat([dz_ca, d_out * k_n], dim=-1)
        if self.neuromodulated:
            return dp, dh, (_matmul_grad(dz_ca, h),)
        return dp, dh, ((dz_ca.unflatten(-1, (2, H)) * h.unsqueeze(-2)).sum((0, 1)),)


class MGUKernel:
    """f = sigma(p_f + h Whf^T); g = tanh((f*h) Whh^T + p_h); h' = (1 - f)*h + f*g."""

    def step(self, p_t: Tensor, h: Tensor, weights: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        weight_hf, weight_hh = weights
        p_f, p_h = p_t.split(h.shape[-1], dim=-1)
        f = torch.sigmoid(torch.addmm(p_f, h, weight_hf.T))
        fh = f * h
        g = torch.tanh(torch.addmm(p_h, fh, weight_hh.T))
        return torch.lerp(h, g, f), (h, f, fh, g)

    def backward(
        self, saved: list[tuple[Tensor, ...]], weights: tuple[Tensor, ...], grads: Tensor | None, dh: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        weight_hf, weight_hh = weights
        h, f, fh, g = _stacked(saved)
        k_g = f * (1 - g * g)  # dz_g = dh' * k_g
        slope = f * (1 - f)
        k_f, k_fh = (g - h) * slope, h * slope  # dz_f = dh' * k_f + d(f*h) * k_fh
        keep = 1 - f
        dz_fs, dz_gs = [dh] * len(saved), [dh] * len(saved)  # placeholders, every entry is overwritten
        for t in range(len(saved) - 1, -1, -1):
            dh = _add_output_grad(dh, grads, t)
            dz_g = dz_gs[t] = dh * k_g[t]
            d_fh = dz_g @ weight_hh
            dz_f = dz_fs[t] = torch.addcmul(dh * k_f[t], d_fh, k_fh[t])
            dh = torch.addmm(torch.addcmul(dh * keep[t], d_fh, f[t]), dz_f, weight_hf)
        dz_f, dz_g = torch.stack(dz_fs), torch.stack(dz_gs)
        return torch.cat([dz_f, dz_g], dim=-1), dh, (_matmul_grad(dz_f, h), _matmul_grad(dz_g, fh))


class _FusedLoop(torch.autograd.Function):
    """Outputs of every step [B, T, H] for per-step projections p [B, T, G*H], or the final
    state [B, H] after `steps` steps of one constant projection p [B, G*H] (a roll)."""

    @staticmethod
    def forward(ctx, kernel: Kernel, p: Tensor, h0: Tensor, steps: int, *weights: Tensor) -> Tensor:  # type: ignore[override]
        constant = p.dim() == 2
        inputs = [p] * steps if constant else p.unbind(1)
        keep = any(ctx.needs_input_grad)  # the graph is off in here; this says whether a backward will come
        h, outputs, saved = h0, [], []
        for p_t in inputs:
            h, s = kernel.step(p_t, h, weights)
            if keep:
                saved.append(s)
            if not constant:
                outputs.append(h)
        ctx.kernel, ctx.constant, ctx.saved, ctx.weights = kernel, constant, saved, weights
        return h if constant else torch.stack(outputs, dim=1)

    @staticmethod
    @once_differentiable  # the chain rule below runs without a graph: a second derivative raises
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if ctx.constant:
            dp, dh0, weight_grads = ctx.kernel.backward(ctx.saved, ctx.weights, None, grad)
            grad_p = dp.sum(0)
        else:
            dh = torch.zeros_like(grad[:, 0])
            dp, dh0, weight_grads = ctx.kernel.backward(ctx.saved, ctx.weights, grad, dh)
            grad_p = dp.transpose(0, 1)
        ctx.saved = None
        return (None, grad_p, dh0, None, *weight_grads)


def fused_loop(kernel: Kernel, p: Tensor, h0: Tensor, steps: int, weights: tuple[Tensor, ...]) -> Tensor:
    """Run `_FusedLoop` (see its docstring for the two shapes)."""
    return _FusedLoop.apply(kernel, p, h0, steps, *weights)
