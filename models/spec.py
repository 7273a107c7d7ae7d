"""The architecture of a network, as users write it in requests and files."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CellName = Literal["gru", "lstm", "chrono", "mgu", "brc", "nbrc"]
CELLS: tuple[str, ...] = ("gru", "lstm", "chrono", "mgu", "brc", "nbrc")
# The built-in tasks (models.tasks) and the input width each produces (None: any width).
# Kept here, free of torch, so that requests and the command line can be checked cheaply.
TASK_INPUT_SIZES: dict[str, int | None] = {"copy_first_input": 1, "denoising": 2, "gaussian": None, "digits": 1}
# The initialisations `warmzoo reproduce` compares (models.reproduce); "double-" arms use
# double layers, and double-warm warms up only their first half-cells.
ARMS: tuple[str, ...] = ("cold", "warm", "double-cold", "double-warm")


class RNNSpec(BaseModel):
    """A stack of `num_layers` recurrent layers of one cell type plus a linear readout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: CellName = Field(description="Recurrent cell type.", examples=["gru"])
    input_size: int = Field(ge=1, description="Features per time step.", examples=[1])
    hidden_size: int = Field(ge=1, description="Units per layer.", examples=[64])
    num_layers: int = Field(default=1, ge=1, description="Stacked recurrent layers.", examples=[2])
    output_size: int = Field(default=1, ge=1, description="Readout features per step.", examples=[1])
    double: bool = Field(
        default=False,
        description="Each layer is two independent half-width cells fed the same input (the paper's double layer).",
    )
    t_max: float = Field(default=600.0, gt=2, description="Chrono initialisation horizon (only for `chrono`).")

    @model_validator(mode="after")
    def _double_needs_even_width(self) -> RNNSpec:
        if self.double and self.hidden_size % 2:
            raise ValueError("hidden_size must be even when double is true (two cells of hidden_size/2 units)")
        return self

    @property
    def is_lstm(self) -> bool:
        return self.cell in ("lstm", "chrono")

    @property
    def state_size(self) -> int:
        """Width of one layer's state vector: h, or [h; c] for LSTM cells."""
        return 2 * self.hidden_size if self.is_lstm else self.hidden_size
