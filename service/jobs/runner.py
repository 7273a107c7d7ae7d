"""What each kind of job does, with the `models` package: warm up and publish, measure, export.

The runner knows nothing of leases or processes. Whatever executes the job (the embedded
worker processes, or a task on a Ray cluster) hands it a `JobContext` to report progress,
ask whether to stop, and record success in the same transaction as what the job produced.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import onnx
import onnxruntime
import torch
from sqlalchemy.orm import Session, sessionmaker
from torch import Tensor

from warmzoo.models.comparison import ComparisonConfig, compare
from warmzoo.models.device import resolve_device
from warmzoo.models.network import Network, build_network
from warmzoo.models.outcome import judge
from warmzoo.models.spec import RNNSpec
from warmzoo.models.stopping import Stopped
from warmzoo.models.tasks import make_task
from warmzoo.models.vaa import measure_vaa
from warmzoo.models.warmup import WarmupConfig, WarmupDiverged, warmup
from warmzoo.models.weights import network_from_weights, weights_bytes
from warmzoo.service.core.config import Settings
from warmzoo.service.jobs.requests import VAA_SAMPLES
from warmzoo.service.registry import datasets
from warmzoo.service.registry.blobs import BlobStore
from warmzoo.service.registry.registry import Registry, VersionRef

Request = dict[str, Any]


class JobContext(Protocol):
    settings: Settings
    sessions: sessionmaker[Session]
    blobs: BlobStore

    def phase(self, name: str, total: int) -> None:
        """Start phase `name` (one of the job kind's PHASES) of `total` units; progress counts within it."""
        ...

    def progress(self, step: int, total: int, vaa_star: float | None = None) -> None: ...

    def should_stop(self) -> bool:
        """True once the job must end early: canceled, its worker shutting down, or its lease lost."""
        ...

    job_id: str

    def succeed(self, session: Session, result: dict[str, Any]) -> None:
        """Record success in `session`'s open transaction (the caller commits); raises when the
        job is no longer this executor's, so nothing is committed twice."""
        ...


class JobStopped(Stopped):
    """The job ended early because its context asked it to stop."""


class JobFailed(Exception):
    """The job cannot succeed; `body()` is its error, shaped like the API's error bodies."""

    def __init__(self, message: str, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, "code": self.code}


def unexpected_failure(exc: Exception) -> JobFailed:
    """What a job's owner reads of a failure that is no domain error (a bug, a resource limit):
    a code and a message written for them. The exception's own text may name paths, hosts or
    library internals, and the job is readable by anyone: it goes to the worker's log only."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return JobFailed(
            "the job ran out of memory: submit a smaller network, fewer or shorter sequences,"
            " or give the worker more memory",
            "out_of_memory",
        )
    return JobFailed("the job failed on an internal error; the server log has the details under its job id", "internal")


def library_versions() -> dict[str, str]:
    try:
        warmzoo = version("warmzoo")
    except PackageNotFoundError:
        warmzoo = "0+unknown"
    return {
        "warmzoo": warmzoo,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise JobFailed(str(exc), "device_unavailable", "device") from exc


CHECK_INTERVAL_S = 0.5  # how often the context (a database read) is asked whether to stop


class _Stop:
    """The job's `models.stopping.Stop`, called between steps and inside long loops (each
    chunk of a VAA roll): fails the job past its wall-time limit (settings.job_max_seconds),
    and raises JobStopped once the context says stop, asked at most every CHECK_INTERVAL_S."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._limit = ctx.settings.job_max_seconds
        self._deadline = time.monotonic() + self._limit
        self._next_check = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now > self._deadline:
            raise JobFailed(
                f"the job ran past {self._limit:g} s, the longest this server lets one run (setting "
                "WARMZOO_JOB_MAX_SECONDS): submit less work (fewer steps, shorter or fewer sequences)",
                "job_time_limit",
            )
        if now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL_S
            if self._ctx.should_stop():
                raise JobStopped


def _inputs(data: Request, seed: int, registry: Registry) -> Tensor:
    """The relevant input sequences [N, T, I]: a task regenerated from its seed, or a data set."""
    if "dataset" in data:
        return datasets.read_inputs(registry.session, registry.blobs, data["dataset"])
    params = {k: v for k, v in data.items() if k not in ("task", "seq_length", "num_samples")}
    return make_task(data["task"], data["seq_length"], data["num_samples"], seed=seed, **params).inputs


def _vaa_estimates(
    network: Network, inputs: Tensor, ctx: JobContext, stop: _Stop, vaa: Request, seed: int
) -> list[float]:
    """`vaa["repeats"]` independent exact-VAA estimates (n = 32, S = vaa["steps"]); estimate i
    uses seed + i, so the before and after figures of a warm-up see the same draws. Progress
    counts the steps rolled, in the phase the caller started."""
    steps, repeats = vaa["steps"], vaa["repeats"]
    estimates = []
    for i in range(repeats):
        rolled = lambda done, i=i: ctx.progress(i * steps + done, repeats * steps)  # noqa: E731
        estimates += measure_vaa(
            network, inputs, steps=steps, n=VAA_SAMPLES, seed=seed + i, stop=stop, progress=rolled
        )
    return estimates


def run_warmup(request: Request, ctx: JobContext, stop: _Stop) -> None:
    """Build (or load the base), measure, warm up, measure again, publish: the version and the
    job's success commit together."""
    spec = RNNSpec.model_validate(request["spec"])
    seed, base = request["seed"], request["base"]
    device = _device(request["device"])
    with ctx.sessions() as session:
        registry = Registry(session, ctx.blobs)
        inputs = _inputs(request["data"], seed, registry)
        if base is None:
            network = build_network(spec, seed=seed)
        else:
            stored = registry.resolve(base["model"], base["version"], ("base.model", "base.version"))
            network = network_from_weights(registry.read(stored.sha256), spec)
    network = network.to(device)
    vaa = request.get("vaa") or {"steps": ctx.settings.vaa_steps, "repeats": ctx.settings.vaa_repeats}
    started = time.perf_counter()
    ctx.phase("measuring_before", vaa["steps"] * vaa["repeats"])
    before = _vaa_estimates(network, inputs, ctx, stop, vaa, seed)
    config = WarmupConfig.model_validate(request["warmup"])
    ctx.phase("warming_up", config.steps)
    try:
        result = warmup(network, inputs, config, seed=seed, progress=ctx.progress, stop=stop)
    except WarmupDiverged as exc:
        raise JobFailed(str(exc), "warmup_diverged", "warmup.learning_rate") from exc
    ctx.phase("measuring_after", vaa["steps"] * vaa["repeats"])
    after = _vaa_estimates(network, inputs, ctx, stop, vaa, seed)
    metrics = {
        "vaa_before": statistics.fmean(before),
        "vaa_after": statistics.fmean(after),
        "vaa_star_history": result.vaa_star_history,
        "vaa_before_estimates": before,
        "vaa_after_estimates": after,
        "vaa_steps": vaa["steps"],
        "vaa_samples": VAA_SAMPLES,
        "vaa_repeats": vaa["repeats"],
        "job_seconds": time.perf_counter() - started,
    }
    judged = judge(metrics["vaa_before"], metrics["vaa_after"], VAA_SAMPLES)
    outcome = judged.as_dict() if judged else None
    stop()
    ctx.phase("exporting", 1)
    name = request["name"]
    with ctx.sessions() as session:
        Registry(session, ctx.blobs).publish_version(
            name,
            spec,
            weights_bytes(network),
            warmup=request["warmup"],
            data=request["data"],
            seed=seed,
            device=str(device),
            metrics=metrics,
            seconds=result.seconds,
            libraries=library_versions(),
            base=VersionRef(base["model"], base["version"]) if base else None,
            owner=request.get("owner"),  # absent from jobs queued before auth existed
            in_transaction=lambda row: ctx.succeed(session, {"model": name, "version": row.number, "outcome": outcome}),
        )


def run_measure(request: Request, ctx: JobContext, stop: _Stop) -> None:
    """Exact VAA of a stored version, `repeats` independent estimates."""
    device = _device(request["device"])
    seed, repeats = request["seed"], request["repeats"]
    with ctx.sessions() as session:
        registry = Registry(session, ctx.blobs)
        stored = registry.resolve(request["model"], request["version"])
        network = network_from_weights(registry.read(stored.sha256)).to(device)
        inputs = _inputs(request["data"], seed, registry)
    started = time.perf_counter()
    vaa = {"steps": ctx.settings.vaa_steps, "repeats": repeats}
    ctx.phase("measuring", vaa["steps"] * repeats)
    estimates = _vaa_estimates(network, inputs, ctx, stop, vaa, seed)
    result = {
        "model": request["model"],
        "version": request["version"],
        "vaa": statistics.fmean(estimates),
        "vaa_estimates": estimates,
        "vaa_steps": ctx.settings.vaa_steps,
        "vaa_samples": VAA_SAMPLES,
        "data": request["data"],
        "device": str(device),
        "seconds": time.perf_counter() - started,
    }
    with ctx.sessions() as session:
        ctx.succeed(session, result)
        session.commit()


def run_export(request: Request, ctx: JobContext, stop: _Stop) -> None:
    """Produce and store the ONNX files of a version (each checked for parity with PyTorch)."""
    names: list[str] = request["files"]
    with ctx.sessions() as session:
        registry = Registry(session, ctx.blobs)
        stored = registry.resolve(request["model"], request["version"])
        ctx.phase("exporting", len(names))
        files = []
        for done, name in enumerate(names, start=1):
            stop()
            row = registry.get_or_create_file(stored, name)
            files.append({"name": row.name, "sha256": row.sha256, "size": row.size})
            ctx.progress(done, len(names))
        ctx.succeed(session, {"model": request["model"], "version": request["version"], "files": files})
        session.commit()


def run_compare(request: Request, ctx: JobContext, stop: _Stop) -> None:
    """Train the version's weights and a cold initialisation alike (models.comparison) and store
    both learning curves on the version: the comparison and the job's success commit together."""
    device = _device("auto")
    with ctx.sessions() as session:
        stored = Registry(session, ctx.blobs).resolve(request["model"], request["version"])
        spec, weights = RNNSpec.model_validate(stored.spec), Registry(session, ctx.blobs).read(stored.sha256)
    config = ComparisonConfig.model_validate({k: request[k] for k in ComparisonConfig.model_fields})
    make = {
        "warmed": lambda: network_from_weights(weights, spec).to(device),
        "cold": lambda: build_network(spec, seed=request["cold_seed"]).to(device),
    }
    arm_now = None

    def progress(arm: str, done: int, total: int) -> None:
        nonlocal arm_now
        if arm != arm_now:
            arm_now = arm
            ctx.phase(f"training_{arm}", total)
        ctx.progress(done, total)
        stop()

    result = compare(make, request["task"], config, progress)
    summary = {"chance_loss": result["chance_loss"], **result["summary"]}
    keep = ("task", "seeds", "steps", "evaluations", "num_train", "num_test", "cold_seed", "cold_init")
    with ctx.sessions() as session:
        registry = Registry(session, ctx.blobs)
        registry.add_comparison(
            registry.resolve(request["model"], request["version"]),
            config={k: request[k] for k in keep} | {"device": str(device)},
            result=result,
            job_id=ctx.job_id,
            in_transaction=lambda row: ctx.succeed(
                session,
                {"model": request["model"], "version": request["version"], "comparison": row.id, "summary": summary},
            ),
        )


RUNNERS: dict[str, Callable[[Request, JobContext, _Stop], None]] = {
    "warmup": run_warmup,
    "measure": run_measure,
    "export": run_export,
    "compare": run_compare,
}


def run(kind: str, request: Request, ctx: JobContext) -> None:
    """Run one job to success; raises JobStopped, JobFailed (job_time_limit past the wall-time
    limit), or whatever went wrong."""
    RUNNERS[kind](request, ctx, _Stop(ctx))
