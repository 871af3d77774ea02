"""The monitor service: Prometheus ``/metrics`` over HTTP plus the Kafka consumer loop.

It consumes the clickstream and the serving-log topic as one consumer-group member
(manual commits, short group timeouts for tansu), recomputes every metric each
``monitor_eval_interval_s`` and keeps serving ``/metrics`` while the broker or MLflow
is away. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from kafka.errors import KafkaError
from prometheus_client import start_http_server

from monitoring.metrics import MonitorMetrics
from monitoring.model_baselines import MlflowBaselines
from monitoring.monitor import BaselineSource, Monitor
from recsys.kafka_io import ensure_topics, make_consumer
from recsys.settings import Settings
from recsys.stack.process import port_open

log = logging.getLogger(__name__)
RETRY_S = 2.0


class MonitorService:
    def __init__(self, settings: Settings, baselines: BaselineSource | None = None):
        self.settings = settings
        self.metrics = MonitorMetrics()
        self._own_baselines = baselines is None
        self.baselines = baselines or MlflowBaselines(
            settings.mlflow_tracking_uri, settings.registered_model_name,
            settings.monitor_baseline_retry_s)
        self.monitor = Monitor(settings, self.baselines, self.metrics)
        self.stop_event = threading.Event()
        self._server = None

    @property
    def topics(self) -> tuple[str, str]:
        return self.settings.clickstream_topic, self.settings.serving_log_topic

    def start_http(self) -> int:
        """Serve ``/metrics``; returns the bound port."""
        self._server, _ = start_http_server(self.settings.monitor_port, self.settings.monitor_host,
                                            registry=self.metrics.registry)
        return self._server.server_port

    def _connect(self):
        while not self.stop_event.is_set():
            if not port_open(self.settings.broker_host, self.settings.broker_port):
                log.warning("broker %s not reachable; retrying in %.0f s",
                            self.settings.bootstrap_servers, RETRY_S)
                self.stop_event.wait(RETRY_S)
                continue
            try:
                ensure_topics(self.settings, self.topics)
                return make_consumer(self.settings, *self.topics,
                                     group_id=self.settings.monitor_consumer_group)
            except (KafkaError, OSError) as exc:
                log.warning("broker not reachable (%s); retrying in %.0f s", exc, RETRY_S)
                self.stop_event.wait(RETRY_S)
        return None

    def run(self) -> None:
        """Consume and evaluate until :meth:`stop`; the HTTP server must be started."""
        clickstream, serving_log = self.topics
        consumer = self._connect()
        last_eval = 0.0
        try:
            while not self.stop_event.is_set() and consumer is not None:
                try:
                    polled = consumer.poll(timeout_ms=500, max_records=20_000)
                    for partition, records in polled.items():
                        handle = (self.monitor.on_clickstream if partition.topic == clickstream
                                  else self.monitor.on_serving_log)
                        for record in records:
                            self._handle(handle, record.value, partition.topic == serving_log)
                    if polled:
                        consumer.commit()
                except Exception as exc:  # broker trouble: keep serving /metrics, retry
                    log.warning("consumer error (%r); retrying in %.0f s", exc, RETRY_S)
                    self.stop_event.wait(RETRY_S)
                if time.monotonic() - last_eval >= self.settings.monitor_eval_interval_s:
                    try:
                        self.monitor.evaluate()
                    except Exception:  # a bug must not stop the consumer; it is logged
                        log.exception("evaluation failed")
                    last_eval = time.monotonic()
        finally:
            if consumer is not None:
                consumer.close()

    def _handle(self, handle, value: bytes | None, serving_log: bool) -> None:
        try:
            handle(value or b"")
        except Exception:  # never lose the loop to one record
            log.exception("record not processed")
            source = "serving_log" if serving_log else "clickstream"
            self.metrics.malformed.labels(source, "internal_error").inc()

    def stop(self, *_: object) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._own_baselines and isinstance(self.baselines, MlflowBaselines):
            self.baselines.close()


def main(settings: Settings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    service = MonitorService(settings or Settings())
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    port = service.start_http()
    log.info("monitor: /metrics on %s:%d; consuming %s", service.settings.monitor_host, port,
             ", ".join(service.topics))
    try:
        service.run()
    finally:
        service.close()
        log.info("monitor stopped")
