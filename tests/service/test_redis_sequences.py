"""The Redis sequence store against a real Redis: exact round trip, TTL as idle timeout, the bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import redis

from warmzoo.service.core.config import Settings
from warmzoo.service.serving.sequences import (
    RedisSequenceStore,
    SequenceState,
    SequenceStoreFull,
    decode_state,
    encode_state,
    open_sequence_store,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_prefix: tuple[str, str]) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_prefix[0])
    yield connection
    connection.close()


def make_store(redis_prefix: tuple[str, str], **kwargs: float) -> RedisSequenceStore:
    url, prefix = redis_prefix
    return RedisSequenceStore.from_url(url, key_prefix=prefix, **kwargs)


def state(version: int = 1, seed: int = 0, shape: tuple[int, ...] = (2, 3, 4)) -> SequenceState:
    return SequenceState(version, np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_encoding_is_exact_and_refuses_malformed_records() -> None:
    value = SequenceState(2**40, np.array([[[np.nan, -0.0, np.inf, 1e-38]]], dtype=np.float32))
    decoded = decode_state(encode_state(value))
    assert decoded.version == value.version and decoded.state.dtype == np.float32
    assert decoded.state.tobytes() == value.state.tobytes() and decoded.state.shape == (1, 1, 4)
    data = encode_state(state())
    for bad in (data[:5], data[:-1], data + b"\0", b"XXXX" + data[4:], data[:4] + b"\x09" + data[5:]):
        with pytest.raises(ValueError):
            decode_state(bad)


def test_round_trip_delete_and_unknown_keys(redis_prefix: tuple[str, str]) -> None:
    store = make_store(redis_prefix)
    value = state(3, shape=(2, 5, 8))
    assert store.get('["m", "a"]') is None
    store.put('["m", "a"]', value)
    got = store.get('["m", "a"]')
    assert got is not None and got.version == 3 and got.state.shape == (2, 5, 8)
    np.testing.assert_array_equal(got.state, value.state)
    assert len(store) == 1
    store.delete('["m", "a"]')
    store.delete('["m", "never"]')  # not an error
    assert store.get('["m", "a"]') is None and len(store) == 0
    store.close()


@pytest.fixture
def advance(redis_prefix: tuple[str, str], client: redis.Redis) -> Callable[[float], None]:
    """advance(s): the store's clock moves on by `s` seconds, without sleeping. Redis keeps the
    time of a sequence as its key's TTL and its deadline in the index, both read against the
    server's own clock; moving every one of them `s` seconds closer is what waiting would do."""

    def move(seconds: float) -> None:
        shift = round(seconds * 1000)
        index = f"{redis_prefix[1]}open"
        for key in client.scan_iter(match=f"{redis_prefix[1]}*"):
            left = client.pttl(key)
            if 0 < left <= shift:
                client.delete(key)
            elif left > shift:
                client.pexpire(key, left - shift)
        for member, deadline in client.zrange(index, 0, -1, withscores=True):
            client.zadd(index, {member: deadline - shift}, xx=True)

    return move


def test_the_idle_timeout_is_the_ttl_and_each_put_refreshes_it(
    redis_prefix: tuple[str, str], client: redis.Redis, advance: Callable[[float], None]
) -> None:
    store = make_store(redis_prefix, idle_timeout_s=100.0)
    key = f"{redis_prefix[1]}s:a"
    store.put("a", state(1))
    assert 99_000 < client.pttl(key) <= 100_000
    advance(60)
    store.put("a", state(2))  # refreshed: still there 120 s after the first put
    assert client.pttl(key) > 99_000
    advance(60)
    got = store.get("a")
    assert got is not None and got.version == 2
    advance(50)
    assert store.get("a") is None and len(store) == 0


def test_the_bound_counts_open_sequences_and_frees_expired_ones(
    redis_prefix: tuple[str, str], advance: Callable[[float], None]
) -> None:
    store = make_store(redis_prefix, idle_timeout_s=100.0, max_sequences=2)
    other_replica = make_store(redis_prefix, idle_timeout_s=100.0, max_sequences=2)
    store.put("a", state())
    other_replica.put("b", state())
    store.put("a", state(2))  # replacing an open one is not a new sequence
    with pytest.raises(SequenceStoreFull) as full:
        other_replica.put("c", state())
    assert full.value.limit == 2 and other_replica.get("c") is None
    store.delete("b")
    other_replica.put("c", state())
    advance(101)  # both expire: room again without any delete
    store.put("d", state())
    store.put("e", state())
    assert len(store) == 2


def test_open_sequence_store_follows_the_settings(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    store = open_sequence_store(
        Settings(sequence_store="redis", redis_url=url, redis_key_prefix=prefix, max_sequences=7)
    )
    assert isinstance(store, RedisSequenceStore) and (store.max_sequences, store.key_prefix) == (7, prefix)
    store.close()
    with pytest.raises(redis.ConnectionError):
        open_sequence_store(Settings(sequence_store="redis", redis_url="redis://127.0.0.1:1/0"))


def test_each_owner_is_bounded_across_replicas(redis_prefix: tuple[str, str]) -> None:
    store = make_store(redis_prefix, idle_timeout_s=1.0, max_sequences=5, max_per_owner=2, max_bytes_per_owner=24)
    other_replica = make_store(redis_prefix, idle_timeout_s=1.0, max_sequences=5, max_per_owner=2, max_bytes_per_owner=24)
    small = state(shape=(1, 1, 2))  # 8 bytes
    store.put("a1", small, owner="a")
    other_replica.put("a2", small, owner="a")
    with pytest.raises(SequenceStoreFull) as full:
        store.put("a3", small, owner="a")
    assert (full.value.limit, full.value.scope) == (2, "owner")
    other_replica.put("b1", small, owner="b")
    store.put("a2", state(shape=(1, 2, 2)), owner="a")  # replacing 8 by 16 bytes: 24 in all fit
    with pytest.raises(SequenceStoreFull) as full:
        other_replica.put("b2", state(shape=(1, 2, 4)), owner="b")  # 8 + 32 bytes
    assert (full.value.limit, full.value.scope) == (24, "owner_bytes") and store.get("b2") is None
    store.delete("a1", owner="a")
    other_replica.put("a3", small, owner="a")  # the deleted one made room
    time.sleep(1.1)  # all expire: the owners' budgets are free again
    store.put("a4", small, owner="a")
    store.put("a5", state(shape=(1, 1, 4)), owner="a")
    assert len(store) == 2
