"""Size limits from the settings, checked before any work starts so a bad request costs nothing."""

from __future__ import annotations

from models.spec import RNNSpec
from service.config import Settings
from service.errors import ApiError


def check_spec(spec: RNNSpec, settings: Settings, field: str = "spec") -> None:
    """422 naming the first spec dimension above its configured maximum."""
    bounds = {
        "hidden_size": ("max_hidden_size", settings.max_hidden_size),
        "num_layers": ("max_layers", settings.max_layers),
        "input_size": ("max_input_size", settings.max_input_size),
        "output_size": ("max_output_size", settings.max_output_size),
    }
    for name, (setting, maximum) in bounds.items():
        value = getattr(spec, name)
        if value > maximum:
            raise ApiError(
                422,
                f"{field}.{name} is {value}; this server accepts at most {maximum} "
                f"(setting WARMZOO_{setting.upper()})",
                field=f"{field}.{name}",
                code="limit_exceeded",
            )
