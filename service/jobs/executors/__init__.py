"""Where queued jobs run: `embedded` worker processes beside the API (the default) or tasks on a
Ray cluster (`ray_cluster`, imported only when chosen: Ray is an optional extra)."""

from __future__ import annotations

from warmzoo.service.core.config import Settings
from warmzoo.service.jobs.executors.embedded import EmbeddedExecutor, Executor, worker_count


def make_executor(settings: Settings) -> Executor:
    """The executor the settings name (WARMZOO_EXECUTOR)."""
    if settings.executor == "ray":
        try:
            from warmzoo.service.jobs.executors.ray_cluster import RayExecutor
        except ImportError as exc:
            raise RuntimeError(
                f"WARMZOO_EXECUTOR=ray needs Ray ({exc}): install it with `pip install 'warmzoo[ray]'`"
            ) from exc
        return RayExecutor(settings)
    return EmbeddedExecutor(settings, worker_count(settings))
