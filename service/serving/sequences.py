"""Where open streaming sequences keep their recurrent state between requests.

A sequence (Triton's sequence extension) is a run of inference requests that
continue one another: the final state of one request is the initial state of the
next. The data plane reads and writes that state through `SequenceStore`, so the
embedded server can keep it in memory and API replicas can share it in Redis.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from warmzoo.service.core.config import Settings


@dataclass(frozen=True)
class SequenceState:
    """What a sequence carries between requests; the batch size is `state.shape[1]`."""

    version: int  # the model version the sequence started on, and stays on
    state: np.ndarray  # FP32 [num_layers, batch, state_size], never mutated in place


class SequenceStoreFull(Exception):
    """A new sequence cannot start because the store already holds `limit` open ones."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} sequences are open")
        self.limit = limit


class SequenceStoreUnavailable(RuntimeError):
    """The shared store cannot be reached: a passing outage, not the request's fault."""


@contextmanager
def _reachable() -> Iterator[None]:
    from redis.exceptions import ConnectionError, TimeoutError

    try:
        yield
    except (ConnectionError, TimeoutError) as exc:
        raise SequenceStoreUnavailable(str(exc)) from exc


def _check_limits(idle_timeout_s: float, max_sequences: int) -> None:
    if idle_timeout_s <= 0 or max_sequences < 1:
        raise ValueError("idle_timeout_s must be > 0 and max_sequences >= 1")


class SequenceStore(Protocol):
    """Open sequences by key; an entry expires `idle_timeout_s` after its last `put`."""

    idle_timeout_s: float

    def get(self, key: str) -> SequenceState | None:
        """The sequence's state, or None if it was never started, was deleted or expired."""
        ...

    def put(self, key: str, value: SequenceState) -> None:
        """Store (or replace) a sequence's state and restart its idle timer.

        Raises SequenceStoreFull when `key` is not open and no more sequences fit.
        """
        ...

    def delete(self, key: str) -> None:
        """Forget a sequence; deleting an unknown key is not an error."""
        ...


class MemorySequenceStore:
    """A thread-safe in-process `SequenceStore` with an idle timeout and a bound on open sequences.

    Entries are kept in order of last `put`, so the expired ones are always at the
    front and are swept in amortised O(1) on every write.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 300.0,
        max_sequences: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_limits(idle_timeout_s, max_sequences)
        self.idle_timeout_s = idle_timeout_s
        self.max_sequences = max_sequences
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, SequenceState]] = OrderedDict()  # key -> (deadline, value)

    def get(self, key: str) -> SequenceState | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: str, value: SequenceState) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if key not in self._entries and len(self._entries) >= self.max_sequences:
                raise SequenceStoreFull(self.max_sequences)
            self._entries[key] = (now + self.idle_timeout_s, value)
            self._entries.move_to_end(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        """Open sequences, not counting those that expired since the last write."""
        with self._lock:
            self._sweep(self._clock())
            return len(self._entries)

    def _sweep(self, now: float) -> None:
        while self._entries:
            key, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[key]


# --- Redis -------------------------------------------------------------------------------

_MAGIC = b"WZSQ"
_FORMAT = 1
_HEADER = struct.Struct("<4sBqI")  # magic, format, model version, ndim; then ndim uint32 dims, then <f4 data
_DIM = struct.Struct("<I")


def encode_state(value: SequenceState) -> bytes:
    """A SequenceState as bytes, without pickle: a fixed header, the shape, then raw little-endian FP32."""
    state = np.ascontiguousarray(value.state, dtype="<f4")
    dims = b"".join(_DIM.pack(d) for d in state.shape)
    return _HEADER.pack(_MAGIC, _FORMAT, value.version, state.ndim) + dims + state.tobytes()


def decode_state(data: bytes) -> SequenceState:
    """The inverse of `encode_state`; anything malformed raises ValueError (never executes code)."""
    if len(data) < _HEADER.size:
        raise ValueError("sequence state record is truncated")
    magic, fmt, version, ndim = _HEADER.unpack_from(data)
    if magic != _MAGIC or fmt != _FORMAT or ndim > 8:
        raise ValueError("not a warmzoo sequence state record (or an unknown format version)")
    offset = _HEADER.size + ndim * _DIM.size
    if len(data) < offset:
        raise ValueError("sequence state record is truncated")
    shape = tuple(_DIM.unpack_from(data, _HEADER.size + i * _DIM.size)[0] for i in range(ndim))
    if len(data) - offset != 4 * math.prod(shape):
        raise ValueError("sequence state record has the wrong number of bytes for its shape")
    state = np.frombuffer(data, dtype="<f4", offset=offset).reshape(shape).astype(np.float32, copy=False)
    return SequenceState(version, state)


# Atomically: drop expired members of the index, refuse a new key beyond the bound, then store the
# value with the idle timeout as its TTL and record its deadline. Deadlines use the Redis server's
# clock, so replicas with skewed clocks agree on what has expired.
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class RedisSequenceStore:
    """A `SequenceStore` in Redis, shared by every API replica pointed at the same server and prefix.

    Each sequence is one key (`<prefix>s:<key>`) whose TTL is the idle timeout, refreshed on every
    `put`; a sorted set (`<prefix>open`) of keys scored by their deadline enforces `max_sequences`
    across replicas (expired members are swept on every `put`). Values are encoded by
    `encode_state`, never pickled. The keys of one store must share a Redis Cluster hash slot,
    so on a cluster put the prefix in a hash tag, e.g. `{warmzoo:seq}:`.

    Requests of one sequence are serialised only within a process (InferenceService's locks): across
    replicas, clients must send a sequence's requests one at a time, as Triton's sequence contract
    already asks.
    """

    def __init__(
        self,
        client: Any,
        *,
        idle_timeout_s: float = 300.0,
        max_sequences: int = 1024,
        key_prefix: str = "warmzoo:seq:",
    ) -> None:
        _check_limits(idle_timeout_s, max_sequences)
        self.idle_timeout_s = idle_timeout_s
        self.max_sequences = max_sequences
        self.key_prefix = key_prefix
        self._ttl_ms = max(1, math.ceil(idle_timeout_s * 1000))
        self._redis = client
        self._index = f"{key_prefix}open"
        self._put = client.register_script(_PUT)
        self._count = client.register_script(_COUNT)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisSequenceStore:
        import redis  # only the scale-out shape needs the client

        return cls(redis.Redis.from_url(url), **kwargs)

    def _value_key(self, key: str) -> str:
        return f"{self.key_prefix}s:{key}"

    def get(self, key: str) -> SequenceState | None:
        with _reachable():
            data = self._redis.get(self._value_key(key))
        return None if data is None else decode_state(data)

    def put(self, key: str, value: SequenceState) -> None:
        with _reachable():
            stored = self._put(
                keys=[self._index, self._value_key(key)],
                args=[key, encode_state(value), self._ttl_ms, self.max_sequences],
            )
        if not stored:
            raise SequenceStoreFull(self.max_sequences)

    def delete(self, key: str) -> None:
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._value_key(key))
            pipe.zrem(self._index, key)
            pipe.execute()

    def __len__(self) -> int:
        """Open sequences across every replica sharing this store."""
        return int(self._count(keys=[self._index]))

    def ping(self) -> None:
        """Raise (redis.ConnectionError, ...) unless the server answers."""
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()


def open_sequence_store(settings: Settings) -> SequenceStore:
    """The store `settings.sequence_store` names; Redis is pinged so a bad URL stops start-up."""
    if settings.sequence_store == "redis":
        store = RedisSequenceStore.from_url(
            settings.redis_url,
            idle_timeout_s=settings.sequence_idle_timeout_s,
            max_sequences=settings.max_sequences,
            key_prefix=settings.redis_key_prefix,
        )
        store.ping()
        return store
    return MemorySequenceStore(idle_timeout_s=settings.sequence_idle_timeout_s, max_sequences=settings.max_sequences)
