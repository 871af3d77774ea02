"""Write the Flink job's feature rows into Feast: online (Redis) and offline (Parquet).

Runs in the platform environment (Feast cannot live beside PyFlink)::

    python -m stream_jobs.feature_writer

Each batch (``writer_batch_ms``) is grouped by feature view; online, only the
newest row per entity is written (rows are absolute values, so a replayed
batch rewrites the same values: idempotent); offline, every row is appended as
a Parquet part, so point-in-time joins see each value from the moment it held.
Offsets are committed after both writes: a crash replays, never loses.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from feature_repo.specs import EVENT_TIME, USER_RECENT_VIEW
from recsys.kafka_io import make_consumer
from recsys.settings import Settings

log = logging.getLogger(__name__)
META_COLUMNS = ("view", "produced_at")


@dataclass
class WriterStats:
    rows: int = 0
    online_rows: int = 0
    batches: int = 0
    rejected: int = 0
    #: seconds from the event's produce time to its feature row being readable online
    freshness_s: list[float] = field(default_factory=list)


def _frame(view: str, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame[EVENT_TIME] = pd.to_datetime(frame[EVENT_TIME], utc=True, format="ISO8601")
    frame["produced_at"] = pd.to_datetime(frame["produced_at"], utc=True, format="ISO8601")
    if view == USER_RECENT_VIEW:
        frame["last_items"] = frame["last_items"].str.split(",")
        frame["last_event_ms"] = frame[EVENT_TIME].astype("int64") // 1_000_000
    return frame.drop(columns=["view"])


def newest_per_entity(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values(EVENT_TIME, kind="stable").drop_duplicates(key, keep="last")


class FeatureWriter:
    def __init__(self, settings: Settings, store=None):
        from feature_repo.store import get_feature_store

        self.settings = settings
        self.store = store or get_feature_store(settings)
        self.stats = WriterStats()
        self._part = 0
        self._keys = {view.name: view.entity_columns[0].name
                      for view in self.store.list_feature_views()}

    def write(self, records: Iterable[bytes]) -> int:
        """Write one batch of JSON feature rows; returns how many rows were written."""
        by_view: dict[str, list[dict]] = defaultdict(list)
        for raw in records:
            try:
                row = json.loads(raw)
                by_view[row["view"]].append(row)
            except (ValueError, KeyError, TypeError):
                self.stats.rejected += 1
                log.error("feature row is not JSON with a 'view': %r", raw[:200])
        written = 0
        for view, rows in by_view.items():
            key = self._keys.get(view)
            if key is None:
                self.stats.rejected += len(rows)
                log.error("unknown feature view %r (%d rows): run `recsys feast apply`",
                          view, len(rows))
                continue
            frame = _frame(view, rows)
            self._append_offline(view, frame)
            online = newest_per_entity(frame, key)
            self.store.write_to_online_store(view, online.drop(columns=["produced_at"]))
            now = datetime.now(UTC)
            self.stats.freshness_s.extend(
                (now - online["produced_at"]).dt.total_seconds().tolist())
            self.stats.online_rows += len(online)
            written += len(frame)
        self.stats.rows += written
        self.stats.batches += 1
        return written

    def _append_offline(self, view: str, frame: pd.DataFrame) -> None:
        folder = self.settings.offline_store_path / view
        folder.mkdir(parents=True, exist_ok=True)
        self._part += 1
        name = f"part-{time.time_ns()}-{self._part:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.drop(columns=["produced_at"]).to_parquet(tmp, index=False)
        tmp.rename(folder / name)  # readers never see a half-written part

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume the features topic until ``stop`` is set (or idle for ``idle_exit_s``)."""
        stop = stop or threading.Event()
        consumer = make_consumer(self.settings, self.settings.features_topic,
                                 group_id=f"{self.settings.consumer_group}-feature-writer")
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                polled = consumer.poll(timeout_ms=self.settings.writer_batch_ms,
                                       max_records=50_000)
                records = [r.value for batch in polled.values() for r in batch]
                if not records:
                    if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        return
                    continue
                idle_since = time.monotonic()
                self.write(records)
                consumer.commit()
        finally:
            consumer.close()


    def run_until(self, rows: int, timeout_s: float,
                  still_running: Callable[[], object] = lambda: True,
                  progress: Callable[[int], None] | None = None) -> bool:
        """Consume in a background thread until ``rows`` rows are written, the timeout
        passes or ``still_running()`` turns false (say, the job died); True if reached."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        deadline, reported = time.monotonic() + timeout_s, 0
        try:
            while self.stats.rows < rows and time.monotonic() < deadline and still_running():
                time.sleep(0.2)
                if progress and self.stats.rows > reported:
                    progress(self.stats.rows - reported)
                    reported = self.stats.rows
        finally:
            stop.set()
            thread.join(timeout=30)
        if progress and self.stats.rows > reported:
            progress(self.stats.rows - reported)
        return self.stats.rows >= rows


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
