"""The clickstream event contract: valid events round-trip, every bad field is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from feature_repo.events import (
    SCHEMA_PATH,
    ClickstreamEvent,
    EventValidationError,
    event_json_schema,
    new_event_id,
    parse_event,
)


def valid(**overrides: object) -> dict:
    event = {
        "event_id": "e-1",
        "user_id": "u42",
        "item_id": "i7",
        "event_type": "purchase",
        "ts": "2026-03-01T12:00:00Z",
        "session_id": "s1",
        "request_id": "r-9",
        "model_version": "3",
        "price": 19.99,
        "context": {"device": "ios", "position": 2},
    }
    event.update(overrides)
    return event


def problems(raw: object) -> dict[str, str]:
    with pytest.raises(EventValidationError) as info:
        parse_event(raw)
    return {p.field: p.message for p in info.value.problems}


def test_valid_event_round_trips_through_json() -> None:
    event = parse_event(json.dumps(valid()).encode())
    again = parse_event(event.to_json_bytes())
    assert again == event
    assert event.ts == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert event.event_type == "purchase"


def test_optional_fields_may_be_omitted_and_offsets_are_normalised_to_utc() -> None:
    event = parse_event({"event_id": new_event_id(), "user_id": "u", "item_id": "i",
                         "event_type": "view", "ts": "2026-03-01T14:00:00+02:00"})
    assert event.ts == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert b"price" not in event.to_json_bytes()


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"event_type": "like"}, "event_type", "view"),
        ({"user_id": ""}, "user_id", "pattern"),
        ({"item_id": "has space"}, "item_id", "pattern"),
        ({"user_id": "u" * 65}, "user_id", "pattern"),
        ({"price": -1}, "price", "greater than or equal to 0"),
        ({"price": "NaN"}, "price", "finite"),
        ({"price": False}, "price", "not a boolean"),  # the stream job dead-letters it too
        ({"ts": 1_700_000_000}, "ts", "not a number"),
        ({"ts": "2026-03-01T12:00:00"}, "ts", "timezone"),
        ({"ts": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "ts", "future"),
        ({"ts": "1980-01-01T00:00:00Z"}, "ts", "before 1995"),
        ({"ts": "yesterday"}, "ts", "datetime"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"context": {str(i): i for i in range(40)}}, "context", "at most 32"),
    ],
)
def test_each_bad_field_is_named(change: dict, field: str, fragment: str) -> None:
    found = problems(valid(**change))
    assert field in found, found
    assert fragment in found[field]


def test_missing_ids_are_each_reported() -> None:
    raw = valid()
    for key in ("event_id", "user_id", "item_id"):
        del raw[key]
    assert set(problems(raw)) == {"event_id", "user_id", "item_id"}


def test_all_problems_come_back_at_once() -> None:
    found = problems(valid(event_type="like", price=-5, user_id=""))
    assert {"event_type", "price", "user_id"} <= set(found)


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", "[1, 2]", "42"])
def test_non_objects_are_rejected_at_the_root(raw: bytes | str) -> None:
    assert set(problems(raw)) == {"$"}


def test_events_are_immutable() -> None:
    event = ClickstreamEvent.model_validate(valid())
    with pytest.raises(ValueError, match="frozen"):
        event.price = 0.0  # type: ignore[misc]


def test_checked_in_json_schema_matches_the_model() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == json.loads(
        json.dumps(event_json_schema(), sort_keys=True)
    ), "run `recsys schema --out feature_repo/schemas/clickstream_event.schema.json`"
    schema = event_json_schema()
    assert set(schema["required"]) == {"event_id", "user_id", "item_id", "event_type", "ts"}
    assert schema["additionalProperties"] is False
