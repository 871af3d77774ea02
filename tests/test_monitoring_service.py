"""The monitor service in-process against the real broker: clickstream in, CTR out on
/metrics; malformed records counted; a clean stop."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from feature_repo.events import ClickstreamEvent
from monitoring import contract as c
from monitoring.service import MonitorService
from recsys.kafka_io import ensure_topics, make_producer
from recsys.settings import Settings
from recsys.stack import free_port
from tests.test_alerts_integration import gauge, wait_for
from tests.test_monitoring_drift import StaticBaselines

pytestmark = pytest.mark.integration


def clicks_and_impressions(now: datetime) -> list[bytes]:
    out = []
    for r in range(20):  # 20 responses x 5 items = 100 impressions, 8 clicked
        for i in range(5):
            out.append(ClickstreamEvent(
                event_id=uuid.uuid4().hex, user_id=f"u{r}", item_id=f"i{i}",
                event_type="impression", ts=now, request_id=f"req-{r}", model_version="5",
                context={"arm": "challenger"},
            ).to_json_bytes())
    for r in range(8):
        out.append(ClickstreamEvent(event_id=uuid.uuid4().hex, user_id=f"u{r}", item_id="i0",
                                    event_type="click", ts=now, request_id=f"req-{r}"
                                    ).to_json_bytes())
    out.append(ClickstreamEvent(event_id=uuid.uuid4().hex, user_id="u1", item_id="i1",
                                event_type="purchase", ts=now, request_id="req-1").to_json_bytes())
    return out


def test_monitor_service_consumes_kafka_and_serves_ctr(stack_settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = stack_settings.model_copy(update={
        "clickstream_topic": f"cs-{tag}", "serving_log_topic": f"log-{tag}",
        "monitor_consumer_group": f"monitor-{tag}", "monitor_port": free_port(),
        "monitor_eval_interval_s": 0.2, "topic_partitions": 1})
    ensure_topics(settings, [settings.clickstream_topic, settings.serving_log_topic])
    producer = make_producer(settings)
    for raw in clicks_and_impressions(datetime.now(UTC)):
        producer.send(settings.clickstream_topic, raw)
    producer.send(settings.clickstream_topic, b"{not json")
    producer.send(settings.serving_log_topic, b'{"request_id": 1}')
    producer.flush()
    producer.close()

    service = MonitorService(settings, StaticBaselines({}))
    port = service.start_http()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        labels = {"model_version": "5", "arm": "challenger"}
        wait_for(lambda: gauge(httpx.get(url).text, c.MONITOR_WINDOW_IMPRESSIONS, **labels) == 100
                 and gauge(httpx.get(url).text, c.MONITOR_CTR, **labels) == 0.09, 60,
                 "CTR of version 5 on /metrics", 0.2)
        text = httpx.get(url).text
        assert gauge(text, c.MONITOR_CONVERSION, **labels) == 0.01
        assert gauge(text, c.MONITOR_MALFORMED, source="clickstream", reason="invalid_event") == 1
        assert gauge(text, c.MONITOR_MALFORMED, source="serving_log",
                     reason="invalid_record") == 1
        assert gauge(text, c.MONITOR_RECORDS, source="clickstream", outcome="impression") == 100
    finally:
        started = time.monotonic()
        service.stop()
        thread.join(timeout=15)
        service.close()
    assert not thread.is_alive() and time.monotonic() - started < 15
