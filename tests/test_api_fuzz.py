"""Schemathesis fuzzes every operation of the API's OpenAPI spec over real HTTP.

The API runs on the real stack (tansu, redis-server, MLflow, ranker versions loaded by
alias, features in Redis) beside a real drift monitor (``/monitoring/metrics`` relays it).
Schemathesis reads ``/openapi.json`` from the running API and sends, for each operation,
the spec's examples, its coverage cases (boundaries, missing and wrong-typed values) and
up to ``EXAMPLES`` generated requests, valid and invalid, with a token holding every scope.
Every built-in check applies (no 5xx; status codes, content types and bodies as documented;
auth enforced where the spec says so; invalid input refused), plus one of ours: a 4xx says
why (a ``detail`` body). No request may fail to get an answer, and the API must still serve
afterwards. The totals (operations, requests, statuses) are printed and written to
``test-artifacts/api-fuzz.json``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from api.security import ADMIN, EVENTS, READ, make_token
from monitoring.service import MonitorService
from recsys.stack import free_port
from tests import test_api_support as support
from tests.test_api_support import ApiModels, ApiServer, api_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
api_models = support.api_models  # the shared fixture

EXAMPLES = 100  # generated requests per operation (valid and invalid), besides the coverage cases
REPORT = Path(__file__).resolve().parents[1] / "test-artifacts" / "api-fuzz.json"


@dataclass
class Tally:
    """What the fuzzer sent and what came back, per operation."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    stop_reason: str | None = None

    def add(self, label: str, status: int) -> None:
        self.statuses.setdefault(label, Counter())[status] += 1

    def summary(self) -> dict[str, Any]:
        total: Counter[int] = Counter()
        for counts in self.statuses.values():
            total.update(counts)
        return {"operations": len(self.statuses), "requests": sum(total.values()),
                "statuses": {str(k): v for k, v in sorted(total.items())},
                "server_errors": sum(v for k, v in total.items() if k >= 500),
                "per_operation": {label: {str(k): v for k, v in sorted(c.items())}
                                  for label, c in sorted(self.statuses.items())}}


def reason_of(body: bytes) -> str | None:
    """The reason a rejection gives: FastAPI's ``detail`` (text, or problems naming fields)."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    if isinstance(detail, str) and detail.strip():
        return detail
    if isinstance(detail, list) and detail and all(
            isinstance(p, dict) and p.get("message") and "field" in p for p in detail):
        return "; ".join(f"{p['field']}: {p['message']}" for p in detail)
    return None


def rejection_has_a_reason(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis check: a 4xx answers in JSON with a non-empty reason."""
    if 400 <= response.status_code < 500 and reason_of(response.content) is None:
        raise AssertionError(f"{response.status_code} without a reason: {response.content[:200]!r}")
    return None


schemathesis.check(rejection_has_a_reason)


def fuzz(schema: Any, tally: Tally) -> list[str]:
    """Run schemathesis's engine (what ``schemathesis run`` runs) on ``schema``; the problems."""
    from schemathesis.engine import Status, events

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        tally.add(case.operation.label, response.status_code)

    problems: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                problems += [f"{event.label} [{event.phase.value}] {n.name}: "
                             f"{n.failure_info.failure.title}: {n.failure_info.failure.message}\n"
                             f"    {n.failure_info.code_sample}"
                             for n in nodes if n.status == Status.FAILURE and n.failure_info]
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {type(event.value).__name__}: {event.value}")
        elif isinstance(event, events.FatalError):
            problems.append(f"schemathesis failed: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            tally.stop_reason = event.stop_reason.value
    return problems


@pytest.fixture(scope="module")
def fuzzed_api(api_models: ApiModels) -> Iterator[ApiServer]:
    """The API on the real stack, with a real monitor behind ``/monitoring/metrics``."""
    settings = api_settings(api_models.settings, monitor_port=free_port(),
                            monitor_consumer_group=f"fuzz-monitor-{uuid.uuid4().hex[:8]}")
    monitor = MonitorService(settings)
    monitor.start_http()
    consumer = threading.Thread(target=monitor.run, daemon=True)
    consumer.start()
    server = ApiServer(settings).__enter__()
    try:
        server.wait_ready()
        yield server
    finally:
        server.__exit__(None, None, None)
        monitor.stop()
        consumer.join(timeout=30)
        monitor.close()


def test_every_operation_survives_schemathesis(fuzzed_api: ApiServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token(fuzzed_api.settings, [READ, EVENTS, ADMIN], subject="fuzzer")
    config = schemathesis.Config.from_dict({
        "seed": 20261123,  # reproducible: a failure here fails the same way again
        "headers": {"Authorization": f"Bearer {token}"},
        "request-timeout": 30,
        "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": {"rejection_has_a_reason": {"enabled": True},
                   # over api_max_batch_events (the spec's maxItems) is a 413, as documented
                   "negative_data_rejection": {"expected-statuses": [
                       400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]}},
        # rules JSON Schema cannot state (an event's ts within [1995, now + 5 min], min_price
        # <= max_price) make some schema-valid bodies rightly a 422
        "operations": [{"include-path": ["/events", "/recommendations"],
                        "checks": {"positive_data_acceptance": {"enabled": False}}}],
    })
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.url}/openapi.json", config=config)
    tally = Tally()
    started = time.monotonic()
    problems = fuzz(schema, tally)
    summary = {**tally.summary(), "seconds": round(time.monotonic() - started, 1)}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({**summary, "problems": problems}, indent=2))
    line = (f"schemathesis {schemathesis.__version__}: {summary['operations']} operations, "
            f"{summary['requests']} requests, statuses {summary['statuses']}, "
            f"5xx {summary['server_errors']}, {summary['seconds']} s, stop: {tally.stop_reason} "
            f"(details: {REPORT})")
    with capsys.disabled():  # shown in every run, for the record
        print(f"\n{line}")

    assert not problems, "\n".join(problems[:20])
    assert tally.stop_reason == "completed"
    per_operation = summary["per_operation"]
    with_inputs = {f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items()
                   for method, op in item.items() if op.get("parameters") or "requestBody" in op}
    assert len(per_operation) >= 11 and set(per_operation) == {
        result.ok().label for result in schema.get_all_operations()}
    assert summary["server_errors"] == 0
    for label, counts in per_operation.items():  # each was reached, not only refused
        assert any(code.startswith("2") for code in counts), (label, counts)
        if label in with_inputs:
            assert sum(counts.values()) >= EXAMPLES, (label, counts)
    # the API survived it
    assert fuzzed_api.thread.is_alive()
    with fuzzed_api.client() as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").status_code == 200
