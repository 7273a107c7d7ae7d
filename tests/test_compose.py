"""compose.yaml, checked without Docker: the scale-out shape is all there, every reference
between services resolves, and every WARMZOO_* variable it sets is a setting that accepts the
value (a misspelt variable would otherwise be ignored silently)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from warmzoo.service.core.config import Settings

COMPOSE = Path(__file__).resolve().parents[1] / "compose.yaml"
ONE_IMAGE = ("api-1", "api-2", "migrate", "ray-head", "ray-gpu-worker")  # all built from ./Dockerfile
_DEFAULTED = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")  # ${NAME:-default}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either of compose's two forms (mapping, or KEY=VALUE list)."""
    env = service.get("environment") or {}
    pairs = env.items() if isinstance(env, dict) else (item.split("=", 1) for item in env)
    return {key: _DEFAULTED.sub(r"\1", str(value)) for key, value in pairs}


def warmzoo_variables(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    found = {k: v for service in services.values() for k, v in environment(service).items()}
    return {k: v for k, v in found.items() if k.startswith("WARMZOO_")}


def test_the_scale_out_shape_is_all_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"lb", *ONE_IMAGE, "postgres", "minio", "redis"}
    assert all("image" in service or "build" in service for service in services.values())
    images = {(services[name]["image"], services[name]["build"]) for name in ONE_IMAGE}
    assert images == {("warmzoo:latest", ".")}
    devices = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    for api in ("api-1", "api-2"):
        assert environment(services[api])["WARMZOO_EXECUTOR"] == "ray"
        assert services[api]["command"][:2] == ["warmzoo", "serve"]


def test_every_dependency_and_address_names_a_service(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert set(service.get("depends_on") or ()) <= set(services) - {name}, name
    for variable, value in warmzoo_variables(services).items():
        url = urlsplit(value)
        if url.scheme not in ("", "s3", "file"):  # a server's address (an s3:// URL names a bucket)
            assert url.hostname in services, f"{variable}={value} names no service"
    lb = " ".join(services["lb"]["command"])
    assert all(f"{api}:8000" in lb for api in ("api-1", "api-2"))


def test_published_ports_are_unique_and_the_api_is_one_of_them(services: dict[str, dict[str, Any]]) -> None:
    published = [str(port).split(":")[0] for service in services.values() for port in service.get("ports", ())]
    assert len(published) == len(set(published)), published
    assert {"8000:8000", "8001:8001"} <= set(services["lb"]["ports"])


def test_grpc_reaches_every_replica_through_the_load_balancer(services: dict[str, dict[str, Any]]) -> None:
    for api in ("api-1", "api-2"):
        command = services[api]["command"]
        assert command[command.index("--grpc-port") + 1] == "8001" and "8001" in services[api]["expose"]
    lb = " ".join(services["lb"]["command"])
    assert "reverse_proxy h2c://api-1:8001 h2c://api-2:8001" in lb and "h2c" in lb.split(":8000")[0]


def test_every_warmzoo_variable_is_a_setting_that_accepts_its_value(services: dict[str, dict[str, Any]]) -> None:
    variables = warmzoo_variables(services)
    fields = {name.removeprefix("WARMZOO_").lower(): value for name, value in variables.items()}
    assert set(fields) <= set(Settings.model_fields), set(fields) - set(Settings.model_fields)
    settings = Settings(**fields)  # raises on a value the setting refuses
    assert (settings.executor, settings.sequence_store) == ("ray", "redis")


def test_the_api_replicas_and_the_ray_nodes_share_the_ray_token(services: dict[str, dict[str, Any]]) -> None:
    envs = [environment(services[name]) for name in ("api-1", "api-2", "ray-head", "ray-gpu-worker")]
    auth = {(env.get("RAY_AUTH_MODE"), env.get("RAY_AUTH_TOKEN")) for env in envs}
    assert len(auth) == 1 and next(iter(auth))[0] == "token", auth


def test_the_blob_store_bucket_is_created(services: dict[str, dict[str, Any]]) -> None:
    bucket = urlsplit(warmzoo_variables(services)["WARMZOO_BLOB_STORE"]).hostname
    assert f"store/{bucket}" in " ".join(services["minio-init"]["command"])
