"""The API's outbox to Kafka: a bounded buffer drained by one sender thread.

Request handlers never touch the Kafka client (its calls can block for seconds while a
broker is away): they :meth:`Outbox.offer` records, which either all fit in the buffer or
are all refused (the caller answers 503 — never a silent drop). The sender thread hands
them to the producer without waiting (the producer batches them, ``linger_ms``); each
record's acknowledgement arrives as a callback. A record that fails goes back to the
front of the buffer and counts as a failure of the broker's circuit breaker, which then
holds the sender back until its next trial. A waiting ``POST /events`` is told when all
of its records are acknowledged (:class:`Ticket`). Records in flight count against the
buffer's capacity.

Delivery is at least once: a record whose acknowledgement was lost is sent again, and
consumers de-duplicate on ``event_id`` (clickstream) or ``request_id`` (serving log).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from kafka.errors import MessageSizeTooLargeError

from api.breaker import CircuitBreaker
from api.metrics import ApiMetrics
from api.serving_log import Record, ServedResponse, build_records
from recsys.settings import Settings

log = logging.getLogger(__name__)
BATCH = 2_000


class Acknowledged(Protocol):
    """Told when each record of a group is delivered (``acked``) or refused (``fail``)."""

    def acked(self, n: int = 1) -> None: ...

    def fail(self) -> None: ...


class _Entry:
    __slots__ = ("record", "served", "ticket", "waited")

    def __init__(self, record: Record | None, ticket: Acknowledged | None, waited: bool,
                 served: ServedResponse | None = None) -> None:
        self.record = record  # None until a served response is turned into records
        self.ticket = ticket
        self.waited = waited  # counted as "buffered" (once per record)
        self.served = served


class Countdown:
    """``count`` records of one request: :meth:`done` once all are acknowledged (True), or
    as soon as one will never be delivered (False). Acks come from sender threads."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()

    def acked(self, n: int = 1) -> None:
        with self._lock:
            self._left -= n
            done = self._left == 0
        if done:
            self.done(True)

    def fail(self) -> None:
        """One of the records will never be delivered: the waiter learns at once."""
        self.done(False)

    def done(self, ok: bool) -> None:
        raise NotImplementedError


class Ticket(Countdown):
    """Resolves an asyncio future once ``count`` records are acknowledged."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        super().__init__(count)
        self.loop = loop
        self.future: asyncio.Future[bool] = loop.create_future()

    def done(self, ok: bool) -> None:
        self.loop.call_soon_threadsafe(self._resolve, ok)

    def _resolve(self, ok: bool = True) -> None:
        if not self.future.done():
            self.future.set_result(ok)


ProducerFactory = Callable[[], Any]


def default_producer_factory(settings: Settings) -> ProducerFactory:
    def make() -> Any:
        from recsys.kafka_io import LibrdkafkaProducer, ensure_topics

        ensure_topics(settings, [settings.clickstream_topic, settings.serving_log_topic])
        # librdkafka, not kafka-python, which builds, checksums and partitions batches in
        # Python: a response's eleven records at 300 responses/s cost 0.40 ms of CPU here,
        # 0.97 ms in kafka-python, 2.3 ms in kafka-python with gzip (bench_publisher.py);
        # uncompressed, as compression was most of the cost.
        # linger: records wait this long to share a batch (fewer produce requests).
        return LibrdkafkaProducer(
            settings, **{"linger.ms": settings.api_kafka_linger_ms,
                         "request.timeout.ms": 3_000, "message.timeout.ms": 5_000,
                         "reconnect.backoff.max.ms": 1_000,
                         "socket.connection.setup.timeout.ms": 3_000})

    return make


class Outbox:
    def __init__(self, capacity: int, breaker: CircuitBreaker, metrics: ApiMetrics,
                 producer_factory: ProducerFactory,
                 topics: tuple[str, str] = ("recommendation-log", "clickstream")) -> None:
        self.capacity = capacity
        self.topics = topics  # (serving log, clickstream) for served responses
        self.breaker = breaker
        self.metrics = metrics
        self._factory = producer_factory
        self._producer: Any = None
        self._broken = False  # the producer failed: replace it at the next trial
        self._queue: deque[_Entry] = deque()
        self._in_flight = 0  # handed to the producer, not yet acknowledged or failed
        self._size = 0  # records queued or in flight (a served response counts its records)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-sender", daemon=True)
        self.sent = 0

    # --- request side ---------------------------------------------------------------
    def offer(self, records: list[Record], ticket: Acknowledged | None = None) -> bool:
        """Queue every record, or none of them (buffer full: the caller answers 503)."""
        return self._offer([_Entry(r, ticket, False) for r in records], len(records))

    def offer_served(self, served: ServedResponse) -> bool:
        """Queue a response's serving log and impressions (built by the sender thread)."""
        return self._offer([_Entry(None, None, False, served)], served.record_count)

    def _offer(self, entries: list[_Entry], n: int) -> bool:
        with self._cond:
            if self._size + n > self.capacity:
                self.metrics.events.labels("rejected").inc(n)
                return False
            waiting = not self.connected
            for entry in entries:
                entry.waited = waiting
            self._queue.extend(entries)
            self._size += n
            self._cond.notify()
        if waiting:
            self.metrics.events.labels("buffered").inc(n)
        return True

    @property
    def last_error(self) -> str | None:
        return self.breaker.last_error

    @property
    def connected(self) -> bool:
        return (self._producer is not None and not self._broken
                and self.breaker.state == "closed")

    def __len__(self) -> int:
        return self._size

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float = 5.0) -> int:
        """Stop after trying to drain for ``drain_s``; returns the records left unsent."""
        deadline = time.monotonic() + drain_s
        while len(self) and time.monotonic() < deadline and self.connected:
            time.sleep(0.05)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=2)  # fails what is still in flight (requeued below)
            except Exception:  # closing a broken client must not fail shutdown
                log.exception("outbox: closing the producer failed")
        left = self._size
        if left:
            log.error("outbox: %d Kafka records could not be delivered before shutdown", left)
            self.metrics.events.labels("rejected").inc(left)
        return left

    # --- sender thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if (self._producer is None or self._broken) and self.breaker.allow():
                self._connect()  # eagerly, so /ready tells whether the broker answers
            with self._cond:
                if not self._queue and not self._stop.is_set():
                    self._cond.wait(0.5)
                self.metrics.event_buffer.set(len(self))
                if not self._queue or self._stop.is_set():
                    continue
            if self._producer is None or self._broken or not self.breaker.allow():
                self._stop.wait(0.05)
                continue
            self._send(self._take(BATCH))

    def _connect(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            try:
                old.close(timeout=0)
            except Exception:  # a broken client: its records were requeued on failure
                log.debug("outbox: closing the old producer failed", exc_info=True)
        try:
            self._producer = self._factory()
        except Exception as exc:  # broker away: the breaker schedules the next try
            self.breaker.failure(exc)
            log.warning("outbox: broker unavailable: %r", exc)
        else:
            self._broken = False
            self.breaker.success()

    def _take(self, n: int) -> list[_Entry]:
        with self._cond:
            taken = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
        batch: list[_Entry] = []
        for entry in taken:
            if entry.served is None:
                batch.append(entry)
                continue
            try:
                records = build_records(entry.served, *self.topics)
            except Exception:  # a bug, not a broker problem: say so, count it, go on
                log.exception("outbox: could not build the records of request %s",
                              entry.served.request_id)
                self.metrics.events.labels("rejected").inc(entry.served.record_count)
                with self._cond:
                    self._size -= entry.served.record_count
                continue
            batch.extend(_Entry(r, None, entry.waited) for r in records)
        with self._cond:
            self._in_flight += len(batch)
        return batch

    def _send(self, batch: list[_Entry]) -> None:
        producer = self._producer
        for k, entry in enumerate(batch):
            record = entry.record
            try:
                future = producer.send(record.topic, key=record.key, value=record.value)
            except MessageSizeTooLargeError as exc:
                self._done(entry, exc)
                continue
            except Exception as exc:  # any client failure: this and the rest wait
                self._failed(batch[k:], exc)
                return
            future.add_callback(self._done, entry)
            future.add_errback(self._done_error, entry)

    # --- acknowledgements (the producer's I/O thread) ---------------------------------
    def _done_error(self, entry: _Entry, error: BaseException) -> None:
        self._done(entry, error)

    def _done(self, entry: _Entry, result: Any) -> None:
        if isinstance(result, MessageSizeTooLargeError):
            with self._cond:
                self._in_flight -= 1
                self._size -= 1
            self._refuse(entry, result)
        elif isinstance(result, BaseException):
            self._failed([entry], result)
        else:
            with self._cond:
                self._in_flight -= 1
                self._size -= 1
            self.sent += 1
            self.metrics.events.labels("published").inc()
            if entry.ticket is not None:
                entry.ticket.acked()
            self.breaker.success()

    def _failed(self, entries: list[_Entry], error: BaseException) -> None:
        fresh = [e for e in entries if not e.waited]
        for entry in fresh:
            entry.waited = True
        if fresh:
            self.metrics.events.labels("buffered").inc(len(fresh))
        with self._cond:
            self._in_flight -= len(entries)
            self._queue.extendleft(reversed(entries))
        if not self._broken:
            log.warning("outbox: Kafka records not acknowledged (%r); holding them", error)
        self._broken = True  # the next trial replaces the producer (and re-creates topics)
        self.breaker.failure(error)

    def _refuse(self, entry: _Entry, error: BaseException) -> None:
        """A record no retry can deliver (too large): counted as rejected, never retried."""
        log.error("outbox: %s record of %d bytes refused by Kafka: %r", entry.record.topic,
                  len(entry.record.value), error)
        self.metrics.events.labels("rejected").inc()
        if entry.ticket is not None:
            entry.ticket.fail()
