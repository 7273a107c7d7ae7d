"""What a warm-up achieved, in words: the exact VAA before and after, judged.

A warm-up can fail quietly: a network still monostable afterwards (VAA after <= 2/n: nearly
every input sequence falls into the same attractor) or less multistable than it started
(brc and nbrc are born bistable and may lose some of it). The job, the version, its card
and the UI all say so with the same words, from this one function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

SAMPLES = 32  # n of the exact VAA, unless a version records another
OutcomeKind = Literal["multistable", "monostable", "lowered"]
TRY = (
    "Try wider layers (64 units or more), more warm-up steps (100 or more), or longer sequences"
    " (T of 100 or more), which give the reachable states more room to fall apart."
)


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    summary: str  # one sentence: what happened
    advice: str | None  # what to try, when the warm-up did not help

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(vaa_before: float | None, vaa_after: float | None, n: int) -> Outcome | None:
    """The outcome of a warm-up whose exact VAA (over n sequences) went from `vaa_before` to
    `vaa_after`; None when either was not measured (uploaded weights)."""
    if vaa_before is None or vaa_after is None:
        return None
    figures = f"exact VAA {vaa_before:.3g} before, {vaa_after:.3g} after"
    if vaa_after <= 2 / n:
        return Outcome(
            "monostable",
            f"The warm-up left the network monostable ({figures}; 1/n = {1 / n:.3g} means one attractor for all"
            f" {n} sequences, and anything up to 2/n is nearly that): it will remember no better than a cold start.",
            TRY,
        )
    if vaa_after < vaa_before:
        return Outcome(
            "lowered",
            f"The warm-up lowered the VAA ({figures}): the network ends with fewer distinct attractors than its"
            " initialisation had (cells born multistable, such as brc and nbrc, can lose some).",
            f"{TRY} A lower learning rate, or the initialisation itself, may serve better.",
        )
    return Outcome("multistable", f"The warm-up left the network multistable ({figures}).", None)
