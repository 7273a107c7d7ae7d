"""Weights in and out: safetensors only, checked tensor by tensor against the spec."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save

from warmzoo.models.network import build_network
from warmzoo.models.spec import RNNSpec
from warmzoo.models.weights import WeightsError, network_from_weights, state_dict_bytes, weights_bytes

SPEC = RNNSpec(cell="nbrc", input_size=2, hidden_size=4, num_layers=2, output_size=1)


def test_round_trip_reads_the_spec_from_metadata() -> None:
    net = build_network(SPEC, seed=0)
    again = network_from_weights(weights_bytes(net))
    assert again.spec == SPEC
    x = torch.randn(2, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], again(x)[0])


def test_state_dict_loads_without_pickle_code() -> None:
    import io

    tensors = torch.load(io.BytesIO(state_dict_bytes(build_network(SPEC))), weights_only=True)
    assert set(tensors) == set(build_network(SPEC).state_dict())


def test_wrong_shape_names_the_tensor() -> None:
    tensors = dict(build_network(SPEC).state_dict())
    tensors["layers.1.weight_hh"] = torch.zeros(3, 3)
    with pytest.raises(WeightsError, match="layers.1.weight_hh") as caught:
        network_from_weights(save(tensors), SPEC)
    assert caught.value.tensor == "layers.1.weight_hh"


def test_missing_extra_and_non_finite_tensors() -> None:
    good = dict(build_network(SPEC).state_dict())
    missing = {k: v for k, v in good.items() if k != "readout.bias"}
    with pytest.raises(WeightsError, match="readout.bias.*missing"):
        network_from_weights(save(missing), SPEC)
    with pytest.raises(WeightsError, match="'extra' is not part"):
        network_from_weights(save({**good, "extra": torch.zeros(1)}), SPEC)
    bad = {**good, "readout.bias": torch.tensor([float("nan")])}
    with pytest.raises(WeightsError, match="NaN"):
        network_from_weights(save(bad), SPEC)


def test_a_pickle_is_refused_without_being_run(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(WeightsError, match="safetensors"):
        network_from_weights(pickle.dumps(Exploit()), SPEC)
    assert not marker.exists()


def test_garbage_and_missing_spec() -> None:
    with pytest.raises(WeightsError):
        network_from_weights(b"\xff" * 64)
    with pytest.raises(WeightsError, match="no spec"):
        network_from_weights(save(dict(build_network(SPEC).state_dict())))
