"""Resource budgets from the settings, checked before any work starts so a bad request costs nothing."""

from __future__ import annotations

from warmzoo.models.spec import RNNSpec
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import limit_exceeded


def check_spec(spec: RNNSpec, settings: Settings, field: str = "spec") -> None:
    """Refuse the first spec dimension above its configured maximum, naming it."""
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
