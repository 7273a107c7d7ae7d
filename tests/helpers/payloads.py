"""Request bodies and answers the API tests build and read again and again."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np


def warmup(name: str = "tiny", steps: int = 2, **fields: Any) -> dict[str, Any]:
    """A `POST /v1/warmups` body: a 1 x 4 GRU on copy_first_input (T = 12), a few seconds of work;
    `fields` replace or add top-level fields."""
    return {
        "name": name,
        "spec": {"cell": "gru", "input_size": 1, "hidden_size": 4},
        "data": {"task": "copy_first_input", "seq_length": 12, "num_samples": 16},
        "warmup": {"steps": steps, "batch_size": 8},
        **fields,
    }


def warmup_on_cpu(name: str, steps: int = 3, **fields: Any) -> dict[str, Any]:
    """The same for a real server's workers: on the CPU, whatever GPU the machine has."""
    return {**warmup(name, steps), "device": "cpu", **fields}


def tensor(x: np.ndarray) -> dict[str, Any]:
    """An OIP request's `input` tensor, FP32, as JSON."""
    return {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}


def outputs(answer: httpx.Response) -> dict[str, np.ndarray]:
    """An OIP answer's output tensors by name (the answer must be a 200)."""
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.asarray(o["data"], np.float32).reshape(o["shape"]) for o in answer.json()["outputs"]}
