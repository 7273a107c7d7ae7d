"""The inference resolver over the registry: immutable versions cached, aliases followed."""

from __future__ import annotations

import pytest

from tests.helpers.factories import tiny_spec, tiny_weights
from warmzoo.service.api.errors import HTTP_STATUS
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import WarmzooError
from warmzoo.service.registry.blobs import LocalBlobStore
from warmzoo.service.registry.db import make_engine, session_factory
from warmzoo.service.registry.registry import Registry
from warmzoo.service.serving.repository import registry_resolver


def test_versions_resolve_and_aliases_move(settings: Settings, registry: Registry) -> None:
    for seed in (0, 1):
        registry.publish_version("served", tiny_spec(), tiny_weights(seed=seed))
    registry.set_alias("served", "prod", 1)
    engine = make_engine(settings.database_url)
    resolve = registry_resolver(session_factory(engine), LocalBlobStore(settings.blob_store), settings.data_dir)
    try:
        assert resolve("served", None).version == 2  # latest
        assert resolve("served", "prod").version == 1
        first = resolve("served", "1")
        assert first.onnx_path.exists() and resolve("served", "1") is first  # cached: versions never change
        registry.set_alias("served", "prod", 2)
        assert resolve("served", "prod").version == 2  # an alias is looked up on every request
        with pytest.raises(WarmzooError) as missing:
            resolve("served", "3")
        assert (HTTP_STATUS[missing.value.reason], missing.value.field) == (404, "version")
    finally:
        engine.dispose()
