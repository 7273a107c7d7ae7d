"""Where open streaming sequences keep their recurrent state between requests.

A sequence (Triton's sequence extension) is a run of inference requests that
continue one another: the final state of one request is the initial state of the
next. The data plane reads and writes that state through `SequenceStore`, so the
embedded server can keep it in memory and API replicas can share it in Redis.

Every sequence has an owner (the data plane passes who started it: an API key, or the client
address of an anonymous request), and the store bounds what one owner may hold open, in
sequences and in state bytes, beside the bound on all open sequences together: one client
can no longer take every slot or gigabytes of memory.
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
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from warmzoo.service.core.config import Settings


UNBOUNDED_BYTES = 2**62  # "no byte bound" as a number every comparison (and Lua's doubles) handles


@dataclass(frozen=True)
class SequenceState:
    """What a sequence carries between requests; the batch size is `state.shape[1]`."""

    version: int  # the model version the sequence started on, and stays on
    state: np.ndarray  # FP32 [num_layers, batch, state_size], never mutated in place


FullScope = Literal["server", "owner", "owner_bytes"]


class SequenceStoreFull(Exception):
    """A sequence cannot be stored: the server already holds `limit` open sequences (`scope`
    "server"), its owner holds `limit` ("owner"), or its state would take the owner's open
    state past `limit` bytes ("owner_bytes")."""

    def __init__(self, limit: int, scope: FullScope = "server") -> None:
        super().__init__(f"{limit} {'bytes' if scope == 'owner_bytes' else 'sequences'} ({scope})")
        self.limit = limit
        self.scope = scope


class SequenceStoreUnavailable(RuntimeError):
    """The shared store cannot be reached: a passing outage, not the request's fault."""


@contextmanager
def _reachable() -> Iterator[None]:
    from redis.exceptions import ConnectionError, TimeoutError

    try:
        yield
    except (ConnectionError, TimeoutError) as exc:
        raise SequenceStoreUnavailable(str(exc)) from exc


def _check_limits(idle_timeout_s: float, max_sequences: int, max_per_owner: int, max_bytes_per_owner: int) -> None:
    if idle_timeout_s <= 0 or min(max_sequences, max_per_owner, max_bytes_per_owner) < 1:
        raise ValueError("idle_timeout_s must be > 0, and max_sequences, max_per_owner, max_bytes_per_owner >= 1")


class SequenceStore(Protocol):
    """Open sequences by key; an entry expires `idle_timeout_s` after its last `put`. A key
    belongs to one owner (the caller puts the owner in the key, so owners never share one)."""

    idle_timeout_s: float

    def get(self, key: str) -> SequenceState | None:
        """The sequence's state, or None if it was never started, was deleted or expired."""
        ...

    def put(self, key: str, value: SequenceState, owner: str = "") -> None:
        """Store (or replace) `owner`'s sequence state and restart its idle timer.

        Raises SequenceStoreFull when `key` is not open and no more sequences fit (on the
        server or for this owner), or when the owner's open state would pass its byte bound.
        """
        ...

    def delete(self, key: str, owner: str = "") -> None:
        """Forget `owner`'s sequence; deleting an unknown key is not an error."""
        ...


@dataclass
class _Held:
    """What one owner holds open: sequences and their state bytes."""

    sequences: int = 0
    bytes: int = 0


class MemorySequenceStore:
    """A thread-safe in-process `SequenceStore` with an idle timeout and bounds on open sequences.

    Entries are kept in order of last `put`, so the expired ones are always at the
    front and are swept in amortised O(1) on every write.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 300.0,
        max_sequences: int = 1024,
        max_per_owner: int | None = None,
        max_bytes_per_owner: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_per_owner` None: only `max_sequences` bounds an owner; `max_bytes_per_owner` None: no byte bound."""
        self.max_per_owner = max_per_owner or max_sequences
        self.max_bytes_per_owner = max_bytes_per_owner or UNBOUNDED_BYTES
        _check_limits(idle_timeout_s, max_sequences, self.max_per_owner, self.max_bytes_per_owner)
        self.idle_timeout_s = idle_timeout_s
        self.max_sequences = max_sequences
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (deadline, owner, value), and per owner what it holds
        self._entries: OrderedDict[str, tuple[float, str, SequenceState]] = OrderedDict()
        self._held: dict[str, _Held] = {}

    def get(self, key: str) -> SequenceState | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                self._drop(key)
                return None
            return entry[2]

    def put(self, key: str, value: SequenceState, owner: str = "") -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            held = self._held.get(owner, _Held())
            previous = self._entries.get(key)
            if previous is None and len(self._entries) >= self.max_sequences:
                raise SequenceStoreFull(self.max_sequences, "server")
            if previous is None and held.sequences >= self.max_per_owner:
                raise SequenceStoreFull(self.max_per_owner, "owner")
            replaced = previous[2].state.nbytes if previous is not None else 0
            if held.bytes - replaced + value.state.nbytes > self.max_bytes_per_owner:
                raise SequenceStoreFull(self.max_bytes_per_owner, "owner_bytes")
            if previous is not None:
                self._drop(key)
            self._entries[key] = (now + self.idle_timeout_s, owner, value)
            held = self._held.setdefault(owner, _Held())
            held.sequences += 1
            held.bytes += value.state.nbytes

    def delete(self, key: str, owner: str = "") -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    def __len__(self) -> int:
        """Open sequences, not counting those that expired since the last write."""
        with self._lock:
            self._sweep(self._clock())
            return len(self._entries)

    def held(self, owner: str) -> tuple[int, int]:
        """(open sequences, their state bytes) of `owner`."""
        with self._lock:
            self._sweep(self._clock())
            held = self._held.get(owner, _Held())
            return held.sequences, held.bytes

    def _drop(self, key: str) -> None:
        _, owner, value = self._entries.pop(key)
        held = self._held[owner]
        held.sequences -= 1
        held.bytes -= value.state.nbytes
        if not held.sequences:
            del self._held[owner]

    def _sweep(self, now: float) -> None:
        while self._entries:
            key, (deadline, _, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            self._drop(key)


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


# Atomically: drop expired members of the indexes, refuse a new key beyond the server's or the
# owner's bound, refuse a state that takes the owner past its byte bound, then store the value with
# the idle timeout as its TTL and record its deadline and size. KEYS: the server's index, the value,
# the owner's index (key -> deadline), the owner's sizes (key -> bytes). ARGV: key, value, TTL ms,
# max sequences, max per owner, max bytes per owner, this value's state bytes. Deadlines use the
# Redis server's clock, so replicas with skewed clocks agree on what has expired.
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #expired > 0 then
  redis.call('HDEL', KEYS[4], unpack(expired))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return -1 end
end
local held = 0
for _, size in ipairs(redis.call('HVALS', KEYS[4])) do held = held + tonumber(size) end
held = held - tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if held + tonumber(ARGV[7]) > tonumber(ARGV[6]) then return -2 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[7])
for i = 1, 4 do if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ttl) end end
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
    across replicas (expired members are swept on every `put`), and per owner a sorted set
    (`<prefix>o:<owner>`) and a hash of state sizes (`<prefix>b:<owner>`) enforce `max_per_owner`
    and `max_bytes_per_owner`. Values are encoded by
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
        max_per_owner: int | None = None,
        max_bytes_per_owner: int | None = None,
        key_prefix: str = "warmzoo:seq:",
    ) -> None:
        self.max_per_owner = max_per_owner or max_sequences
        self.max_bytes_per_owner = max_bytes_per_owner or UNBOUNDED_BYTES
        _check_limits(idle_timeout_s, max_sequences, self.max_per_owner, self.max_bytes_per_owner)
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

    def _owner_keys(self, owner: str) -> list[str]:
        return [f"{self.key_prefix}o:{owner}", f"{self.key_prefix}b:{owner}"]

    def put(self, key: str, value: SequenceState, owner: str = "") -> None:
        limits = [self.max_sequences, self.max_per_owner, self.max_bytes_per_owner]
        with _reachable():
            stored = int(
                self._put(
                    keys=[self._index, self._value_key(key), *self._owner_keys(owner)],
                    args=[key, encode_state(value), self._ttl_ms, *limits, value.state.nbytes],
                )
            )
        refusals: dict[int, tuple[int, FullScope]] = {0: (limits[0], "server"), -1: (limits[1], "owner")}
        if stored != 1:
            raise SequenceStoreFull(*refusals.get(stored, (limits[2], "owner_bytes")))

    def delete(self, key: str, owner: str = "") -> None:
        sequences, sizes = self._owner_keys(owner)
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._value_key(key))
            pipe.zrem(self._index, key)
            pipe.zrem(sequences, key)
            pipe.hdel(sizes, key)
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
            max_per_owner=settings.max_sequences_per_owner,
            max_bytes_per_owner=settings.max_sequence_bytes_per_owner,
            key_prefix=settings.redis_key_prefix,
        )
        store.ping()
        return store
    return MemorySequenceStore(
        idle_timeout_s=settings.sequence_idle_timeout_s,
        max_sequences=settings.max_sequences,
        max_per_owner=settings.max_sequences_per_owner,
        max_bytes_per_owner=settings.max_sequence_bytes_per_owner,
    )
