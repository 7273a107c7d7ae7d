"""The model card: the README.md of a version, written once when the version is published.

It says what the network is, how it was warmed up and measured, where it came from, and
how to run it, with snippets that work on the files downloaded next to it.
"""

from __future__ import annotations

import json
from typing import Any

from warmzoo.models.outcome import SAMPLES, judge
from warmzoo.models.spec import RNNSpec
from warmzoo.models.torch_native import TORCH_CELLS
from warmzoo.service.registry.tables import VersionRow

PAPER = "https://arxiv.org/abs/2106.01001"
VAA_EXPLAINED = (
    "VAA is measured exactly: n input sequences lead to n states, the network then runs S steps on one constant"
    " input, and VAA is about the number of distinct end points over n (1/n: a single attractor, monostable; 1:"
    " every sequence its own). VAA* is the smooth surrogate that the warm-up optimises, over a few to 200 steps:"
    " it reads high at small S because states that have not yet converged still look distinct, so only the exact"
    " VAA says whether the network is multistable."
)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "not measured"


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, sort_keys=True) + "\n```"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def measured_how(metrics: dict[str, Any]) -> str:
    """`exact, n = 32, S = 10000, mean of 3 estimates`: how a version's VAA figures were measured."""
    if metrics.get("vaa_steps") is None:
        return "not recorded"
    estimates = metrics.get("vaa_repeats") or len(metrics.get("vaa_after_estimates") or []) or 1
    return (
        f"exact, n = {metrics.get('vaa_samples') or SAMPLES}, S = {metrics['vaa_steps']},"
        f" mean of {_plural(estimates, 'estimate')} (each before and after)"
    )


def _description(name: str, version: VersionRow, spec: RNNSpec) -> str:
    layers = _plural(spec.num_layers, f"{'double ' if spec.double else ''}{spec.cell} layer")
    halves = f" (each two independent cells of {spec.hidden_size // 2} units)" if spec.double else ""
    shape = (
        f"a stack of {layers} of width {spec.hidden_size}{halves}, input size {spec.input_size}, "
        f"with a linear readout to {_plural(spec.output_size, 'output')}"
    )
    if version.warmup is None:
        origin = "These weights were uploaded to the zoo; they have not been warmed up here."
    else:
        origin = (
            "Its initialisation was *warmed up*: trained, before any task, to maximise the variability "
            f"amongst attractors (VAA) reachable from the task's inputs, which makes the network multistable "
            f"and greatly improves later learning ([Lambrechts et al. 2023]({PAPER}))."
        )
    return f"`{name}` version {version.number} is {shape}. {origin}"


def _numbers(version: VersionRow) -> str:
    metrics = version.metrics
    history = metrics.get("vaa_star_history") or []
    rows = [
        ("VAA before warm-up", _number(metrics.get("vaa_before"))),
        ("VAA after warm-up", _number(metrics.get("vaa_after"))),
        ("How VAA was measured", measured_how(metrics)),
        (
            "VAA* over the warm-up",
            f"{_number(history[0])} -> {_number(history[-1])} ({len(history)} steps)" if history else "not recorded",
        ),
        ("Seed", "none" if version.seed is None else str(version.seed)),
        ("Device", version.device or "unknown"),
        ("Warm-up time", f"{version.seconds:.1f} s" if version.seconds is not None else "unknown"),
        ("Weights sha256", f"`{version.sha256}`"),
    ]
    lines = ["| | |", "|---|---|", *(f"| {label} | {value} |" for label, value in rows)]
    extra = {k: v for k, v in metrics.items() if k not in ("vaa_before", "vaa_after", "vaa_star_history")}
    if extra:
        lines += ["", "Other measurements:", "", _json_block(extra)]
    return "\n".join(lines)


def _outcome(version: VersionRow) -> str | None:
    """What the warm-up achieved and, when it did not help, what to try (models.outcome)."""
    metrics = version.metrics
    judged = judge(metrics.get("vaa_before"), metrics.get("vaa_after"), metrics.get("vaa_samples") or SAMPLES)
    if judged is None:
        return None
    return judged.summary + (f"\n\n**What to try.** {judged.advice}" if judged.advice else "")


def _torch_native(spec: RNNSpec) -> str:
    """The lines that load torch.safetensors into torch's own modules, and the state layout."""
    if spec.cell not in TORCH_CELLS:
        return ""
    module = "LSTM" if spec.is_lstm else "GRU"
    i, hidden, layers, out = spec.input_size, spec.hidden_size, spec.num_layers, spec.output_size
    state = (
        "`(h, c)`, each [{layers}, batch, {hidden}]: the zoo's state [{layers}, batch, {s}]"
        " is `[h; c]` on the last axis"
        if spec.is_lstm
        else "`h` [{layers}, batch, {hidden}], the zoo's state as it is"
    ).format(layers=layers, hidden=hidden, s=spec.state_size)
    double = (
        " Each double layer is one torch layer whose recurrent weights are block-diagonal (the two halves"
        " stay independent as long as the off-diagonal blocks stay zero)."
        if spec.double
        else ""
    )
    return f"""

### PyTorch's own modules (`torch.safetensors`)

```python
import torch
from safetensors.torch import load_file

rnn = torch.nn.{module}({i}, {hidden}, num_layers={layers}, batch_first=True)
readout = torch.nn.Linear({hidden}, {out})
tensors = load_file("torch.safetensors")
rnn.load_state_dict({{k: v for k, v in tensors.items() if not k.startswith("readout.")}})
readout.load_state_dict({{k.removeprefix("readout."): v for k, v in tensors.items() if k.startswith("readout.")}})
outputs, state = rnn(torch.randn(1, 50, {i}))
y = readout(outputs)  # [1, 50, {out}]
```

The state torch's {module} takes and returns is {state}.{double}"""


def _comparison(version: VersionRow) -> str | None:
    """The newest compare job's figures: does this warm start learn better than a cold one?"""
    if not version.comparisons:
        return None
    config, result = version.comparisons[-1].config, version.comparisons[-1].result
    warmed, cold = result["summary"]["warmed"], result["summary"]["cold"]
    runs, task = len(config["seeds"]), config["task"]
    return (
        f"These weights and {config['cold_init']} were trained alike on `{task['task']}` (T = {task['seq_length']}):"
        f" {config['steps']} steps of Adam (learning rate {result['training']['learning_rate']}, batches of"
        f" {result['training']['batch_size']}) per run, seeds {config['seeds']}, the same batches for both, the"
        f" best-validation weights kept. Test loss (mean over seeds): **{_number(warmed['test_loss'])} warmed**,"
        f" {_number(cold['test_loss'])} cold, chance {_number(result['chance_loss'])}; runs that learned (test loss"
        f" below {result['learned_fraction']} x chance): {warmed['learned']}/{runs} warmed, {cold['learned']}/{runs}"
        f" cold. Every learning curve: `GET /v1/models/{version.model.name}/versions/{version.number}/comparisons`."
    )


def _usage(version: VersionRow, spec: RNNSpec) -> str:
    i, layers, s = spec.input_size, spec.num_layers, spec.state_size
    files = f"/v1/models/{version.model.name}/versions/{version.number}/files"
    layout = "`[h; c]`" if spec.is_lstm else "`h`"
    if spec.double:
        layout += " (double layers: the halves side by side, h = [h1; h2], c = [c1; c2])"
    return f"""Download the files into one directory, e.g.
`curl -fO http://HOST{files}/weights.safetensors` (also `modeling.py`, `state_dict.pt`, `model.onnx`,
`cell.onnx`, and `hf.zip`, this version as a Hugging Face Hub folder); every download's ETag is its sha256.

### Plain PyTorch (`modeling.py`, no warmzoo needed)

`modeling.py` imports only torch and safetensors:

```python
import torch
from modeling import load

network = load("weights.safetensors")  # the spec is read from the file's metadata
x = torch.randn(1, 50, {i})  # [batch, time, input_size]
y, state = network(x)  # y [1, 50, {spec.output_size}], state [{layers}, 1, {s}]
```

Each layer's state is {layout}.
`safetensors.torch.load_file("weights.safetensors")` or `torch.load("state_dict.pt", weights_only=True)`
give the tensors by name.{_torch_native(spec)}

### PyTorch (with the `warmzoo` package)

```python
import torch
from warmzoo.models.weights import network_from_weights

with open("weights.safetensors", "rb") as f:
    network = network_from_weights(f.read())
y, state = network(torch.randn(1, 50, {i}))
```

### ONNX Runtime

`model.onnx` runs whole sequences (any batch, any length); `state` is optional (zeros).

```python
import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
x = np.random.randn(2, 50, {i}).astype(np.float32)  # [batch, time, input_size]
output, state = session.run(["output", "state_out"], {{"input": x}})
# carry on with the same sequences from where they stopped:
more, state = session.run(["output", "state_out"], {{"input": x, "state": state}})
```

`cell.onnx` is one time step: `input` [batch, {i}] and `state` [{layers}, batch, {s}] in,
`output` and `state_out` out.

```python
import numpy as np
import onnxruntime as ort

cell = ort.InferenceSession("cell.onnx", providers=["CPUExecutionProvider"])
state = np.zeros(({layers}, 1, {s}), np.float32)
for x_t in np.random.randn(10, 1, {i}).astype(np.float32):
    y_t, state = cell.run(["output", "state_out"], {{"input": x_t, "state": state}})
```"""


def _lineage(version: VersionRow) -> str:
    if version.base is not None:
        return f"Warmed up from `{version.base.model.name}` version {version.base.number}."
    if version.warmup is None:
        return "Uploaded weights."
    return "Warmed up from a fresh initialisation of the spec."


def render_card(version: VersionRow) -> str:
    """Markdown for one version (its model and base are read through the row's relationships)."""
    name = version.model.name
    spec = RNNSpec.model_validate(version.spec)
    sections = [
        f"# {name} v{version.number}",
        _description(name, version, spec),
        "## Numbers",
        _numbers(version),
        VAA_EXPLAINED,
        *(["## Outcome", outcome] if (outcome := _outcome(version)) else []),
        *(["## Warmed versus cold", compared] if (compared := _comparison(version)) else []),
        "## Spec",
        _json_block(spec.model_dump(mode="json")),
        "## Warm-up",
        _json_block(version.warmup) if version.warmup is not None else "None.",
        "## Data",
        _json_block(version.data) if version.data is not None else "None.",
        "## Lineage",
        _lineage(version),
        "## Use it",
        _usage(version, spec),
        "## Environment",
        _json_block(version.libraries) if version.libraries else "Not recorded.",
    ]
    return "\n\n".join(sections) + "\n"
