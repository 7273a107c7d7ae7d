"""Resource budgets from the settings, checked before any work starts so a bad request costs nothing."""

from __future__ import annotations

from warmzoo.models.shapes import parameter_count
from warmzoo.models.spec import RNNSpec
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason, limit_exceeded

FP32 = 4  # bytes


def check_spec(spec: RNNSpec, settings: Settings, field: str = "spec") -> None:
    """Refuse the first spec dimension above its configured maximum, naming it, then a spec whose
    network would hold more parameters than the budget (counted from the widths, nothing built)."""
    bounds = {
        "hidden_size": ("max_hidden_size", settings.max_hidden_size),
        "num_layers": ("max_layers", settings.max_layers),
        "input_size": ("max_input_size", settings.max_input_size),
        "output_size": ("max_output_size", settings.max_output_size),
    }
    for name, (setting, maximum) in bounds.items():
        value = getattr(spec, name)
        if value > maximum:
            raise limit_exceeded(f"{field}.{name} is {value}", maximum, setting, field=f"{field}.{name}")
    parameters = parameter_count(spec)
    if parameters > settings.max_parameters:
        raise limit_exceeded(
            f"{field} makes a network of {parameters} parameters ({4 * parameters} bytes)",
            settings.max_parameters,
            "max_parameters",
            field=field,
            hint="use fewer or narrower layers",
        )


def inference_bytes(spec: RNNSpec, batch: int, steps: int) -> int:
    """FP32 bytes of one inference request's tensors: input [B, T, I], output [B, T, O], and the
    state [L, B, S] sent in and returned. The state does not shrink with T: a `[100000, 1, 1]`
    request (400 KB of input) to a 1 x 512 GRU carries 2 x 205 MB of state."""
    widths = steps * (spec.input_size + spec.output_size) + 2 * spec.num_layers * spec.state_size
    return FP32 * batch * widths


def check_inference(spec: RNNSpec, batch: int, steps: int, maximum: int, field: str) -> None:
    """Refuse (400, naming `field`) a request whose tensors pass `maximum` bytes, before any is built."""
    needed = inference_bytes(spec, batch, steps)
    if needed > maximum:
        raise limit_exceeded(
            f"a request of batch {batch} and {steps} steps to this model (input {spec.input_size}, output "
            f"{spec.output_size}, state {spec.num_layers} x {spec.state_size}) holds {needed} bytes of FP32 tensors",
            maximum,
            "max_inference_bytes",
            field,
            "send a smaller batch (the state grows with the batch, not with time)",
            reason=Reason.BAD_REQUEST,
        )
