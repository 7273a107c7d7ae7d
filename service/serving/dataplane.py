"""The inference data plane: ONNX Runtime sessions, tensor checks and streaming sequences.

The OIP routes only translate HTTP (or gRPC); this module decides what a request means. It
owns a bounded LRU cache of ONNX Runtime sessions (one per model version, each with its
`DynamicBatcher`), turns request tensors into arrays with a 400 that names the exact fault,
and carries the recurrent state of open sequences (Triton's sequence extension) from one
request to the next through a `SequenceStore`.

The ONNX contract (models.onnx): inputs `input` FP32 [batch, time, input_size]
and `state` FP32 [num_layers, batch, state_size] (optional, zero default);
outputs `output` FP32 [batch, time, output_size] and `state_out`, served as `state`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from anyio.to_thread import run_sync

from warmzoo.models.spec import RNNSpec
from warmzoo.service.core.config import Batching
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.core.gc_pauses import freeze_long_lived
from warmzoo.service.security.budgets import check_inference
from warmzoo.service.serving.batching import STATE_AXIS, DynamicBatcher, Outputs, StatisticsRecorder
from warmzoo.service.serving.oip import (
    InferenceRequest,
    InferenceResult,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    Parameters,
    RawInputs,
    RepositoryIndexEntry,
    RequestInput,
)
from warmzoo.service.serving.sequences import (
    MemorySequenceStore,
    SequenceState,
    SequenceStore,
    SequenceStoreFull,
    SequenceStoreUnavailable,
)

log = logging.getLogger(__name__)

EXTENSIONS = (
    "sequence",
    "sequence(string_id)",
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "statistics",
)
"""OIP extensions this data plane speaks, for the server metadata."""

PLATFORM = "onnxruntime_onnx"
# Work (batch x time x multiply-adds per step) of a request that runs on the event loop instead
# of in a thread: about 0.1 ms of ONNX Runtime, as long as the hand-off to a thread takes when
# the server is idle, and far less than the queue for one when it is busy.
QUICK_MULTIPLY_ADDS = 2_000_000
# The same bound for a request that is the only one in flight: about 4 ms of ONNX Runtime on one
# core. Handing it to a thread and back costs two thread wake-ups, 0.3-0.4 ms in the real server
# (gru 2 x 256, T = 100: 3.45-3.85 ms in the app against 3.08 inline), and nothing else needs
# the loop meanwhile; a request that arrives during the run waits for it, at most this long.
ALONE_MULTIPLY_ADDS = 100_000_000
INPUTS = ("input", "state")
"""The graph inputs a request may set: the sequence, and optionally the initial state."""
SERVED_NAMES = {"state_out": "state"}
"""ONNX output name -> OIP tensor name, where they differ: the final state is served as `state`."""


@dataclass(frozen=True)
class ServedModel:
    """A registry version as the data plane needs it: what to check requests against and what to run."""

    name: str
    version: int
    spec: RNNSpec
    onnx_path: Path


Resolver = Callable[[str, str | None], ServedModel]
"""(name, version or None for the `latest` alias) -> the served model; raises WarmzooError (not found) when there is none."""
BatchingOf = Callable[[str, int], Batching]
"""(name, version) -> the version's batching settings."""


@dataclass(frozen=True)
class _Loaded:
    """An ONNX Runtime session with its tensor metadata read once from the graph."""

    served: ServedModel
    session: ort.InferenceSession
    inputs: dict[str, MetadataTensor]  # OIP name -> metadata, of the INPUTS the graph has
    outputs: dict[str, tuple[str, MetadataTensor]]  # OIP name -> (ONNX name, metadata), graph order
    batcher: DynamicBatcher


@dataclass(frozen=True)
class _Sequence:
    """The request-level sequence parameters; `id` None means a request outside any sequence."""

    id: int | str | None
    start: bool
    end: bool


class InferenceService:
    """Serves registry versions over ONNX Runtime with OIP semantics, streaming sequences included."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        session_cache_size: int = 16,
        intra_op_threads: int = 1,
        sequence_store: SequenceStore | None = None,
        max_batch_time: int = 100_000,
        max_inference_bytes: int = 64 * 2**20,
        batching: BatchingOf = lambda name, version: Batching(),
    ) -> None:
        """`intra_op_threads` 0 lets ONNX Runtime choose; `max_batch_time` bounds batch x time of one
        request and `max_inference_bytes` the bytes of its tensors (security.budgets.inference_bytes)."""
        if session_cache_size < 1 or max_batch_time < 1 or max_inference_bytes < 1:
            raise ValueError("session_cache_size, max_batch_time and max_inference_bytes must be >= 1")
        self._resolve = resolve
        self._cache_size = session_cache_size
        self._sessions: OrderedDict[tuple[str, int], _Loaded] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = intra_op_threads
        self._options.log_severity_level = 3  # the overridable `state` initializer is by design, not a warning
        self.sequences = sequence_store if sequence_store is not None else MemorySequenceStore()
        self.max_batch_time = max_batch_time
        self.max_inference_bytes = max_inference_bytes
        # Requests of one sequence must not interleave (each reads the state the previous wrote):
        # striped locks serialise them within this process without per-sequence bookkeeping.
        self._sequence_locks = [threading.Lock() for _ in range(64)]
        self._in_flight = 0  # requests inside infer_async, on any protocol
        self._batching = batching
        self._statistics: dict[tuple[str, int], StatisticsRecorder] = {}  # outlive evicted sessions

    # -- metadata and health -------------------------------------------------------------

    def metadata(self, name: str, version: str | None) -> ModelMetadata:
        served = self._resolve(name, version)
        loaded = self._load(served)
        return ModelMetadata(
            name=served.name,
            versions=[str(served.version)],
            platform=PLATFORM,
            inputs=list(loaded.inputs.values()),
            outputs=[meta for _, meta in loaded.outputs.values()],
        )

    def ready(self, name: str, version: str | None) -> ModelReady:
        """Ready once the version's session is loaded; otherwise the 404 or 503 says why not."""
        served = self._resolve(name, version)
        self._load(served)
        return ModelReady(name=served.name, ready=True)

    def close(self) -> None:
        """Stop the batchers' threads once their queues are empty (the server is stopping)."""
        with self._sessions_lock:
            for loaded in self._sessions.values():
                loaded.batcher.close()

    def cached_sessions(self) -> list[tuple[str, int]]:
        """(name, version) of the sessions in memory, least recently used first."""
        with self._sessions_lock:
            return list(self._sessions)

    def config(self, name: str, version: str | None) -> dict[str, Any]:
        """Triton's JSON model configuration of a version. Dims leave out the batch axis, which is
        the first of `input` and `output` but the second of `state` (the parameter
        `state_batch_axis` says so); every model streams, with the server keeping `state` between
        the steps of a sequence (Triton's implicit state)."""
        served = self._resolve(name, version)
        loaded = self._load(served)
        settings = loaded.batcher.settings
        state_dims = [served.spec.num_layers, served.spec.state_size]

        def tensor(meta: MetadataTensor, optional: bool = False) -> dict[str, Any]:
            dims = [d for axis, d in enumerate(meta.shape) if axis != (STATE_AXIS if meta.name == "state" else 0)]
            optional_flag = {"optional": True} if optional else {}
            return {"name": meta.name, "data_type": "TYPE_FP32", "dims": dims, **optional_flag}

        config: dict[str, Any] = {
            "name": served.name,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "version_policy": {"specific": {"versions": [served.version]}},
            "max_batch_size": settings.max_batch_size,
            "input": [tensor(meta, optional=meta.name == "state") for meta in loaded.inputs.values()],
            "output": [tensor(meta) for _, meta in loaded.outputs.values()],
            "instance_group": [{"name": served.name, "kind": "KIND_CPU", "count": settings.instances}],
            "sequence_batching": {
                "max_sequence_idle_microseconds": int(self.sequences.idle_timeout_s * 1_000_000),
                "state": [
                    {
                        "input_name": "state",
                        "output_name": "state",
                        "data_type": "TYPE_FP32",
                        "dims": state_dims,
                        "initial_state": [{"name": "zeros", "data_type": "TYPE_FP32", "dims": state_dims, "zero_data": True}],
                    }
                ],
            },
            "parameters": {"state_batch_axis": {"string_value": str(STATE_AXIS)}},
        }
        if settings.enabled:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": settings.max_queue_delay_us}
        return config

    def repository_index(self, versions: Iterable[tuple[str, int]], *, ready_only: bool) -> list[RepositoryIndexEntry]:
        """Triton's repository index of these versions: READY with its session loaded, else unloaded
        (it loads on its first request)."""
        loaded = set(self.cached_sessions())
        entries = [
            RepositoryIndexEntry(name=name, version=str(number), state="READY", reason="")
            if (name, number) in loaded
            else RepositoryIndexEntry(name=name, version=str(number), state="UNAVAILABLE", reason="unloaded")
            for name, number in versions
        ]
        return [entry for entry in entries if entry.state == "READY"] if ready_only else entries

    def statistics(self, name: str | None, version: str | None) -> list[dict[str, Any]]:
        """Triton's `model_stats` of every version this process served (`name` None), of one
        model's, or of one version (zeros before its first request)."""
        if name is None:
            with self._sessions_lock:
                recorded = sorted(self._statistics.items())
            return [stats.report(*key) for key, stats in recorded]
        if version is None:
            self._resolve(name, None)  # the model exists, or 404
            with self._sessions_lock:
                recorded = sorted((key, stats) for key, stats in self._statistics.items() if key[0] == name)
            return [stats.report(*key) for key, stats in recorded]
        served = self._resolve(name, version)
        return [self._stats(served).report(served.name, served.version)]

    def _stats(self, served: ServedModel) -> StatisticsRecorder:
        with self._sessions_lock:
            return self._statistics.setdefault((served.name, served.version), StatisticsRecorder())

    @contextmanager
    def _counted(self, served: ServedModel, started_ns: int) -> Iterator[None]:
        """Count a request of this version as a success or a failure, with its time since `started_ns`."""
        stats = self._stats(served)
        try:
            yield
        except BaseException:
            stats.request(False, time.perf_counter_ns() - started_ns)
            raise
        stats.request(True, time.perf_counter_ns() - started_ns)

    # -- inference --------------------------------------------------------------------------

    async def infer_async(
        self, name: str, version: str | None, request: InferenceRequest, raw: RawInputs | None = None, owner: str = ""
    ) -> InferenceResult:
        """The one way in for every protocol. A request the event loop can check (`_checks_on_loop`)
        is checked there and, with batching on, waits there for its batch; without batching it runs
        there when `runs_inline` says it is quick. Any other runs in a thread. Under load a request
        waiting for a thread queued behind the database routes' work (32 clients, 2 API processes:
        infer p99 107 ms in a thread, 82 ms on the loop)."""
        self._in_flight += 1
        try:
            loaded = self._checks_on_loop(name, version, request)
            if loaded is not None and loaded.batcher.settings.enabled:
                started = time.perf_counter_ns()
                with self._counted(loaded.served, started):
                    x, state, wanted = self._checked(loaded, request, raw or {}, _Sequence(None, False, False), None)
                    outputs = await asyncio.wrap_future(loaded.batcher.submit(x, state))
                    return _result(loaded.served, request, outputs, wanted)
            if self.runs_inline(name, version, request, alone=self._in_flight == 1):
                return self.infer(name, version, request, raw, owner)
            return await run_sync(self.infer, name, version, request, raw, owner)
        finally:
            self._in_flight -= 1

    def _checks_on_loop(self, name: str, version: str | None, request: InferenceRequest) -> _Loaded | None:
        """The loaded session of a request that needs no I/O before its run: a version named by
        number whose session is loaded (no database, no export), outside a sequence (its store may
        be Redis)."""
        in_sequence = (request.parameters or {}).get("sequence_id", 0) not in (0, "")
        if version is None or not (version.isascii() and version.isdigit()) or in_sequence:
            return None
        with self._sessions_lock:
            return self._sessions.get((name, int(version)))

    def runs_inline(self, name: str, version: str | None, request: InferenceRequest, *, alone: bool) -> bool:
        """Whether `infer(name, version, request)` may run on the event loop: one the loop can
        check (`_checks_on_loop`), of at most QUICK_MULTIPLY_ADDS of work, or ALONE_MULTIPLY_ADDS
        when the request is `alone` in flight. The caller runs the rest in a thread."""
        loaded = self._checks_on_loop(name, version, request)
        if loaded is None or len(request.inputs) != 1 or len(request.inputs[0].shape) != 3:
            return False
        shape = request.inputs[0].shape
        work = multiply_adds(loaded.served.spec, shape[0], shape[1])
        return 0 <= work <= (ALONE_MULTIPLY_ADDS if alone else QUICK_MULTIPLY_ADDS)

    def infer(
        self, name: str, version: str | None, request: InferenceRequest, raw: RawInputs | None = None, owner: str = ""
    ) -> InferenceResult:
        """Run one request; inside a sequence, start from and leave behind the sequence's state.
        `raw` holds the inputs sent as bytes (binary extension, gRPC raw contents) by input index.
        A sequence belongs to the `owner` who started it (an API key, or a client address): to
        anyone else it does not exist, and each owner's open sequences are bounded."""
        started = time.perf_counter_ns()
        sequence = _sequence_parameters(request.parameters)
        if sequence.id is None:
            served = self._resolve(name, version)
            with self._counted(served, started):
                return _result(served, request, *self._compute(served, request, raw or {}, sequence, None))

        key = json.dumps([owner, name, sequence.id])  # per owner and model, and 42 and "42" stay distinct
        try:
            return self._infer_in_sequence(name, version, request, raw or {}, sequence, key, owner, started)
        except SequenceStoreUnavailable as exc:
            raise WarmzooError(
                Reason.UNAVAILABLE,
                f"the streaming-sequence store is unreachable ({exc}); retry shortly, or send the state "
                "yourself as the `state` input outside a sequence",
                field="parameters.sequence_id",
                code="sequence_store_unavailable",
            ) from None

    def _infer_in_sequence(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        raw: RawInputs,
        sequence: _Sequence,
        key: str,
        owner: str,
        started_ns: int,
    ) -> InferenceResult:
        with self._sequence_locks[hash(key) % len(self._sequence_locks)]:
            carried = None if sequence.start else self.sequences.get(key)
            if not sequence.start and carried is None:
                raise WarmzooError(
                    Reason.BAD_REQUEST,
                    f"no open sequence {sequence.id!r} for model {name!r}: it was never started, has ended, "
                    f"or expired after {self.sequences.idle_timeout_s:g} s idle; "
                    "send its first request with parameters.sequence_start = true",
                    field="parameters.sequence_id",
                    code="unknown_sequence",
                )
            if carried is not None and version is None:
                version = str(carried.version)  # a sequence stays on the version it started on
            served = self._resolve(name, version)
            with self._counted(served, started_ns):
                outputs, wanted = self._compute(served, request, raw, sequence, carried)
                if sequence.end:
                    self.sequences.delete(key, owner)
                else:
                    self._keep(key, SequenceState(served.version, outputs["state"]), owner)
                return _result(served, request, outputs, wanted)

    def _compute(
        self,
        served: ServedModel,
        request: InferenceRequest,
        raw: RawInputs,
        sequence: _Sequence,
        carried: SequenceState | None,
    ) -> tuple[Outputs, list[str]]:
        """Every graph output by OIP name, and the names to return; all checks come before the run,
        which is batched with concurrent requests when the version's batching is on."""
        if carried is not None and served.version != carried.version:
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"sequence {sequence.id!r} is pinned to version {carried.version} of model {served.name!r} "
                f"but this request is for version {served.version}; send it without a version or to "
                f"/v2/models/{served.name}/versions/{carried.version}/infer",
                field="parameters.sequence_id",
                code="sequence_mismatch",
            )
        loaded = self._load(served)
        x, state, wanted = self._checked(loaded, request, raw, sequence, carried)
        if loaded.batcher.settings.enabled:
            return loaded.batcher.submit(x, state).result(), wanted
        return loaded.batcher.run_now(x, state), wanted

    def _checked(
        self,
        loaded: _Loaded,
        request: InferenceRequest,
        raw: RawInputs,
        sequence: _Sequence,
        carried: SequenceState | None,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The run's `input` and `state` (the sent, carried or zero state), and the outputs to return."""
        served = loaded.served
        x, state = _inputs(loaded, served, request, raw, self.max_batch_time, self.max_inference_bytes)
        wanted = _requested_outputs(loaded, served, request)
        if carried is not None:
            state = _carried_state(sequence.id, carried, request, x, state)
        elif state is None:
            state = np.zeros((served.spec.num_layers, x.shape[0], served.spec.state_size), dtype=np.float32)
        return x, state, wanted

    def _keep(self, key: str, value: SequenceState, owner: str) -> None:
        try:
            self.sequences.put(key, value, owner)
        except SequenceStoreFull as full:
            limit = full.limit
            reason, code, held, setting = {
                "server": (Reason.UNAVAILABLE, "too_many_sequences", f"the server holds its limit of {limit}", "max_sequences"),
                "owner": (Reason.TOO_MANY, "too_many_sequences", f"you hold your limit of {limit}", "max_sequences_per_owner"),
                "owner_bytes": (
                    Reason.TOO_MANY,
                    "sequence_bytes_exceeded",
                    f"this state of {value.state.nbytes} bytes would take you past {limit} bytes of state in",
                    "max_sequence_bytes_per_owner",
                ),
            }[full.scope]
            idle = self.sequences.idle_timeout_s
            raise WarmzooError(
                reason,
                f"{held} open sequences; end finished ones with parameters.sequence_end = true, or retry once idle "
                f"ones expire after {idle:g} s (settings WARMZOO_{setting.upper()}, WARMZOO_SEQUENCE_IDLE_TIMEOUT_S)",
                field="parameters.sequence_start",
                code=code,
                retry_after_s=None if full.scope == "server" else max(1, round(idle)),
            ) from None

    # -- sessions --------------------------------------------------------------------------

    def _load(self, served: ServedModel) -> _Loaded:
        """The version's session from the LRU cache, created on a miss (outside the lock: loads may be slow)."""
        key = (served.name, served.version)
        with self._sessions_lock:
            loaded = self._sessions.get(key)
            if loaded is not None:
                self._sessions.move_to_end(key)
                return loaded
        loaded = self._open(served)
        with self._sessions_lock:
            loaded = self._sessions.setdefault(key, loaded)  # another thread may have won the race
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._cache_size:
                _, evicted = self._sessions.popitem(last=False)
                evicted.batcher.close()
        freeze_long_lived()  # the session, and the exporter's modules if it just ran, stay loaded
        return loaded

    def _open(self, served: ServedModel) -> _Loaded:
        try:
            session = ort.InferenceSession(str(served.onnx_path), self._options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a missing or corrupt file is the server's fault, not the request's
            log.exception("cannot load %s for model %r version %d", served.onnx_path, served.name, served.version)
            raise WarmzooError(
                Reason.UNAVAILABLE,
                f"model {served.name!r} version {served.version} cannot be loaded by ONNX Runtime "
                f"({type(exc).__name__}); the server log has the details",
                code="model_unavailable",
            ) from exc
        graph_inputs = [*session.get_inputs(), *session.get_overridable_initializers()]
        inputs = {arg.name: _metadata(arg.name, arg.shape) for arg in graph_inputs if arg.name in INPUTS}
        outputs = {
            SERVED_NAMES.get(arg.name, arg.name): (arg.name, _metadata(SERVED_NAMES.get(arg.name, arg.name), arg.shape))
            for arg in session.get_outputs()
        }
        missing = set(INPUTS) - inputs.keys() | {"output", "state"} - outputs.keys()
        if missing:
            raise WarmzooError(
                Reason.UNAVAILABLE,
                f"model {served.name!r} version {served.version} does not follow the ONNX contract: "
                f"it lacks {sorted(missing)}",
                code="model_unavailable",
            )
        onnx_names = [onnx_name for onnx_name, _ in outputs.values()]

        def run(x: np.ndarray, state: np.ndarray) -> Outputs:
            return dict(zip(outputs, session.run(onnx_names, {"input": x, "state": state}), strict=True))

        settings = self._batching(served.name, served.version)
        batcher = DynamicBatcher(run, {"state": STATE_AXIS}, settings, self._stats(served))
        return _Loaded(served, session, inputs, outputs, batcher)


def multiply_adds(spec: RNNSpec, batch: int, steps: int) -> int:
    """The work of running `batch` sequences of `steps` steps, as a bound: four gates' matrix
    products per layer and step (the LSTM's count; the other cells need fewer)."""
    return batch * steps * spec.num_layers * 4 * spec.hidden_size * (spec.hidden_size + spec.input_size)


def _sequence_parameters(parameters: Parameters | None) -> _Sequence:
    """Triton's sequence parameters: 0 or "" is no sequence; start and end need a sequence."""
    parameters = parameters or {}
    flags = {}
    for flag in ("sequence_start", "sequence_end"):
        value = parameters.get(flag, False)
        if not isinstance(value, bool):
            raise WarmzooError(
                Reason.BAD_REQUEST, f"{flag} must be true or false, got {value!r}", field=f"parameters.{flag}", code="invalid_parameter"
            )
        flags[flag] = value
    sequence_id = parameters.get("sequence_id", 0)
    if isinstance(sequence_id, bool | float) or (isinstance(sequence_id, int) and sequence_id < 0):
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"sequence_id must be a non-negative integer or a string, got {sequence_id!r}",
            field="parameters.sequence_id",
            code="invalid_parameter",
        )
    if sequence_id in (0, ""):
        for flag, value in flags.items():
            if value:
                raise WarmzooError(
                    Reason.BAD_REQUEST,
                    f"{flag} needs a sequence: set parameters.sequence_id to a non-zero integer or a non-empty string",
                    field="parameters.sequence_id",
                    code="invalid_parameter",
                )
        return _Sequence(None, False, False)
    return _Sequence(sequence_id, flags["sequence_start"], flags["sequence_end"])


def _inputs(
    loaded: _Loaded,
    served: ServedModel,
    request: InferenceRequest,
    raw: RawInputs,
    max_batch_time: int,
    max_bytes: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked `input` [B, T, I] and, if sent, `state` [L, B, S] of a request."""
    by_name: dict[str, tuple[int, RequestInput]] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in loaded.inputs:
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"unknown input {tensor.name!r}; model {served.name!r} accepts {_names(loaded.inputs)}",
                field=f"inputs[{i}].name",
                code="invalid_input",
            )
        if tensor.name in by_name:
            raise WarmzooError(Reason.BAD_REQUEST, f"input {tensor.name!r} is sent twice", field=f"inputs[{i}].name", code="invalid_input")
        by_name[tensor.name] = (i, tensor)
    if "input" not in by_name:
        raise WarmzooError(
            Reason.BAD_REQUEST, "missing input 'input' FP32 [batch, time, input_size]", field="inputs", code="invalid_input"
        )

    spec = served.spec
    i, tensor = by_name["input"]
    _check_datatype(i, tensor)
    shape = tensor.shape
    if len(shape) != 3 or shape[2] != spec.input_size:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input 'input' has shape {shape}; it must be [batch, time, input_size] = [batch, time, {spec.input_size}]",
            field=f"inputs[{i}].shape",
            code="invalid_input",
        )
    batch, time_steps, _ = shape
    if batch < 1 or time_steps < 1:
        axis, size = ("batch", batch) if batch < 1 else ("time axis", time_steps)
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input 'input' has shape {shape}: its {axis} is {'empty' if size == 0 else 'negative'}; "
            "send at least one sequence of one step",
            field=f"inputs[{i}].shape",
            code="invalid_input",
        )
    if batch * time_steps > max_batch_time:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input 'input' has batch x time = {batch * time_steps} steps; at most {max_batch_time} fit in one "
            "request (setting WARMZOO_MAX_BATCH_TIME): split the time axis into chunks of a sequence "
            "(parameters.sequence_id)",
            field=f"inputs[{i}].shape",
            code="invalid_input",
        )
    check_inference(spec, batch, time_steps, max_bytes, field=f"inputs[{i}].shape")
    x = _array(i, tensor, raw.get(i))

    if "state" not in by_name:
        return x, None
    i, tensor = by_name["state"]
    _check_datatype(i, tensor)
    expected = [spec.num_layers, batch, spec.state_size]
    if tensor.shape != expected:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input 'state' has shape {tensor.shape}; it must be [num_layers, batch, state_size] = {expected}",
            field=f"inputs[{i}].shape",
            code="invalid_input",
        )
    return x, _array(i, tensor, raw.get(i))


def _carried_state(
    sequence_id: int | str | None,
    carried: SequenceState,
    request: InferenceRequest,
    x: np.ndarray,
    state: np.ndarray | None,
) -> np.ndarray:
    """The open sequence's state, after checking this request can continue it."""
    index = {tensor.name: i for i, tensor in enumerate(request.inputs)}
    if x.shape[0] != carried.state.shape[1]:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"sequence {sequence_id!r} started with batch size {carried.state.shape[1]}; this request has "
            f"batch size {x.shape[0]} (a sequence keeps its batch size)",
            field=f"inputs[{index['input']}].shape",
            code="sequence_mismatch",
        )
    if state is not None:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"sequence {sequence_id!r} is open, so the server supplies its state; send input 'state' only on "
            "a sequence's first request or outside a sequence",
            field=f"inputs[{index['state']}].name",
            code="invalid_input",
        )
    return carried.state


def _requested_outputs(loaded: _Loaded, served: ServedModel, request: InferenceRequest) -> list[str]:
    """The outputs to return (all of them by default), checked before any work is done."""
    if request.outputs is None:
        return list(loaded.outputs)
    wanted = [output.name for output in request.outputs]
    for i, name in enumerate(wanted):
        if name not in loaded.outputs:
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"unknown output {name!r}; model {served.name!r} produces {_names(loaded.outputs)}",
                field=f"outputs[{i}].name",
                code="invalid_output",
            )
        if name in wanted[:i]:
            raise WarmzooError(
                Reason.BAD_REQUEST, f"output {name!r} is requested twice", field=f"outputs[{i}].name", code="invalid_output"
            )
    return wanted


def _result(
    served: ServedModel, request: InferenceRequest, outputs: dict[str, np.ndarray], wanted: list[str]
) -> InferenceResult:
    return InferenceResult(served.name, str(served.version), request.id, {name: outputs[name] for name in wanted})


def _check_datatype(i: int, tensor: RequestInput) -> None:
    if tensor.datatype != "FP32":
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input {tensor.name!r} has datatype {tensor.datatype!r}; it must be 'FP32'",
            field=f"inputs[{i}].datatype",
            code="invalid_input",
        )


def _array(i: int, tensor: RequestInput, raw: bytes | None) -> np.ndarray:
    """The tensor's data (JSON `data`, or `raw` little-endian bytes) as a finite FP32 array of its declared shape."""
    field = f"inputs[{i}].data"
    expected = int(np.prod(tensor.shape))
    if raw is not None:
        if len(raw) != 4 * expected:
            raise WarmzooError(
                Reason.BAD_REQUEST,
                f"input {tensor.name!r} has {len(raw)} bytes of binary data but shape {tensor.shape} of FP32 "
                f"needs {4 * expected}",
                field=f"inputs[{i}].parameters.binary_data_size",
                code="invalid_input",
            )
        return _finite(i, tensor, np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(tensor.shape))
    if tensor.data is None:
        raise WarmzooError(Reason.BAD_REQUEST, f"input {tensor.name!r} has no data", field=field, code="invalid_input")
    try:
        values = np.asarray(tensor.data)
    except (ValueError, TypeError, OverflowError):
        values = None
    if values is None or values.dtype.kind not in "iuf":
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input {tensor.name!r} data must be numbers, flat or nested row-major with equal-length rows",
            field=field,
            code="invalid_input",
        )
    if values.size != expected:
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input {tensor.name!r} has {values.size} values in data but shape {tensor.shape} needs {expected}",
            field=field,
            code="invalid_input",
        )
    with np.errstate(over="ignore"):  # values beyond FP32 become inf, refused just below
        return _finite(i, tensor, values.astype(np.float32).reshape(tensor.shape))


def _finite(i: int, tensor: RequestInput, array: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        where = [int(k) for k in np.argwhere(bad)[0]]
        raise WarmzooError(
            Reason.BAD_REQUEST,
            f"input {tensor.name!r} holds {int(bad.sum())} NaN or infinite values (after rounding to FP32), "
            f"the first at index {where}",
            field=f"inputs[{i}].data",
            code="invalid_input",
        )
    return array


def _metadata(name: str, shape: Sequence[int | str | None]) -> MetadataTensor:
    """OIP tensor metadata of an FP32 graph tensor: symbolic or unknown dimensions become -1."""
    return MetadataTensor(name=name, datatype="FP32", shape=[dim if isinstance(dim, int) else -1 for dim in shape])


def _names(tensors: dict[str, object]) -> str:
    return ", ".join(repr(name) for name in tensors)
