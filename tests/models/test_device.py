"""Which device a job runs on, and that float32 stays float32 there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from warmzoo.models.device import resolve_device


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """Turn TF32 on, as cuDNN's defaults have it; restore whatever was set before."""
    before = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    yield
    torch.backends.cudnn.allow_tf32 = before[0]
    torch.set_float32_matmul_precision(before[1])


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_cuda_keeps_ieee_float32(name: str, tf32_flags: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """TF32 rounding (1e-3) is coarser than the VAA's eps (1e-4): a GPU job must not use it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(name).type == "cuda"
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"


def test_cpu_leaves_the_flags_alone(tf32_flags: None) -> None:
    assert resolve_device("cpu").type == "cpu"
    assert torch.backends.cudnn.allow_tf32 is True


def test_cuda_without_a_gpu_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
