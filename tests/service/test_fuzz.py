"""Property-based fuzzing of the whole OpenAPI schema (schemathesis, in process over ASGI).

Every operation gets schema-valid and schema-invalid requests; each answer must be below 500,
documented (status code, content type, headers) and match its documented body, invalid input
must be refused. The checks are those of `schemathesis run --checks all` but
`positive_data_acceptance` (test_schemathesis_run.py says why); the header and method checks
only fire on the coverage phase's requests, which that CLI test sends. A tiny model is published first, and a third round of valid requests
names it (and its version 1) in the path, so that the rest of each request reaches real rows.

`GET /v1/jobs/{job_id}/events` is left out: it streams until its job ends, and no worker runs
here, so a request for an existing job would never finish (its 404 path is plain JSON, covered
in test_api_jobs.py).

test_schemathesis_run.py is the outside judge of the same document: the schemathesis CLI with
every check (but one, said there) and every phase against a real server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from tests.helpers.factories import tiny_weights
from warmzoo.service.api.app import create_app
from warmzoo.service.core.config import Settings

pytestmark = pytest.mark.fuzz

FUZZ_MODEL = "gru-denoising"
REAL_ROWS = {"name": FUZZ_MODEL, "version": "1"}  # path parameters that reach the published version
MAX_EXAMPLES = 40  # per operation and round: about 35 operations x 2-3 rounds take 40-50 s
EVENTS = "/v1/jobs/{job_id}/events"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation; building the schema needs no database."""
    paths = create_app(Settings()).openapi()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods if path != EVENTS]


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        auth="off",  # every operation reachable (test_auth covers the keys); no rate limit to trip over
        rate_limit_per_s=0,
        max_hidden_size=64,
        max_seq_length=200,
    )
    app = create_app(settings)
    with TestClient(app) as client:  # runs the lifespan: app.state is ready for schemathesis' own client
        published = client.post(
            f"/v1/models/{FUZZ_MODEL}/versions", files={"weights": ("w.safetensors", tiny_weights())}
        )
        assert published.status_code == 201, published.text
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _rounds(path: str) -> list[tuple[GenerationMode, dict[str, str]]]:
    """(mode, fixed path parameters) of each round of requests to the operation at `path`."""
    real = {key: value for key, value in REAL_ROWS.items() if f"{{{key}}}" in path}
    rounds = [(GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {})]
    return rounds + [(GenerationMode.POSITIVE, real)] if real else rounds


@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_operation_answers_as_documented(fuzz_schema: BaseSchema, method: str, path: str) -> None:
    operation = fuzz_schema[path][method]
    for mode, fixed in _rounds(path):

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # only a free-form string path parameter, say: no request can be schema-invalid
            assert mode is GenerationMode.NEGATIVE
