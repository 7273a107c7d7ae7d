"""Every setting of the service, read once from `WARMZOO_*` environment variables.

The same code runs the embedded shape (SQLite + blob directory under `data_dir`) and the
scale-out shape (PostgreSQL, S3, Ray, Redis): only these values differ.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
LogLevel = Annotated[
    Literal["critical", "error", "warning", "info", "debug"],
    BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value),
]


class Batching(BaseModel):
    """Dynamic batching of one model version: Triton's `dynamic_batching` and `instance_group`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="Run concurrent requests of equal time length as one batch.")
    max_batch_size: int = Field(64, ge=1, description="Most sequences in one batch.")
    max_queue_delay_us: int = Field(0, ge=0, description="Longest a request waits for a fuller batch (microseconds).")
    instances: int = Field(2, ge=1, description="Batches of the version that run at once (threads).")


class BatchingOverride(BaseModel):
    """The settings of `Batching` that a model or version sets for itself; the rest are the server's."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    max_batch_size: int | None = Field(None, ge=1)
    max_queue_delay_us: int | None = Field(None, ge=0)
    instances: int | None = Field(None, ge=1)


class Settings(BaseSettings):
    """Service configuration; `database_url` and `blob_store` default to paths under `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="WARMZOO_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Root of the embedded registry (database file and blobs).")
    database_url: str = Field("", description="SQLAlchemy URL; default sqlite:///<data_dir>/warmzoo.db.")
    blob_store: str = Field(
        "", description="Blob directory, file:// URL or s3://bucket/prefix; default <data_dir>/blobs."
    )
    s3_endpoint_url: str = Field(
        "", description="Endpoint of an S3-compatible store for an s3:// blob_store; default AWS_ENDPOINT_URL, else AWS."
    )
    executor: Literal["embedded", "ray"] = Field(
        "embedded", description="Where jobs run: worker processes started by `serve`, or tasks on a Ray cluster."
    )
    ray_address: str = Field(
        "", description="Ray cluster of executor=ray (ray://host:10001 or host:port); default RAY_ADDRESS, else local."
    )
    ray_max_tasks: int | None = Field(
        None, ge=1, description="Jobs one server keeps on the Ray cluster at once; None = its GPUs, else its CPUs."
    )
    sequence_store: Literal["memory", "redis"] = Field(
        "memory", description="Where streaming-sequence state lives: this process, or Redis (shared by replicas)."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis of sequence_store=redis.")
    redis_key_prefix: str = Field("warmzoo:seq:", description="Prefix of every Redis key of the sequence store.")
    workers: int | None = Field(None, ge=0, description="Embedded worker processes; None = one per GPU, else 1.")
    api_processes: int = Field(
        1,
        ge=1,
        description="API processes of `warmzoo serve` on one port (one event loop each); above 1 it needs "
        "sequence_store=redis, and rate limits count per process.",
    )

    grpc_address: str = Field(
        "",
        description="host:port of the gRPC /v2 endpoint, set by `warmzoo serve --grpc-port`; empty: no gRPC.",
    )

    onnx_threads: int = Field(1, ge=1, description="Intra-op threads per ONNX Runtime session.")
    batching: bool = Field(True, description="Dynamic batching of concurrent inference requests (per model version).")
    max_batch_size: int = Field(64, ge=1, description="Most sequences in one dynamic batch.")
    max_queue_delay_us: int = Field(
        0, ge=0, description="Longest an inference request waits for a fuller batch (microseconds; 0: never)."
    )
    batch_instances: int = Field(2, ge=1, description="Batches of one model version that run at once.")
    model_batching: dict[str, BatchingOverride] = Field(
        {},
        description='Per-model ("name") and per-version ("name/3") batching settings over the defaults, as JSON: '
        '{"starter-gru": {"max_batch_size": 8}, "starter-gru/2": {"enabled": false}}.',
    )
    session_cache_size: int = Field(16, ge=1, description="ONNX Runtime sessions kept in memory (LRU).")
    sequence_idle_timeout_s: float = Field(300.0, gt=0, description="A streaming sequence idle this long is dropped.")
    max_sequences: int = Field(
        1024, ge=1, description="Concurrent streaming sequences held by one server (by all replicas, on Redis)."
    )
    max_sequences_per_owner: int = Field(
        64, ge=1, description="Open streaming sequences of one API key (or, without one, one client address)."
    )
    max_sequence_bytes_per_owner: int = Field(
        256 * MiB,
        ge=1,
        description="State bytes (num_layers x batch x state_size x 4) of the open sequences of one API key "
        "(or client address).",
    )

    # Who may do what (service.auth). "auto" is resolved by `warmzoo serve`: off when bound to a
    # loopback address, else on; an app built by create_app() treats an unresolved "auto" as on.
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="Require API keys: on, off, or auto (serve: off on loopback only; elsewhere on)."
    )
    anonymous_read: bool = Field(
        True, description="With auth on, reading the zoo and inference need no key (writes always do)."
    )
    rate_limit_per_s: float = Field(
        100.0, ge=0, description="Requests per second per API key (per client IP without one); 0 turns it off."
    )
    rate_limit_burst: int = Field(
        200, ge=1, description="Requests a key or IP may send at once before the rate applies."
    )
    max_active_jobs_per_key: int = Field(8, ge=1, description="Queued plus running jobs one API key may have at once.")

    # Limits, checked before any work starts so that a bad request costs nothing.
    max_upload_bytes: int = Field(
        256 * MiB, ge=1, description="Largest multipart request body (weight and data set uploads)."
    )
    max_json_bytes: int = Field(
        16 * MiB, ge=1, description="Largest request body of any other kind (JSON: job requests, inference)."
    )
    max_hidden_size: int = Field(4096, ge=1, description="Largest spec.hidden_size accepted.")
    max_layers: int = Field(16, ge=1, description="Largest spec.num_layers accepted.")
    max_input_size: int = Field(4096, ge=1, description="Largest spec.input_size accepted.")
    max_output_size: int = Field(4096, ge=1, description="Largest spec.output_size accepted.")
    max_parameters: int = Field(
        2**26,
        ge=1,
        description="Largest parameter count of a spec (uploads and warm-ups), computed from its widths before any "
        "network is built; 2^26 FP32 values are 256 MiB, the default upload limit.",
    )
    max_seq_length: int = Field(100_000, ge=1, description="Longest warm-up or inference sequence (time steps).")
    max_num_samples: int = Field(100_000, ge=1, description="Most sequences in a warm-up data set.")
    max_warmup_steps: int = Field(100_000, ge=1, description="Most optimiser steps in one warm-up job.")
    max_batch_time: int = Field(100_000, ge=1, description="Largest batch x time of one inference request.")
    max_inference_bytes: int = Field(
        64 * MiB,
        ge=1,
        description="Largest FP32 tensors of one inference request, from the spec's widths: input and output "
        "(batch x time x width x 4) plus the state sent in and returned (2 x num_layers x batch x state_size x 4).",
    )
    max_page_size: int = Field(100, ge=1, description="Largest `limit` of a paginated listing.")

    database_pool_timeout_s: float = Field(
        10.0, gt=0, description="How long an API request waits for a free database connection before its 503."
    )

    job_lease_s: float = Field(60.0, gt=0, description="A running job whose lease is older than this is re-queued.")
    job_max_attempts: int = Field(3, ge=1, description="Tries before a job that keeps losing its worker fails.")
    job_max_seconds: float = Field(
        86_400.0, gt=0, description="Wall time one attempt at a job may run; past it the job fails (job_time_limit)."
    )
    worker_poll_s: float = Field(1.0, gt=0, description="How often an idle worker looks for queued jobs.")
    vaa_steps: int = Field(10_000, ge=1, description="S of the exact VAA measured by warm-up and measure jobs.")
    vaa_repeats: int = Field(
        3, ge=1, description="Independent exact-VAA estimates averaged before and after a warm-up."
    )
    starter_catalogue: bool = Field(
        True, description="Seed a few tiny warmed-up models on the first start of an empty zoo."
    )
    log_level: LogLevel = Field(
        "info", description="Least severe log records written (JSON lines on stderr); `warmzoo serve --log-level` wins."
    )

    def batching_for(self, name: str, version: int) -> Batching:
        """A version's batching: the server's defaults, then its model's settings, then its own."""
        values = {
            "enabled": self.batching,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": self.max_queue_delay_us,
            "instances": self.batch_instances,
        }
        for key in (name, f"{name}/{version}"):
            if key in self.model_batching:
                values.update(self.model_batching[key].model_dump(exclude_none=True))
        return Batching(**values)

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'warmzoo.db'}"
        if not self.blob_store:
            self.blob_store = str(self.data_dir / "blobs")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (the environment is read once); apps and tests may pass their own."""
    return Settings()
