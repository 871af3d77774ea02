"""The outbox in a child process, so Kafka work never takes the API's GIL.

Building a response's eleven records (validated events, the serving log as JSON) and
producing them cost about 1 ms of CPU (``bench/bench_publisher.py``), which in the API
process would be taken from the event loop. Here
the API only pickles a :class:`~api.serving_log.ServedResponse` (or the records of a
``POST /events``) into a pipe; a child process runs the same :class:`~api.outbox.Outbox`
(buffer, circuit breaker, at-least-once retries) and reports back: acknowledgements of
waiting requests, counts per outcome, and whether the broker answers.

The parent keeps the buffer bound itself (records handed over and not yet published or
rejected), so a full buffer still means an immediate 503 and never a blocked event loop.
A child that dies is restarted; what it held is counted as rejected and logged.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import pickle
import threading
import time
from collections import deque
from typing import Any

from api.metrics import ApiMetrics
from api.outbox import Countdown, Outbox, Ticket, default_producer_factory
from api.serving_log import Record, ServedResponse
from monitoring.contract import API_EVENTS
from recsys.settings import Settings

log = logging.getLogger(__name__)
REPORT_S = 0.05  # how often the child reports counts and state
OUTCOMES = ("published", "buffered", "rejected")
STOP = -1  # marks the stop message in the parent's outgoing queue
WRITE_BATCH = 64  # messages sent to the child in one write, at most


# --- child ------------------------------------------------------------------------------


class _RemoteTicket(Countdown):
    """The child's stand-in for a waiting request's :class:`~api.outbox.Ticket`."""

    def __init__(self, ticket_id: int, count: int, send: Any) -> None:
        super().__init__(count)
        self.ticket_id = ticket_id
        self._send = send

    def done(self, ok: bool) -> None:
        self._send(("ticket", self.ticket_id, ok))


def _counts(metrics: ApiMetrics) -> dict[str, float]:
    """Records per outcome so far (from the events counter alone: collecting the whole
    registry every report was ~5 % of this process's CPU)."""
    counts = dict.fromkeys(OUTCOMES, 0.0)
    for sample in metrics.events.collect()[0].samples:
        outcome = sample.labels.get("outcome")
        if sample.name == API_EVENTS and outcome in counts:
            counts[outcome] = sample.value
    return counts


def child_main(inbox: Any, outbox_conn: Any, settings: Settings) -> None:
    """Entry point of the publisher process (``settings`` arrive pickled)."""
    from api.breaker import CircuitBreaker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s publisher: "
                        "%(message)s")
    metrics = ApiMetrics()
    breaker = CircuitBreaker("broker", settings.api_breaker_failures,
                             settings.api_breaker_reset_s)
    outbox = Outbox(10**9, breaker, metrics, default_producer_factory(settings),
                    (settings.serving_log_topic, settings.clickstream_topic))
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            outbox_conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    stop = threading.Event()

    def report() -> None:
        last = _counts(metrics)
        state = None
        while True:
            stopping = stop.wait(REPORT_S)
            now = _counts(metrics)
            delta = {o: now[o] - last[o] for o in OUTCOMES}
            current = (outbox.connected, breaker.state, breaker.last_error)
            if any(delta.values()) or current != state:
                send(("report", delta, *current))
                last, state = now, current
            if stopping:
                return

    outbox.start()
    reporter = threading.Thread(target=report, name="publisher-report", daemon=True)
    reporter.start()
    def handle(message: tuple) -> float | None:
        """Act on one message; the drain time when it is the stop message."""
        kind = message[0]
        if kind == "served":
            outbox.offer_served(message[1])
        elif kind == "records":
            _, ticket_id, records = message
            ticket = _RemoteTicket(ticket_id, len(records), send) if ticket_id else None
            outbox.offer(records, ticket)
        elif kind == "stop":
            return float(message[1])
        return None

    drain_s: float | None = None
    try:
        while drain_s is None:
            message = pickle.loads(inbox.recv_bytes())
            if message[0] == "batch":  # several messages, in order, in one write
                for inner in message[1]:
                    drain_s = handle(pickle.loads(inner))
                    if drain_s is not None:
                        break
            else:
                drain_s = handle(message)
    except (EOFError, OSError):
        pass  # the API went away
    finally:
        outbox.stop(5.0 if drain_s is None else drain_s)
        stop.set()
        reporter.join(timeout=2)  # its last report carries the final counts
        with contextlib.suppress(OSError, ValueError):
            send(("final",))


# --- parent -----------------------------------------------------------------------------


class ProcessOutbox:
    """The :class:`~api.outbox.Outbox` interface, backed by the publisher process."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.capacity = settings.api_event_buffer_size
        self.metrics = metrics
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Condition()
        self._pending = 0  # handed to the child, not yet published or rejected
        self._outgoing: deque[tuple[int, bytes]] = deque()  # (records, pickled message)
        self._tickets: dict[int, Ticket] = {}
        self._ids = itertools.count(1)
        self._connected = False
        self.breaker_state = "closed"
        self.last_error: str | None = "the publisher process is starting"
        self._stopping = threading.Event()
        self._process: Any = None
        self._to_child: Any = None
        self._threads: list[threading.Thread] = []

    # --- request side -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def __len__(self) -> int:
        return self._pending

    def offer(self, records: list[Record], ticket: Ticket | None = None) -> bool:
        ticket_id = 0
        if ticket is not None:
            ticket_id = next(self._ids)
            self._tickets[ticket_id] = ticket
        if not self._admit(len(records), ("records", ticket_id, records)):
            self._tickets.pop(ticket_id, None)
            return False
        return True

    def offer_served(self, served: ServedResponse) -> bool:
        return self._admit(served.record_count, ("served", served))

    def _admit(self, n: int, message: tuple) -> bool:
        with self._lock:
            if self._pending + n > self.capacity:
                self.metrics.events.labels("rejected").inc(n)
                return False
            self._pending += n
            self._outgoing.append((n, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)))
            self._lock.notify()
        return True

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._spawn()
        writer = threading.Thread(target=self._write, name="publisher-writer", daemon=True)
        writer.start()
        self._threads.append(writer)

    def _spawn(self) -> None:
        to_child_r, to_child_w = self._ctx.Pipe(duplex=False)
        from_child_r, from_child_w = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=child_main, args=(to_child_r, from_child_w,
                                                             self.settings),
                                    name="recsys-publisher", daemon=True)
        process.start()
        to_child_r.close()
        from_child_w.close()
        self._process, self._to_child = process, to_child_w
        reader = threading.Thread(target=self._read, args=(from_child_r, process),
                                  name="publisher-reader", daemon=True)
        reader.start()
        self._threads.append(reader)

    def stop(self, drain_s: float = 5.0) -> int:
        self._stopping.set()
        with self._lock:
            self._outgoing.append((STOP, pickle.dumps(("stop", drain_s))))
            self._lock.notify()
        if self._process is not None:
            self._process.join(timeout=drain_s + 15)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        left = self._pending
        if left:
            log.error("publisher: %d Kafka records were not delivered before shutdown", left)
        return left

    # --- threads ----------------------------------------------------------------------
    def _write(self) -> None:
        while True:
            with self._lock:
                while not self._outgoing:
                    self._lock.wait(0.5)
                taken: list[tuple[int, bytes]] = []
                while self._outgoing and len(taken) < WRITE_BATCH:
                    taken.append(self._outgoing.popleft())
                    if taken[-1][0] == STOP:
                        break
            # what queued while the child read the last write goes as one write: one
            # syscall and one wake-up of the child instead of one per response
            payload = (taken[0][1] if len(taken) == 1 else
                       pickle.dumps(("batch", [p for _, p in taken]),
                                    protocol=pickle.HIGHEST_PROTOCOL))
            stopping = taken[-1][0] == STOP
            try:
                self._to_child.send_bytes(payload)
            except (OSError, ValueError):  # the child died (it is being restarted)
                n = sum(k for k, _ in taken if k != STOP)
                if n:
                    with self._lock:
                        self._pending = max(0, self._pending - n)
                    self.metrics.events.labels("rejected").inc(n)
                    log.error("publisher process unavailable: %d records not delivered", n)
            if stopping:
                return

    def _read(self, conn: Any, process: Any) -> None:
        while True:
            try:
                message = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "report":
                _, delta, connected, state, error = message
                self._apply(delta)
                self._connected, self.breaker_state, self.last_error = connected, state, error
                self.metrics.set_circuit("broker", state)
            elif kind == "ticket":
                ticket = self._tickets.pop(message[1], None)
                if ticket is not None:
                    self._resolve(ticket, message[2])
            elif kind == "final":
                break
        conn.close()
        process.join(timeout=5)
        if not self._stopping.is_set():
            self._child_died(process)

    def _resolve(self, ticket: Ticket, ok: bool) -> None:
        ticket.loop.call_soon_threadsafe(ticket._resolve, ok)

    def _apply(self, delta: dict[str, float]) -> None:
        for outcome, n in delta.items():
            if n:
                self.metrics.events.labels(outcome).inc(n)
        resolved = int(delta.get("published", 0) + delta.get("rejected", 0))
        if resolved:
            with self._lock:
                self._pending = max(0, self._pending - resolved)
        self.metrics.event_buffer.set(self._pending)

    def _child_died(self, process: Any) -> None:
        with self._lock:
            lost, self._pending = self._pending, 0
        self._connected = False
        self.last_error = f"publisher process exited ({process.exitcode}); restarted"
        if lost:
            log.error("publisher process exited with %d records not delivered", lost)
            self.metrics.events.labels("rejected").inc(lost)
        for ticket in list(self._tickets.values()):
            self._resolve(ticket, False)
        self._tickets.clear()
        time.sleep(1.0)
        if not self._stopping.is_set():
            self._spawn()
