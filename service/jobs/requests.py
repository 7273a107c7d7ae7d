"""The request bodies that create jobs (warm-up, measure, export) and their checks.

Everything a job will need is checked here, before the job exists: the server's limits,
that the base version and the data set exist, that the data fits the spec. A bad request
so costs nothing and never leaves a job behind. What is stored on the job is the
normalised request (defaults filled in, aliases resolved to numbers), which is exactly
what the worker runs and what an idempotent retry is compared against.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from warmzoo.models.comparison import ComparisonConfig
from warmzoo.models.device import DeviceName
from warmzoo.models.spec import RNNSpec
from warmzoo.models.tasks import TASK_INPUT_SIZES, TASKS, TaskName, make_task
from warmzoo.models.warmup import WarmupConfig
from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.registry import datasets
from warmzoo.service.registry.registry import Registry, check_name
from warmzoo.service.security.auth import Principal, publisher
from warmzoo.service.security.budgets import check_spec

JobKind = Literal["warmup", "measure", "export", "compare"]
VAA_SAMPLES = 32  # n of the exact VAA (docs/design.md, "VAA")
EXPORTABLE = ("model.onnx", "cell.onnx")

# The phases of each kind of job, in order; a job's progress counts within its current phase.
PHASES: dict[str, tuple[str, ...]] = {
    "warmup": ("measuring_before", "warming_up", "measuring_after", "exporting"),
    "measure": ("measuring",),
    "export": ("exporting",),
    "compare": ("training_warmed", "training_cold"),
}


class DataIn(BaseModel):
    """Warm-up input data: a built-in task (`task`, `seq_length`, `num_samples`, plus that
    task's own integer parameters such as `pad`) or an uploaded data set (`dataset`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"task": "copy_first_input", "seq_length": 100, "num_samples": 512}]},
    )

    task: TaskName | None = Field(None, description="Built-in task generating the sequences.")
    seq_length: int | None = Field(None, ge=1, description="Time steps per sequence (T).")
    num_samples: int | None = Field(None, ge=2, description="Sequences generated (N).")
    dataset: str | None = Field(None, max_length=36, description="Id of an uploaded data set, instead of a task.")


class BaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model name.")
    version: int | str = Field("latest", description="Version number or alias.")


class WarmupIn(BaseModel):
    """`POST /v1/warmups`: warm up a fresh network of `spec`, or the weights of `base`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "gru-copy",
                    "spec": {"cell": "gru", "input_size": 1, "hidden_size": 64, "num_layers": 2},
                    "data": {"task": "copy_first_input", "seq_length": 100, "num_samples": 512},
                    "warmup": {"steps": 100},
                    "seed": 0,
                },
                {
                    "name": "gru-copy",
                    "base": {"model": "gru-copy", "version": "latest"},
                    "data": {"task": "copy_first_input", "seq_length": 300, "num_samples": 512},
                    "warmup": {"steps": 50, "learning_rate": 0.005},
                    "device": "cpu",
                },
            ]
        },
    )

    name: str | None = Field(
        None, description="Model to publish to; default: the base's name, else derived from the spec."
    )
    spec: RNNSpec | None = Field(None, description="Network to build; optional with `base` (it must then match).")
    base: BaseIn | None = Field(None, description="Start from these stored weights instead of a fresh initialisation.")
    data: DataIn
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the initialisation, the data and the warm-up.")
    device: DeviceName = "auto"


class MeasureIn(BaseModel):
    """Exact VAA of a stored version (n = 32, S = the server's vaa_steps), `repeats` estimates."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"repeats": 5, "seed": 0},
                {
                    "data": {"task": "copy_first_input", "seq_length": 300, "num_samples": 512},
                    "repeats": 3,
                    "device": "cpu",
                },
            ]
        },
    )

    data: DataIn | None = Field(None, description="Relevant inputs; default: the version's warm-up data.")
    repeats: int = Field(5, ge=1, le=100, description="Independent estimates.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: DeviceName = "auto"


class ExportIn(BaseModel):
    """Produce (and store) the ONNX files of a version ahead of their first download."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"files": ["model.onnx", "cell.onnx"]}]})

    files: list[Literal["model.onnx", "cell.onnx"]] = Field(default=list(EXPORTABLE), min_length=1)


@dataclass(frozen=True)
class NewJob:
    """A checked request, ready to be queued."""

    kind: JobKind
    request: dict[str, Any]
    total: int  # units of progress: warm-up steps, VAA estimates or files


def _limit(value: int, maximum: int, field: str, setting: str) -> None:
    if value > maximum:
        raise WarmzooError(
            Reason.INVALID,
            f"{field} is {value}; this server accepts at most {maximum} (setting WARMZOO_{setting.upper()})",
            field=field,
            code="limit_exceeded",
        )


def _task_params(task: str) -> set[str]:
    """The task generator's own keyword parameters (beyond seq_length, num_samples, generator)."""
    return set(inspect.signature(TASKS[task]).parameters) - {"seq_length", "num_samples", "generator"}


def check_data(
    data: DataIn, spec: RNNSpec, settings: Settings, registry: Registry, field: str = "data"
) -> dict[str, Any]:
    """The normalised data section; its sequences must have spec.input_size features."""
    params = dict(data.model_extra or {})
    if data.dataset is not None:
        given = [name for name in ("task", "seq_length", "num_samples") if getattr(data, name) is not None] + list(
            params
        )
        if given:
            culprit = f"{field}.{given[0]}"
            raise WarmzooError(
                Reason.INVALID, f"{culprit} cannot be combined with {field}.dataset: give a task or a data set", field=culprit
            )
        row = datasets.get(registry.session, data.dataset, field=f"{field}.dataset")
        if row.shape[2] != spec.input_size:
            raise WarmzooError(
                Reason.INVALID,
                f"spec.input_size is {spec.input_size} but data set {row.id} has {row.shape[2]} features per step",
                field="spec.input_size",
            )
        return {"dataset": row.id, "sha256": row.sha256, "shape": row.shape}
    for name in ("task", "seq_length", "num_samples"):
        if getattr(data, name) is None:
            raise WarmzooError(
                Reason.INVALID,
                f"{field}.{name} is required: give {field}.task, {field}.seq_length and {field}.num_samples,"
                f" or {field}.dataset (an uploaded data set)",
                field=f"{field}.{name}",
            )
    task, seq_length, num_samples = str(data.task), int(data.seq_length or 0), int(data.num_samples or 0)
    _limit(seq_length, settings.max_seq_length, f"{field}.seq_length", "max_seq_length")
    _limit(num_samples, settings.max_num_samples, f"{field}.num_samples", "max_num_samples")
    allowed = _task_params(task)
    for name, value in params.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            message = f"{field}.{name}: task {task} has no parameter {name!r} (its parameters: {known})"
            raise WarmzooError(Reason.INVALID, message, field=f"{field}.{name}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise WarmzooError(
                Reason.INVALID, f"{field}.{name} must be a non-negative integer, got {value!r}", field=f"{field}.{name}"
            )
    if "input_size" in allowed:
        params.setdefault("input_size", spec.input_size)
    features = TASK_INPUT_SIZES[task] or params["input_size"]
    if features != spec.input_size:
        raise WarmzooError(
            Reason.INVALID,
            f"spec.input_size is {spec.input_size} but task {task} has {features} feature(s) per step",
            field="spec.input_size",
        )
    try:  # two sequences: cheap, and the task itself says what it needs (e.g. a long enough seq_length)
        make_task(task, seq_length, 2, **params)
    except ValueError as exc:
        raise WarmzooError(Reason.INVALID, f"{field}: {exc}", field=field) from exc
    return {"task": task, "seq_length": seq_length, "num_samples": num_samples, **params}


def _default_name(spec: RNNSpec, data: dict[str, Any]) -> str:
    double = "-double" if spec.double else ""
    return f"{spec.cell}{double}-h{spec.hidden_size}-l{spec.num_layers}-{data.get('task', 'dataset')}"


def check_warmup(body: WarmupIn, settings: Settings, registry: Registry, vaa_repeats: int | None = None) -> NewJob:
    """`vaa_repeats`: exact-VAA estimates before and after (default: the server's vaa_repeats);
    the starter catalogue takes one, to be browsable within a minute (its versions say so)."""
    base = None
    spec = body.spec
    if body.base is not None:
        row = registry.resolve(body.base.model, body.base.version, ("base.model", "base.version"))
        base_spec = RNNSpec.model_validate(row.spec)
        if spec is not None and spec != base_spec:
            raise WarmzooError(
                Reason.INVALID,
                f"spec differs from the spec of base {row.model.name} v{row.number} ({base_spec.model_dump_json()});"
                " omit spec to warm up the base as it is",
                field="spec",
                code="spec_mismatch",
            )
        spec, base = base_spec, {"model": row.model.name, "version": row.number}
    if spec is None:
        raise WarmzooError(Reason.INVALID, "spec is required (or give base to start from stored weights)", field="spec")
    check_spec(spec, settings)
    _limit(body.warmup.steps, settings.max_warmup_steps, "warmup.steps", "max_warmup_steps")
    data = check_data(body.data, spec, settings, registry)
    name = check_name(body.name) if body.name is not None else base["model"] if base else _default_name(spec, data)
    request = {
        "name": name,
        "spec": spec.model_dump(mode="json"),
        "base": base,
        "data": data,
        "warmup": body.warmup.model_dump(mode="json"),
        "seed": body.seed,
        "device": body.device,
        "vaa": {"steps": settings.vaa_steps, "repeats": vaa_repeats or settings.vaa_repeats},
    }
    return NewJob("warmup", request, body.warmup.steps)


def check_measure(name: str, version: str, body: MeasureIn, settings: Settings, registry: Registry) -> NewJob:
    row = registry.resolve(name, version)
    if body.data is not None:
        data = check_data(body.data, RNNSpec.model_validate(row.spec), settings, registry)
    elif row.data is not None:
        data = row.data
    else:
        raise WarmzooError(
            Reason.INVALID,
            f"{name} v{row.number} records no warm-up data (uploaded weights): give data to measure on",
            field="data",
        )
    request = {
        "model": row.model.name,
        "version": row.number,
        "data": data,
        "repeats": body.repeats,
        "seed": body.seed,
        "device": body.device,
    }
    return NewJob("measure", request, body.repeats)


def check_export(name: str, version: str, body: ExportIn, registry: Registry) -> NewJob:
    row = registry.resolve(name, version)
    files = list(dict.fromkeys(body.files))
    return NewJob("export", {"model": row.model.name, "version": row.number, "files": files}, len(files))


def check_compare(name: str, version: str, body: ComparisonConfig, registry: Registry) -> NewJob:
    """Train the version and a cold initialisation of its spec on its task: the task must have
    targets and the readout must fit them. The cold arm starts from the very initialisation the
    version was warmed up from when there is one (a fresh warm-up records its seed)."""
    row = registry.resolve(name, version)
    data = row.data or {}
    task = data.get("task")
    if task is None or task == "gaussian":
        what = "an uploaded data set" if "dataset" in data else "no task" if task is None else "task gaussian"
        raise WarmzooError(
            Reason.INVALID,
            f"{row.model.name} v{row.number} was warmed up on {what}, which has no targets to train on;"
            " compare works on versions warmed up on copy_first_input, denoising or digits",
            field="version",
            code="no_task_targets",
        )
    spec = RNNSpec.model_validate(row.spec)
    params = {k: v for k, v in data.items() if k not in ("task", "seq_length", "num_samples")}
    outputs = make_task(task, data["seq_length"], 2, **params).output_size
    if outputs != spec.output_size:
        raise WarmzooError(
            Reason.INVALID,
            f"{row.model.name} v{row.number} has {spec.output_size} output(s) but task {task} needs {outputs}",
            field="version",
            code="spec_mismatch",
        )
    fresh = row.base is None and row.warmup is not None and row.seed is not None
    cold_seed = row.seed if fresh else body.seeds[0]
    cold_init = (
        f"the initialisation they were warmed up from (seed {cold_seed})"
        if fresh
        else f"a fresh initialisation of the same spec (seed {cold_seed})"
    )
    request = {
        "model": row.model.name,
        "version": row.number,
        "task": {"task": task, "seq_length": data["seq_length"], **params},
        **body.model_dump(mode="json"),
        "cold_seed": cold_seed,
        "cold_init": cold_init,
    }
    return NewJob("compare", request, body.steps * len(body.seeds))


def owned_warmup(principal: Principal, session: Session, new: NewJob) -> NewJob:
    """The warm-up job with whom its version will be published as (checked now, and again by
    the registry at publish time, when another owner may have taken the name meanwhile)."""
    return replace(new, request={**new.request, "owner": publisher(principal, session, new.request["name"])})
