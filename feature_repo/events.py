"""The clickstream event contract: one Pydantic model, its JSON schema, its parser.

Producers build :class:`ClickstreamEvent` objects (so an invalid event cannot be
sent), consumers call :func:`parse_event` on raw bytes and get either a valid
event or an :class:`EventValidationError` that lists *every* problem with the
name of the field it concerns.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    ValidationError,
)

SCHEMA_PATH = Path(__file__).parent / "schemas" / "clickstream_event.schema.json"

#: Events more than this far in the future (producer clock skew) are rejected.
MAX_FUTURE_SKEW = timedelta(minutes=5)
#: Nothing in our data sets predates this (MovieLens 100K starts in 1997).
EARLIEST_EVENT_TIME = datetime(1995, 1, 1, tzinfo=UTC)
MAX_CONTEXT_KEYS = 32


class EventType(StrEnum):
    """Interaction kinds, in increasing order of intent."""

    IMPRESSION = "impression"
    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

#: Ids are 1-64 characters of letters, digits and ``_.:@-`` (also checked on whole files).
ID_PATTERN = r"^[A-Za-z0-9_.:@\-]{1,64}$"
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ContextValue = str | int | FiniteFloat | bool | None


def _check_event_time(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if value < EARLIEST_EVENT_TIME:
        raise ValueError(f"timestamp is before {EARLIEST_EVENT_TIME.date().isoformat()}")
    if value > datetime.now(UTC) + MAX_FUTURE_SKEW:
        raise ValueError("timestamp is in the future (more than 5 minutes ahead of now)")
    return value


def _no_number(value: object) -> object:
    """``ts`` is ISO 8601 text (or a datetime in Python), never epoch numbers, which the
    stream job's parser does not read either."""
    if isinstance(value, int | float):
        raise ValueError("timestamp must be an ISO 8601 string with a UTC offset, not a number")
    return value


def _no_bool(value: object) -> object:
    """A price is a number (or numeric text, as the stream job reads it), never a boolean."""
    if isinstance(value, bool):
        raise ValueError("price must be a number, not a boolean")
    return value


def _check_context(value: dict[str, ContextValue] | None) -> dict[str, ContextValue] | None:
    if value is not None and len(value) > MAX_CONTEXT_KEYS:
        raise ValueError(f"context has {len(value)} keys; at most {MAX_CONTEXT_KEYS} allowed")
    return value


class ClickstreamEvent(BaseModel):
    """One user interaction with one item."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    event_id: Identifier = Field(description="Unique id; consumers de-duplicate on it.")
    user_id: Identifier
    item_id: Identifier
    event_type: EventType
    ts: Annotated[AwareDatetime, BeforeValidator(_no_number),
                  AfterValidator(_check_event_time)] = Field(
        description="Event time, ISO 8601 with a UTC offset."
    )
    session_id: Identifier | None = None
    request_id: Identifier | None = Field(
        None, description="Id of the recommendation response this event answers, if any."
    )
    model_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    price: Annotated[float | None, BeforeValidator(_no_bool)] = Field(None, ge=0,
                                                                      allow_inf_nan=False)
    context: Annotated[dict[str, ContextValue] | None, AfterValidator(_check_context)] = None

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class FieldProblem(BaseModel):
    """One reason an event (or a record of a file) was rejected."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class EventValidationError(ValueError):
    """Raised with every problem of an invalid event, each naming its field."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def problems_from_validation_error(error: ValidationError) -> list[FieldProblem]:
    """Flatten Pydantic's errors into field-named problems."""
    problems = []
    for err in error.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "$"
        message = err["msg"].removeprefix("Value error, ")
        problems.append(FieldProblem(field=field, message=message))
    return problems


def parse_event(raw: bytes | str | dict[str, Any]) -> ClickstreamEvent:
    """Validate raw JSON (or an already decoded object) into an event."""
    if isinstance(raw, bytes | str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = FieldProblem(field="$", message=f"invalid JSON: {exc}")
            raise EventValidationError([problem]) from None
    if not isinstance(raw, dict):
        raise EventValidationError(
            [FieldProblem(field="$", message=f"expected a JSON object, got {type(raw).__name__}")]
        )
    try:
        return ClickstreamEvent.model_validate(raw)
    except ValidationError as exc:
        raise EventValidationError(problems_from_validation_error(exc)) from None


def new_event_id() -> str:
    return uuid.uuid4().hex


def event_json_schema() -> dict[str, Any]:
    schema = ClickstreamEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "clickstream_event.schema.json"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n")
    return path
