"""Property-based fuzzing of the clickstream event parser (hypothesis).

Whatever bytes or JSON arrive, ``parse_event`` either returns a valid event or
raises ``EventValidationError`` whose every problem names a field of the
contract (or ``$`` for the document) and says why. Valid events survive a
round trip through their own JSON unchanged. Each property prints how many
inputs it tried and how many were rejected, so CI logs carry the counts.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_repo.events import (
    EARLIEST_EVENT_TIME,
    EVENT_TYPES,
    ClickstreamEvent,
    EventValidationError,
    parse_event,
)

FIELDS = set(ClickstreamEvent.model_fields)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

ids = st.text(alphabet=string.ascii_letters + string.digits + "_.:@-", min_size=1, max_size=64)
finite_scalars = (st.none() | st.booleans() | st.integers()
                  | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80))
json_scalars = finite_scalars | st.floats()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=12,
)
event_times = st.datetimes(min_value=EARLIEST_EVENT_TIME.replace(tzinfo=None),
                           max_value=datetime(2026, 1, 1), timezones=st.just(UTC))


@st.composite
def valid_events(draw: st.DrawFn) -> dict:
    event = {
        "event_id": draw(ids), "user_id": draw(ids), "item_id": draw(ids),
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "ts": draw(event_times).isoformat(),
    }
    optional = {
        "session_id": ids, "request_id": ids,
        "model_version": st.text(max_size=64),
        "price": st.floats(min_value=0, max_value=1e9, allow_nan=False),
        "context": st.dictionaries(st.text(max_size=16), finite_scalars, max_size=5),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    return event


class Tally:
    def __init__(self, name: str) -> None:
        self.name, self.counts = name, Counter()

    def report(self) -> None:
        total = sum(self.counts.values())
        print(f"\nfuzz {self.name}: {total} inputs, " + ", ".join(
            f"{k} {v}" for k, v in sorted(self.counts.items())))


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """One counter per test, shared by all its examples (hence the suppressed health check)."""
    t = Tally(request.node.name)
    yield t
    t.report()
    assert sum(t.counts.values()) > 0


def check(raw: bytes | str | dict, tally: Tally) -> ClickstreamEvent | None:
    """Parse; assert the only failure mode is a field-named validation error."""
    try:
        event = parse_event(raw)
    except EventValidationError as exc:
        assert exc.problems, "a rejection without a reason"
        for problem in exc.problems:
            assert problem.message.strip(), problem
            top = problem.field.split(".")[0]
            assert top == "$" or top in FIELDS or problem.field in _unknown_keys(raw), problem
        tally.counts["rejected"] += 1
        return None
    tally.counts["accepted"] += 1
    return event


def _unknown_keys(raw: bytes | str | dict) -> set[str]:
    """Keys of a decoded object that are not fields (reported as 'extra' by name)."""
    try:
        obj = json.loads(raw) if isinstance(raw, bytes | str) else raw
    except (ValueError, UnicodeDecodeError):
        return set()
    return {str(k) for k in obj} - FIELDS if isinstance(obj, dict) else set()


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(raw: bytes, tally: Tally) -> None:
    check(raw, tally)


@FUZZ
@given(value=json_values)
def test_arbitrary_json_documents_are_rejected_with_reasons(value: object, tally: Tally) -> None:
    assert check(json.dumps(value), tally) is None  # no random document is a valid event


@FUZZ
@given(event=valid_events(), field=st.sampled_from(sorted(FIELDS)), value=json_values)
def test_one_corrupted_field_is_named_in_the_rejection(event: dict, field: str, value: object,
                                                       tally: Tally) -> None:
    event[field] = value
    try:
        parse_event(json.dumps(event))
    except EventValidationError as exc:
        assert any(p.field.split(".")[0] == field for p in exc.problems), exc.problems
        tally.counts["rejected"] += 1
    else:
        tally.counts["accepted"] += 1  # the random value happened to be valid there


@FUZZ
@given(event=valid_events())
def test_valid_events_round_trip_unchanged(event: dict, tally: Tally) -> None:
    parsed = check(json.dumps(event), tally)
    assert parsed is not None
    assert parse_event(parsed.to_json_bytes()) == parsed


@FUZZ
@given(event=valid_events(), skew=st.integers(min_value=6, max_value=10**6))
def test_far_future_timestamps_are_rejected_on_ts(event: dict, skew: int, tally: Tally) -> None:
    event["ts"] = (datetime.now(UTC) + timedelta(minutes=skew)).isoformat()
    with pytest.raises(EventValidationError) as info:
        parse_event(event)
    assert [p.field for p in info.value.problems] == ["ts"]
    tally.counts["rejected"] += 1


def test_non_finite_context_values_are_rejected() -> None:
    # Found by the round-trip property: Infinity was accepted, then written back as null.
    raw = ('{"event_id": "e", "user_id": "u", "item_id": "i", "event_type": "view",'
           ' "ts": "2020-01-01T00:00:00+00:00", "context": {"dwell": Infinity}}')
    with pytest.raises(EventValidationError) as info:
        parse_event(raw)
    assert {p.field.split(".")[0] for p in info.value.problems} == {"context"}
