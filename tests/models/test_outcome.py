"""The verdict on a warm-up, from its exact VAA before and after."""

from __future__ import annotations

from warmzoo.models.outcome import judge


def test_monostable_after_says_so_and_what_to_try() -> None:
    judged = judge(1 / 32, 1 / 32, 32)
    assert judged is not None and judged.kind == "monostable" and judged.advice and "wider layers" in judged.advice
    assert judge(0.03125, 2 / 32, 32).kind == "monostable"  # type: ignore[union-attr]  # up to 2/n is nearly one attractor


def test_a_lowered_vaa_is_reported_even_when_still_multistable() -> None:
    judged = judge(0.875, 0.4375, 32)
    assert judged is not None and judged.kind == "lowered" and "0.875" in judged.summary and judged.advice


def test_a_raised_vaa_is_multistable_without_advice() -> None:
    judged = judge(1 / 32, 1.0, 32)
    assert judged is not None and (judged.kind, judged.advice) == ("multistable", None)
    assert judge(None, 0.5, 32) is None
