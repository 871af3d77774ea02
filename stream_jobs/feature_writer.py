"""Write the Flink job's feature rows into Feast: online (Redis) and offline (Parquet).

Runs in the platform environment (Feast cannot live beside PyFlink)::

    python -m stream_jobs.feature_writer

The job emits upsert records keyed by entity id, at most one per
changed entity and emit interval (see ``job_spec``). Each record is the row as
a CSV line, a newline, and the Redis HSET that writes it into Feast's online store
in Feast's own layout (encoded in the job: ``feast_layout``, ``RowEncoder.java``),
so this writer only forwards bytes. Each poll is a batch: online, the newest
record per entity goes to Redis in one pipelined round trip; rows hold absolute
values, so a replayed batch writes the same values again (idempotent). Offline,
every row is buffered and appended
as one Parquet part per view every ``writer_offline_flush_s``; Kafka offsets
are committed only after that, so a crash replays, never loses.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.specs import (
    CREATED,
    EVENT_TIME,
    OFFLINE_TIME_UNIT,
    ROW_META,
    STREAMS,
    Stream,
    stream_columns,
    views_of,
)
from recsys.kafka_io import make_consumer
from recsys.settings import Settings

log = logging.getLogger(__name__)
N_META = len(ROW_META)
LIST_SEPARATOR = ";"
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string_list": pa.string(),
               "int64_list": pa.string(), "float64_list": pa.string()}
LIST_TYPES = {"string_list": pa.list_(pa.string()), "int64_list": pa.list_(pa.int64()),
              "float64_list": pa.list_(pa.float64())}


@dataclass
class WriterStats:
    rows: int = 0
    online_rows: int = 0
    batches: int = 0
    rejected: int = 0
    offline_parts: int = 0
    #: per stream: the events reflected online (sum over entities of the row's n_events)
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    #: seconds from the newest event's produce time to its entity's row being in Redis
    #: (the most recent rows only: a long-running writer must not grow without bound)
    freshness_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    #: per online row: (stream, entity id, produced ms, written ms) when tracking is on
    written: list[tuple[str, str, int, int]] = field(default_factory=list)


class OfflineBuffer:
    """Rows of each stream, kept as CSV lines until a flush writes Parquet parts."""

    def __init__(self, root):
        self.root = root
        self.lines: dict[Stream, list[bytes]] = defaultdict(list)
        self._part = 0

    def add(self, stream: Stream, line: bytes) -> None:
        self.lines[stream].append(line)

    def __len__(self) -> int:
        return sum(len(v) for v in self.lines.values())

    def flush(self) -> int:
        parts = 0
        for stream, lines in self.lines.items():
            if lines:
                parts += self._write(stream, lines)
        self.lines.clear()
        return parts

    def _write(self, stream: Stream, lines: list[bytes]) -> int:
        columns = stream_columns(stream)
        names = [*ROW_META, *(name for name, _ in columns)]
        types = {"stream": pa.string(), "entity_id": pa.string(), "event_time_ms": pa.int64(),
                 "produced_ms": pa.int64(), "n_events": pa.int64(),
                 **{name: ARROW_TYPES[kind] for name, kind in columns}}
        from pyarrow import csv as pacsv

        table = pacsv.read_csv(
            pa.py_buffer(b"\n".join(lines)),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(column_types=types,
                                                 strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False))
        event_time, created = _stamp(table["event_time_ms"]), _stamp(table["produced_ms"])
        written = 0
        for view in views_of(stream):
            data = {view.key: table["entity_id"]}
            for name, kind in view.fields:
                column = table[view.column(name)]
                if kind in LIST_TYPES:
                    column = _split_lists(column, LIST_TYPES[kind])
                data[name] = column
            data[EVENT_TIME] = event_time
            data[CREATED] = created
            self._atomic_parquet(view.name, pa.table(data))
            written += 1
        return written

    def _atomic_parquet(self, view: str, table: pa.Table) -> None:
        folder = self.root / view
        folder.mkdir(parents=True, exist_ok=True)
        self._part += 1
        name = f"part-{time.time_ns()}-{self._part:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        tmp.rename(folder / name)  # readers never see a half-written part


def _stamp(epoch_ms: pa.ChunkedArray) -> pa.ChunkedArray:
    """Epoch milliseconds as the offline parts' UTC timestamps."""
    return pc.cast(pc.cast(epoch_ms, pa.timestamp("ms", tz="UTC")),
                   pa.timestamp(OFFLINE_TIME_UNIT, tz="UTC"))


def _split_lists(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    empty = pc.equal(column, "")
    split = pc.split_pattern(column, LIST_SEPARATOR)
    split = pc.if_else(empty, pa.scalar([], pa.list_(pa.string())), split)
    return split.cast(kind)


def send_pipelined(client, commands: list[bytes], chunk: int = 2_000) -> None:
    """Send RESP commands on one connection, ``chunk`` at a time; check every reply."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        for start in range(0, len(commands), chunk):
            part = commands[start:start + chunk]
            conn.send_packed_command([b"".join(part)], check_health=False)
            for _ in part:
                conn.read_response()  # raises on an error reply
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


class FeatureWriter:
    def __init__(self, settings: Settings, track_written: bool = False):
        self.settings = settings
        self.stats = WriterStats()
        self.track_written = track_written
        self.offline = OfflineBuffer(settings.offline_store_path)
        self._streams = {stream.encode(): stream for stream in STREAMS}
        self._n: dict[str, dict[bytes, int]] = {stream: {} for stream in STREAMS}
        self._redis = None

    @property
    def redis(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.redis_url)
        return self._redis

    def write(self, records: Iterable[bytes | None], flush_offline: bool = True) -> int:
        """Write one batch of job records online (and buffer their rows offline); returns
        how many were accepted. ``flush_offline`` also writes the Parquet parts."""
        newest: dict[tuple[str, bytes], tuple[bytes, int, bytes, bytes]] = {}
        accepted = 0
        for raw in records:
            if raw is None:  # a tombstone: the job never deletes, nothing to do
                continue
            cut = raw.find(b"\n")
            meta = raw[:cut].split(b",", N_META)
            stream = self._streams.get(meta[0])
            if cut < 0 or stream is None or len(meta) <= N_META - 1 or not raw.startswith(
                    b"*", cut + 1):
                self.stats.rejected += 1
                log.error("not a feature job record: %r", raw[:200])
                continue
            newest[(stream, meta[1])] = (raw, cut, meta[3], meta[4])
            self.offline.add(stream, raw[:cut])
            accepted += 1
        if newest:
            send_pipelined(self.redis, [raw[cut + 1:] for raw, cut, _, _ in newest.values()])
        written_ms = int(time.time() * 1000)
        events = self.stats.events
        for (stream, entity), (_, _, produced, n) in newest.items():
            age_ms = written_ms - int(produced)
            self.stats.freshness_s.append(age_ms / 1000)
            if self.track_written:
                self.stats.written.append((stream, entity.decode(), int(produced), written_ms))
            seen = self._n[stream]
            count = int(n)
            events[stream] += count - seen.get(entity, 0)
            seen[entity] = count
        if flush_offline:
            self.stats.offline_parts += self.offline.flush()
        self.stats.online_rows += len(newest)
        self.stats.rows += accepted
        self.stats.batches += 1
        return accepted

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume the features topic until ``stop`` is set (or idle for ``idle_exit_s``)."""
        stop = stop or threading.Event()
        consumer = make_consumer(self.settings, self.settings.features_topic,
                                 group_id=f"{self.settings.consumer_group}-feature-writer",
                                 fetch_max_wait_ms=min(self.settings.writer_batch_ms, 500),
                                 # kafka-python checks CRC32C in pure Python: ~30 µs a
                                 # record, more than the whole write (TCP checks transfers)
                                 check_crcs=False)
        flush_every = self.settings.writer_offline_flush_s
        last_flush = idle_since = time.monotonic()
        try:
            while not stop.is_set():
                polled = consumer.poll(timeout_ms=self.settings.writer_batch_ms,
                                       max_records=50_000)
                records = [r.value for batch in polled.values() for r in batch]
                due = time.monotonic() - last_flush >= flush_every
                if records:
                    idle_since = time.monotonic()
                    self.write(records, flush_offline=False)
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    return
                if due or (not records and len(self.offline)):
                    self.stats.offline_parts += self.offline.flush()
                    consumer.commit()  # only after online and offline are both written
                    last_flush = time.monotonic()
        finally:
            if len(self.offline):
                self.stats.offline_parts += self.offline.flush()
                consumer.commit()
            consumer.close()

    def run_until(self, done: Callable[[WriterStats], bool], timeout_s: float,
                  still_running: Callable[[], object] = lambda: True,
                  progress: Callable[[int], None] | None = None) -> bool:
        """Consume in a background thread until ``done(stats)``, the timeout passes or
        ``still_running()`` turns false (say, the job died); True if done."""
        stop = threading.Event()
        failure: list[BaseException] = []

        def consume() -> None:
            try:
                self.run(stop)
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        deadline, reported = time.monotonic() + timeout_s, 0
        try:
            while (not done(self.stats) and time.monotonic() < deadline and still_running()
                   and thread.is_alive()):
                time.sleep(0.05)
                if progress and self.stats.rows > reported:
                    progress(self.stats.rows - reported)
                    reported = self.stats.rows
        finally:
            stop.set()
            thread.join(timeout=30)
        if failure:
            raise failure[0]
        if progress and self.stats.rows > reported:
            progress(self.stats.rows - reported)
        return done(self.stats)


def events_reached(expected: dict[str, int]) -> Callable[[WriterStats], bool]:
    """``done`` for run_until: every stream reflects at least its expected events."""
    return lambda stats: all(stats.events[s] >= n for s, n in expected.items())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = FeatureWriter(Settings())
    log.info("feature writer consuming %s", writer.settings.features_topic)
    writer.run(stop)
    log.info("feature writer stopped after %d rows", writer.stats.rows)


if __name__ == "__main__":
    main()
