"""Serving API parts that need no services: breaker, A/B split, rules, auth, RESP, values."""

from __future__ import annotations

import asyncio
import math
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import numpy as np
import pandas as pd
import pytest
from feast.protos.feast.types.Value_pb2 import BoolList, Int64List, StringList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.errors import MessageSizeTooLargeError

from api.ab import CHALLENGER, CHAMPION, arm_for, bucket
from api.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from api.catalogue import ServingCatalogue
from api.features import FeatureFetcher, decode_value
from api.metrics import ApiMetrics
from api.outbox import Outbox, Record, Ticket
from api.resp import RespError, _Connection, pack_command
from api.security import AuthError, ConfigError, JwtVerifier, make_token, parse_cidrs
from api.serving_log import ServedResponse, serving_log_json
from feature_repo.events import parse_event
from monitoring.contract import ServingLogRecord
from ranking.features import FEATURE_NAMES
from ranking.rules import apply_rules
from recsys.settings import Settings
from retrieval.catalogue import Catalogue

SECRET = "s" * 40


def make_settings(**changes: object) -> Settings:
    return Settings(_env_file=None, **{"api_auth_mode": "writes", "api_jwt_secret": SECRET,
                                       **changes})


# --- circuit breaker --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_recovers_through_one_trial() -> None:
    clock, changes = Clock(), []
    b = CircuitBreaker("redis", failures=3, reset_s=2.0, clock=clock,
                       on_change=lambda name, state: changes.append(state))
    b.failure("x")
    b.failure("x")
    b.success()  # a success resets the count
    b.failure("x")
    b.failure("x")
    assert b.allow() and b.state == CLOSED
    b.failure(ConnectionError("down"))
    assert b.state == OPEN and not b.allow()
    assert b.last_error == "ConnectionError('down')"
    clock.now = 1.9
    assert not b.allow()
    clock.now = 2.0
    assert b.state == HALF_OPEN
    assert b.allow()  # the one trial
    assert not b.allow()  # no second caller while the trial runs
    b.failure("still down")  # a failed trial opens again at once
    assert b.state == OPEN and not b.allow()
    clock.now = 4.5
    assert b.allow()
    b.success()
    assert b.state == CLOSED and b.allow() and b.last_error is None
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_breaker_retries_a_trial_that_never_reported_back() -> None:
    clock = Clock()
    b = CircuitBreaker("broker", failures=1, reset_s=1.0, clock=clock)
    b.failure()
    clock.now = 1.0
    assert b.allow()
    clock.now = 1.5
    assert not b.allow()
    clock.now = 2.0
    assert b.allow()


# --- A/B split --------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_ab_split_matches_the_share_and_is_stable(share: float) -> None:
    users = [f"u{k}" for k in range(40_000)]
    arms = [arm_for(u, share, "salt-a") for u in users]
    observed = arms.count(CHALLENGER) / len(users)
    sd = math.sqrt(share * (1 - share) / len(users))
    assert abs(observed - share) < 4 * sd
    assert arms == [arm_for(u, share, "salt-a") for u in users]  # same answer every time
    # a bigger share only moves users from champion to challenger (buckets are fixed)
    bigger = [arm_for(u, share + 0.1, "salt-a") for u in users]
    assert all(b == CHALLENGER for a, b in zip(arms, bigger, strict=True) if a == CHALLENGER)


def test_ab_salt_reshuffles_and_share_edges() -> None:
    users = [f"u{k}" for k in range(5_000)]
    a = {u for u in users if arm_for(u, 0.5, "one") == CHALLENGER}
    b = {u for u in users if arm_for(u, 0.5, "two") == CHALLENGER}
    assert 0.4 < len(a & b) / len(a) < 0.6  # independent halves overlap by about half
    assert all(arm_for(u, 0.0, "one") == CHAMPION for u in users[:100])
    assert all(arm_for(u, 1.0, "one") == CHALLENGER for u in users[:100])
    assert 0 <= bucket("u1", "x") < 1


# --- business rules ---------------------------------------------------------------------


def test_rules_order_dedupe_exclude_filter() -> None:
    items = np.array([5, 3, 5, 7, 1, 9])
    scores = np.array([0.9, 0.8, 0.95, 0.1, 0.7, 0.5])
    codes = np.arange(10)  # every item its own category: no cap effect
    allowed = np.ones(10, bool)
    allowed[9] = False
    chosen = apply_rules(items, scores, k=10, category_codes=codes, allowed=allowed,
                         excluded={1})
    assert [int(items[p]) for p in chosen] == [5, 3, 7]  # 5 once, 1 excluded, 9 filtered


def test_rules_diversity_cap_then_backfill() -> None:
    items = np.arange(8)
    scores = np.array([8, 7, 6, 5, 4, 3, 2, 1], float)
    codes = np.array([0, 0, 0, 0, 1, 1, 2, 0])
    chosen = apply_rules(items, scores, k=4, category_codes=codes, max_share=0.5)
    assert list(chosen) == [0, 1, 4, 5]  # at most ceil(0.5 * 4) = 2 per category
    chosen = apply_rules(items, scores, k=7, category_codes=codes, max_share=0.5)
    # cap 4 per category: 0,1,2,3 (cat 0), 4,5 (cat 1), 6 (cat 2); 7 was held back
    assert list(chosen) == [0, 1, 2, 3, 4, 5, 6]
    chosen = apply_rules(items, scores, k=8, category_codes=np.zeros(8, int), max_share=0.25)
    assert list(chosen) == [0, 1, 2, 3, 4, 5, 6, 7]  # one category: back-filled in order


# --- auth -------------------------------------------------------------------------------


def test_jwt_scopes_and_failures() -> None:
    s = make_settings(api_jwt_issuer="recsys", api_jwt_audience="api")
    v = JwtVerifier(s)
    assert v.check(None, "read") is None  # reads are open in "writes" mode
    with pytest.raises(AuthError) as missing:
        v.check(None, "events")
    assert missing.value.status == 401
    good = make_token(s, ["events"])
    assert v.check(f"Bearer {good}", "events").scopes == frozenset({"events"})
    with pytest.raises(AuthError) as scope:
        v.check(f"Bearer {good}", "admin")
    assert (scope.value.status, scope.value.message) == (403, "token lacks the 'admin' scope")
    cases = {
        "expired": make_token(s, ["events"], ttl_s=-60),
        "forged": make_token(s, ["events"], key="x" * 40),
        "wrong issuer": make_token(s, ["events"], iss="someone-else"),
        "wrong audience": make_token(s, ["events"], aud="other"),
        "no exp": jwt.encode({"scope": "events", "iss": "recsys", "aud": "api"}, SECRET,
                             algorithm="HS256"),
    }
    for name, token in cases.items():
        with pytest.raises(AuthError) as bad:
            v.check(f"Bearer {token}", "events")
        assert bad.value.status == 401, name
    with pytest.raises(AuthError, match="Bearer <JWT>"):
        v.check(f"Basic {good}", "events")
    assert make_token(s, ["read"]) and JwtVerifier(make_settings(api_auth_mode="all")).required(
        "read")


def test_auth_settings_fail_fast() -> None:
    with pytest.raises(ConfigError, match="api_jwt_secret"):
        JwtVerifier(Settings(_env_file=None, api_auth_mode="writes"))
    with pytest.raises(ConfigError, match="32 characters"):
        JwtVerifier(make_settings(api_jwt_secret="short"))
    assert not JwtVerifier(Settings(_env_file=None, api_auth_mode="off")).required("events")
    with pytest.raises(ConfigError, match="api_allowed_cidrs: 'nope'"):
        parse_cidrs("10.0.0.0/8, nope")
    assert [str(n) for n in parse_cidrs(" 10.0.0.0/8,,127.0.0.1 ")] == ["10.0.0.0/8",
                                                                        "127.0.0.1/32"]


# --- RESP and Feast values --------------------------------------------------------------


class _Sink:
    def write(self, data: bytes) -> None:
        pass


def _arrays(chunks: list[bytes], n: int) -> list[list[bytes | None]]:
    """``_Connection.arrays`` over a stream that delivers ``chunks`` one read at a time."""

    class Reader:
        def __init__(self) -> None:
            self.chunks = list(chunks)

        async def read(self, _: int) -> bytes:
            return self.chunks.pop(0) if self.chunks else b""

    return asyncio.run(_Connection(Reader(), _Sink()).arrays(b"", n))  # type: ignore[arg-type]


def test_resp_array_parsing() -> None:
    reply = b"*3\r\n$2\r\nab\r\n$-1\r\n$4\r\n\r\n\r\n\r\n*0\r\n"
    expected = [[b"ab", None, b"\r\n\r\n"], []]  # values may contain CRLF
    assert _arrays([reply], 2) == expected
    for cut in range(1, len(reply)):  # a reply split anywhere across reads
        assert _arrays([reply[:cut], reply[cut:]], 2) == expected
    assert _arrays([bytes([b]) for b in reply], 2) == expected
    with pytest.raises(RespError, match="connection closed"):
        _arrays([reply[:10]], 1)
    with pytest.raises(RespError, match="WRONGTYPE"):
        _arrays([b"-WRONGTYPE Operation against a key\r\n"], 1)
    with pytest.raises(RespError, match="unexpected reply"):
        _arrays([b":42\r\n"], 1)
    with pytest.raises(RespError):  # not RESP at all: a protocol error
        _arrays([b"?garbage\r\n"], 1)
    assert pack_command(b"HMGET", b"k", b"f") == b"*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$1\r\nf\r\n"


@pytest.mark.parametrize("value", [
    ValueProto(int64_val=7), ValueProto(double_val=0.25), ValueProto(string_val="F"),
    ValueProto(bool_val=True), ValueProto(int64_list_val=Int64List(val=[1, 2])),
    ValueProto(string_list_val=StringList(val=["i1", "i2"])),
    ValueProto(bool_list_val=BoolList(val=[True])), ValueProto(unix_timestamp_val=1_700_000_000),
    ValueProto(),
])
def test_decode_value_matches_feast(value: ValueProto) -> None:
    raw = value.SerializeToString()
    expected = feast_value_type_to_python_type(value) if raw else None
    assert decode_value(raw) == expected
    assert decode_value(raw) == expected  # memoized path
    assert decode_value(None) is None


def test_serving_log_keeps_missing_values_aligned() -> None:
    record = ServingLogRecord(request_id="r1", ts=datetime.now(UTC), user_id="u1",
                              arm="champion", model_version="3", item_ids=["a", "b"],
                              scores=[0.5, 0.25], features={"f": [float("nan"), 2.0]})
    raw = serving_log_json(record)
    assert b"[NaN,2.0]" in raw
    back = ServingLogRecord.from_json_bytes(raw)
    assert back.item_ids == ["a", "b"] and back.scores == [0.5, 0.25]
    assert back.ts == record.ts and back.model_version == "3"
    assert math.isnan(back.features["f"][0]) and back.features["f"][1] == 2.0


# --- catalogue --------------------------------------------------------------------------

ITEMS = pd.DataFrame({
    "item_id": [f"i{k}" for k in range(12)], "title": "", "genres": "", "brand": "",
    "category": ["a", "b", None, "a", "c", "b", "a", None, "c", "a", "b", "unknown"],
    "price": [1.0, 5.0, np.nan, 10.0, 3.0, 7.5, 2.0, 4.0, np.nan, 8.0, 9.0, 6.0],
    "launch_ts": 0, "in_stock": [True, False] * 6,
})


@settings(max_examples=60, deadline=None)
@given(categories=st.lists(st.sampled_from(["a", "b", "c", "unknown", "zz"]), max_size=3),
       low=st.none() | st.floats(0, 10), high=st.none() | st.floats(0, 10),
       in_stock=st.booleans())
def test_serving_catalogue_masks_equal_the_catalogues(categories, low, high, in_stock) -> None:
    plain, fast = Catalogue(ITEMS), ServingCatalogue(ITEMS)
    want = plain.mask(categories, low, high, in_stock)
    got = fast.mask(categories, low, high, in_stock)
    assert (want is None and got is None) or np.array_equal(want, got)
    assert got is fast.mask(categories, low, high, in_stock)  # memoized
    np.testing.assert_array_equal(fast.category_codes, plain.category_codes)
    assert fast.category_of == plain.categories[plain.category_codes].tolist()


# --- outbox -----------------------------------------------------------------------------


class FlakyProducer:
    """Acknowledges sends only while ``up``; records what it delivered."""

    def __init__(self) -> None:
        self.up = False
        self.delivered: list[bytes] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> Future:
        if value == b"huge":
            raise MessageSizeTooLargeError("too big")
        future = Future(self.up)
        if self.up:
            self.delivered.append(value)
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class Future:
    """Already resolved, like a kafka-python future whose batch was answered."""

    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def add_callback(self, f: Callable[..., None], *args: object) -> None:
        if self.ok:
            f(*args, "metadata")

    def add_errback(self, f: Callable[..., None], *args: object) -> None:
        if not self.ok:
            f(*args, ConnectionError("broker down"))


def test_outbox_buffers_while_down_refuses_when_full_and_drains_in_order() -> None:
    producer = FlakyProducer()
    metrics = ApiMetrics()
    breaker = CircuitBreaker("broker", failures=1, reset_s=0.05)
    outbox = Outbox(5, breaker, metrics, lambda: producer)
    outbox.start()
    try:
        records = [Record("t", b"k", b"%d" % k) for k in range(4)]
        assert outbox.offer(records)
        time.sleep(0.2)
        assert breaker.state in {OPEN, HALF_OPEN} and len(outbox) == 4
        assert not outbox.offer([Record("t", None, b"x")] * 2)  # all or nothing
        assert outbox.offer([Record("t", None, b"4")])
        producer.up = True
        deadline = time.monotonic() + 5
        while len(producer.delivered) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert producer.delivered == [b"0", b"1", b"2", b"3", b"4"]
        assert breaker.state == CLOSED and len(outbox) == 0
    finally:
        outbox.stop(drain_s=1)
    counts = {s.labels["outcome"]: s.value for m in metrics.registry.collect()
              if m.name == "recsys_events" for s in m.samples if s.name.endswith("_total")}
    assert counts == {"published": 5.0, "buffered": 5.0, "rejected": 2.0}


def test_outbox_refuses_a_record_kafka_never_takes_without_blocking_the_rest() -> None:
    producer = FlakyProducer()
    producer.up = True
    metrics = ApiMetrics()
    outbox = Outbox(10, CircuitBreaker("broker", failures=1, reset_s=0.05), metrics,
                    lambda: producer)

    async def scenario() -> bool:
        ticket = Ticket(asyncio.get_running_loop(), 2)
        assert outbox.offer([Record("t", None, b"huge"), Record("t", None, b"ok")], ticket)
        return await asyncio.wait_for(ticket.future, 5)

    outbox.start()
    try:
        assert asyncio.run(scenario()) is False  # the waiter learns a record was refused
        wait = time.monotonic() + 5
        while producer.delivered != [b"ok"] and time.monotonic() < wait:
            time.sleep(0.02)
        assert producer.delivered == [b"ok"] and len(outbox) == 0
    finally:
        outbox.stop(drain_s=1)
    rejected = [s.value for m in metrics.registry.collect() if m.name == "recsys_events"
                for s in m.samples if s.labels.get("outcome") == "rejected"
                and s.name.endswith("_total")]
    assert rejected == [1.0]


def test_ticket_resolves_when_every_record_is_acknowledged() -> None:
    async def scenario() -> bool:
        ticket = Ticket(asyncio.get_running_loop(), 2)
        ticket.acked()
        assert not ticket.future.done()
        ticket.acked()
        return await asyncio.wait_for(ticket.future, 1)

    assert asyncio.run(scenario()) is True


def test_resp_reply_cut_short_is_a_connection_error() -> None:
    # e.g. Redis dropping the connection during AUTH at connect: the serving path falls
    # back on connection errors (OSError), so this must be one, not an EOFError
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"+PON")
        reader.feed_eof()
        await _Connection(reader, _Sink()).line(pack_command(b"PING"))  # type: ignore[arg-type]

    with pytest.raises(RespError, match="mid-reply") as caught:
        asyncio.run(scenario())
    assert isinstance(caught.value, OSError)


# --- CLI --------------------------------------------------------------------------------


def test_cli_token_is_accepted_by_the_api_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recsys.cli import app
    from recsys.settings import get_settings

    monkeypatch.setenv("RECSYS_API_JWT_SECRET", SECRET)
    monkeypatch.setenv("RECSYS_API_JWT_ISSUER", "recsys-tests")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["api", "token", "--scope", "events", "--scope",
                                          "admin", "--ttl", "60"])
        assert result.exit_code == 0, result.output
        verifier = JwtVerifier(get_settings())
        principal = verifier.check(f"Bearer {result.output.strip()}", "admin")
        assert principal.scopes == frozenset({"events", "admin"})
        monkeypatch.delenv("RECSYS_API_JWT_SECRET")
        get_settings.cache_clear()
        refused = CliRunner().invoke(app, ["api", "token"])
        assert refused.exit_code != 0 and "RECSYS_API_JWT_SECRET" in refused.output
    finally:
        get_settings.cache_clear()


def test_outbox_builds_a_served_responses_records_off_the_request_path() -> None:
    rows = np.arange(2 * len(FEATURE_NAMES), dtype=np.float32).reshape(2, -1)
    rows[1, 0] = np.nan
    producer = FlakyProducer()
    producer.up = True
    outbox = Outbox(20, CircuitBreaker("broker"), ApiMetrics(), lambda: producer,
                    ("log-topic", "click-topic"))
    served = ServedResponse("r1", datetime.now(UTC), "u1", "challenger", "7", False, None,
                            ["a", "b"], [0.5, 0.25], rows.tobytes(), {"surface": "home"})
    assert pickle.loads(pickle.dumps(served)) == served  # what the publisher process gets
    outbox.start()
    try:
        assert outbox.offer_served(served)
        deadline = time.monotonic() + 5
        while len(producer.delivered) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        outbox.stop(drain_s=1)
    log_record = ServingLogRecord.from_json_bytes(producer.delivered[0])
    assert (log_record.request_id, log_record.arm, log_record.item_ids) == ("r1", "challenger",
                                                                            ["a", "b"])
    # each feature's values per served item, NaN kept (the drift statistics skip it)
    assert list(log_record.features) == list(FEATURE_NAMES)
    assert log_record.features[FEATURE_NAMES[1]] == [1.0, float(len(FEATURE_NAMES) + 1)]
    assert log_record.features[FEATURE_NAMES[0]][0] == 0.0
    assert math.isnan(log_record.features[FEATURE_NAMES[0]][1])
    impressions = [parse_event(v) for v in producer.delivered[1:]]
    assert [(e.item_id, e.event_type, e.request_id, e.model_version) for e in impressions] == [
        ("a", "impression", "r1", "7"), ("b", "impression", "r1", "7")]
    assert impressions[1].context == {"surface": "home", "arm": "challenger", "position": 2}
    assert len(outbox) == 0


class CountingReader:
    """A RowReader that records which items it was asked for."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def read(self, user_id: str, item_ids):
        self.asked.append(list(item_ids))
        return (1.0,), [(float(i.removeprefix("i")),) for i in item_ids]


def test_cached_item_rows_expire_apart_within_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    import api.features as features

    clock = [1_000.0]
    monkeypatch.setattr(features.time, "monotonic", lambda: clock[0])
    reader = CountingReader()
    fetcher = FeatureFetcher(reader, ["user_activity_1h:views"], ["item_metadata:price"],
                             ttl_s=10.0)
    items = [f"i{k}" for k in range(200)]
    user, columns = asyncio.run(fetcher.fetch("u1", items))
    assert user == {"user_activity_1h__views": 1.0}
    assert columns["item_metadata__price"].tolist() == [float(k) for k in range(200)]
    clock[0] += 4.99  # before ttl/2: every row is still fresh
    asyncio.run(fetcher.fetch("u1", items))
    assert reader.asked[-1] == []
    clock[0] += 3.0  # between ttl/2 and ttl: some, not all, were refetched
    asyncio.run(fetcher.fetch("u1", items))
    assert 0 < len(reader.asked[-1]) < 200
    clock[0] += 10.01  # past the ttl of every row
    asyncio.run(fetcher.fetch("u1", items))
    assert len(reader.asked[-1]) == 200


def test_survivors_are_frozen_and_a_sweep_frees_frozen_cycles() -> None:
    import gc
    import weakref

    from api.models import freeze_survivors

    class Node:
        pass

    async def scenario() -> tuple[int, bool, bool]:
        cycle = Node()
        cycle.self = cycle  # only the cyclic collector can free it
        alive = weakref.ref(cycle)
        task = asyncio.create_task(freeze_survivors(0.01, sweep_s=0.2))
        await asyncio.sleep(0.05)  # frozen while still referenced
        frozen = gc.get_freeze_count()
        del cycle
        gc.collect()
        survived_collect = alive() is not None  # frozen: a collection does not see it
        await asyncio.sleep(0.3)  # the sweep unfreezes and collects
        task.cancel()
        return frozen, survived_collect, alive() is None

    try:
        frozen, survived_collect, freed = asyncio.run(scenario())
    finally:
        gc.unfreeze()
    assert frozen > 0 and survived_collect and freed


class _RecordingGenerator:
    """Candidates that name the call they came from (user and filters)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.batched: list[str] = []  # users asked for through for_users

    def for_user(self, user_id, n, filters, recent, categories):
        from retrieval.candidates import Candidates

        self.calls.append((user_id, n, filters, recent, categories))
        idx = np.arange(n, dtype=np.int64) + len(self.calls)
        return Candidates(idx, idx.astype(str), np.ones(n, np.float32), "als")

    def for_users(self, user_ids, n):
        from retrieval.candidates import Filters

        self.batched.extend(user_ids)
        return [self.for_user(u, n, Filters(), None, None) for u in user_ids]


def _cache_owner(keys: list[tuple] = ()) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(generator=_RecordingGenerator(),
                           candidate_cache=OrderedDict((k, None) for k in keys))


def test_prewarm_fills_the_new_version_with_the_recent_keys_in_lru_order() -> None:
    from api.models import candidate_key, prewarm_candidates
    from retrieval.candidates import Filters

    keys = [candidate_key(f"u{k}", Filters()) for k in range(5)]
    keys.append(candidate_key("u9", Filters(("books",), 1.0, 9.5, True)))
    old, new = _cache_owner(keys), _cache_owner()
    assert prewarm_candidates(new, old, n=3, limit=4, budget_s=10) == 4
    assert list(new.candidate_cache) == keys[-4:]  # the oldest two left out, order kept
    calls = {c[0]: c for c in new.generator.calls}
    assert sorted(calls) == ["u2", "u3", "u4", "u9"]  # the four most recent keys only
    assert new.generator.batched == ["u4", "u3", "u2"]  # unfiltered: one batch, newest first
    assert calls["u9"][1:] == (3, Filters(("books",), 1.0, 9.5, True), None, ["books"])
    item_index, scores, source = new.candidate_cache[keys[-1]]  # u9's, the 4th call's
    assert item_index.tolist() == [4, 5, 6] and source == "als" and len(scores) == 3
    assert new.candidate_cache[keys[-2]][0].tolist() == [1, 2, 3]  # u4's, the batch's first
    assert old.generator.calls == []  # only the new version searches


def test_prewarm_is_off_at_zero_and_stops_at_its_time_limit() -> None:
    from api.models import candidate_key, prewarm_candidates
    from retrieval.candidates import Filters

    keys = [candidate_key(f"u{k}", Filters()) for k in range(50)]
    assert prewarm_candidates(_cache_owner(), _cache_owner(keys), 2, 0, 10) == 0
    assert prewarm_candidates(_cache_owner(), _cache_owner(keys), 2, 50, 0) == 0

    class Slow(_RecordingGenerator):
        def for_user(self, *args):
            time.sleep(0.02)
            return super().for_user(*args)

    new = _cache_owner()
    new.generator = Slow()
    warmed = prewarm_candidates(new, _cache_owner(keys), 2, 50, budget_s=0.1)
    assert 1 <= warmed < 50 and len(new.candidate_cache) == warmed
    assert list(new.candidate_cache) == keys[-warmed:]  # the budget went to the newest


def test_the_redis_fallback_is_computed_once_per_user_and_filters() -> None:
    """A fallback that costs more than the path it replaces would keep an overloaded API
    overloaded (timeouts open the breaker, every request then pays the fallback)."""
    from types import SimpleNamespace

    from api.recommend import Recommender
    from retrieval.candidates import Candidates, Filters

    recommender = Recommender(Settings(_env_file=None, api_candidate_cache_size=2), None,
                              None, None, None, ApiMetrics())
    calls: list[str] = []

    def popular_for(model, user_id: str, filters: Filters) -> Candidates:
        calls.append(user_id)
        idx = np.array([2, 0]) if user_id == "u1" else np.array([1])
        return Candidates(idx, model.retrieval.item_ids[idx],
                          np.linspace(1, 0, len(idx), dtype=np.float32), "popularity")

    recommender.popular_for = popular_for
    model = SimpleNamespace(retrieval=SimpleNamespace(item_ids=np.array(["a", "b", "c"])),
                            fallback_cache=OrderedDict())
    plain, shoes = Filters(), Filters(("shoes",))
    first = recommender._fallback(model, "u1", plain)
    again = recommender._fallback(model, "u1", plain)
    assert calls == ["u1"]
    assert again.item_ids.tolist() == first.item_ids.tolist() == ["c", "a"]
    assert again.source == "popularity" and again.scores.tolist() == first.scores.tolist()
    recommender._fallback(model, "u1", shoes)  # other filters: another list
    recommender._fallback(model, "u2", plain)  # past the size: u1's plain list goes
    recommender._fallback(model, "u1", plain)
    assert calls == ["u1", "u1", "u2", "u1"]
    assert len(model.fallback_cache) == 2


class TableReader:
    """A RowReader over fixed rows: two item features, None for some values."""

    def __init__(self, n_items: int) -> None:
        self.rows = {f"i{k}": (float(k), None if k % 3 else k % 2 == 0)
                     for k in range(n_items)}

    async def read(self, user_id: str, item_ids):
        return (user_id,), [self.rows[i] for i in item_ids]


def test_item_rows_from_the_cache_equal_rows_read_fresh() -> None:
    """Hits, misses, slots reused after expiry and a cache cleared when full: every fetch
    gives what an uncached fetch gives, in the candidates' order."""
    import api.features as features

    refs = ["item_metadata:price", "item_metadata:in_stock"]
    reader = TableReader(60)
    cached = FeatureFetcher(reader, ["user_profile:segment"], refs, ttl_s=10.0, max_items=25)
    fresh = FeatureFetcher(reader, ["user_profile:segment"], refs, ttl_s=0)
    rng = np.random.default_rng(3)
    clock = [0.0]
    original = features.time.monotonic
    features.time.monotonic = lambda: clock[0]
    try:
        for _ in range(40):
            items = [f"i{k}" for k in rng.choice(60, rng.integers(0, 20), replace=False)]
            user, got = asyncio.run(cached.fetch("u7", items))
            _, want = asyncio.run(fresh.fetch("u7", items))
            assert user == {"user_profile__segment": "u7"}
            assert list(got) == ["item_metadata__price", "item_metadata__in_stock"]
            for name in got:
                assert got[name].shape == (len(items),)
                np.testing.assert_array_equal(got[name], want[name])
            clock[0] += rng.uniform(0, 6)
    finally:
        features.time.monotonic = original
    assert len(cached._slots) <= 25
    price = got["item_metadata__price"].tolist()
    assert price == [float(i.removeprefix("i")) for i in items]


def test_an_item_value_that_is_not_a_number_is_named() -> None:
    from api.features import as_floats

    # rows × features; None → NaN, booleans → 1/0
    np.testing.assert_array_equal(as_floats([(1, None), (True, 2.5)], ["a", "b"]),
                                  [[1.0, np.nan], [1.0, 2.5]])
    assert as_floats([], ["a", "b"]).shape == (0, 2)
    with pytest.raises(ValueError, match="b: online value 'cheap' is not a number"):
        as_floats([(1, 2), (3, "cheap")], ["a", "b"])
