"""Per-version baselines read from (and CTR baselines written to) the MLflow registry.

:func:`fetch_drift_baseline` is the one place that knows where a ranker version keeps
``drift_baseline.json``; :class:`MlflowBaselines` calls MLflow from a background thread
so that a slow or absent MLflow never stalls the monitor's consumer loop.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from monitoring.baseline import BASELINE_FILE, DriftBaseline
from monitoring.ctr import CtrBaseline

log = logging.getLogger(__name__)

#: Model-version tags holding the CTR baseline learned from the version's first window.
CTR_BASELINE_TAG = "ctr_baseline"
CTR_BASELINE_STD_TAG = "ctr_baseline_std"
CTR_BASELINE_IMPRESSIONS_TAG = "ctr_baseline_impressions"


def fetch_drift_baseline(client, model_name: str, version: str,
                         tracking_uri: str | None = None) -> DriftBaseline:
    """Download and parse ``drift_baseline.json`` of a registered model version.

    Looks at the top of the version's ``source`` (where the ranking module logs it with
    the model), then anywhere below it (e.g. a pyfunc model's ``artifacts/``), then in
    the artifacts of the run that produced it. Raises ``FileNotFoundError`` if none has
    one.
    """
    import mlflow.artifacts

    mv = client.get_model_version(model_name, str(version))
    source = _artifact_root(client, (mv.source or "").rstrip("/"))
    with tempfile.TemporaryDirectory() as tmp:
        if source:
            for uri in (f"{source}/{BASELINE_FILE}", _find_below(source, tracking_uri)):
                if uri is None:
                    continue
                path = None
                with contextlib.suppress(Exception):
                    path = mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
                if path is not None:  # a broken file raises ValueError naming the problem
                    return DriftBaseline.load(Path(path).parent)
        if mv.run_id:
            found = _find_in_run(client, mv.run_id, "")
            if found:
                path = client.download_artifacts(mv.run_id, found, tmp)
                return DriftBaseline.load(Path(path).parent)
    raise FileNotFoundError(
        f"{model_name} version {version}: no {BASELINE_FILE} in {source!r} "
        f"or in run {mv.run_id!r}")


def _artifact_root(client, source: str) -> str:
    """MLflow 3 logged models (``models:/m-…``) take no sub-paths: use their artifact
    location instead."""
    model_id = source.removeprefix("models:/")
    if source.startswith("models:/") and "/" not in model_id:
        with contextlib.suppress(Exception):
            return client.get_logged_model(model_id).artifact_location.rstrip("/")
    return source


def _find_below(uri: str, tracking_uri: str | None, depth: int = 0) -> str | None:
    import mlflow.artifacts

    if depth > 3:
        return None
    try:
        entries = mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
    except Exception:
        return None
    for entry in entries:
        name = entry.path.rsplit("/", 1)[-1]
        if not entry.is_dir and name == BASELINE_FILE:
            return f"{uri}/{name}"
    for entry in entries:
        if entry.is_dir:
            found = _find_below(f"{uri}/{entry.path.rsplit('/', 1)[-1]}", tracking_uri,
                                depth + 1)
            if found:
                return found
    return None


def _find_in_run(client, run_id: str, path: str, depth: int = 0) -> str | None:
    if depth > 3:
        return None
    entries = client.list_artifacts(run_id, path or None)
    for entry in entries:
        if not entry.is_dir and entry.path.rsplit("/", 1)[-1] == BASELINE_FILE:
            return entry.path
    for entry in entries:
        if entry.is_dir:
            found = _find_in_run(client, run_id, entry.path, depth + 1)
            if found:
                return found
    return None


def read_ctr_baseline(client, model_name: str, version: str) -> CtrBaseline | None:
    tags = client.get_model_version(model_name, str(version)).tags or {}
    try:
        return CtrBaseline(ctr=float(tags[CTR_BASELINE_TAG]),
                           std=float(tags[CTR_BASELINE_STD_TAG]),
                           impressions=int(tags[CTR_BASELINE_IMPRESSIONS_TAG]))
    except (KeyError, ValueError):
        return None


def write_ctr_baseline(client, model_name: str, version: str, baseline: CtrBaseline) -> None:
    for key, value in ((CTR_BASELINE_TAG, f"{baseline.ctr:.6g}"),
                       (CTR_BASELINE_STD_TAG, f"{baseline.std:.6g}"),
                       (CTR_BASELINE_IMPRESSIONS_TAG, str(baseline.impressions))):
        client.set_model_version_tag(model_name, str(version), key, value)


class MlflowBaselines:
    """Non-blocking cache of each version's drift baseline and stored CTR baseline.

    ``drift(v)``/``ctr(v)`` answer from the cache at once and, on a miss, ask a worker
    thread to fetch; failures are retried after ``retry_s``. Versions that are not in
    the registry simply stay missing (the monitor reports them as not loaded).
    """

    def __init__(self, tracking_uri: str, model_name: str, retry_s: float = 30.0):
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.retry_s = retry_s
        self._drift: dict[str, DriftBaseline] = {}
        self._ctr: dict[str, CtrBaseline | None] = {}
        self._last_try: dict[tuple[str, str], float] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="mlflow-baselines",
                                        daemon=True)
        self._thread.start()
        self._client = None

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception as exc:  # logged and retried later; never kills the worker
                log.warning("MLflow baseline task failed: %s", exc)
            finally:
                self._tasks.task_done()

    def _mlflow(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _schedule(self, kind: str, version: str, task: Callable[[], None]) -> None:
        key = (kind, version)
        with self._lock:
            last = self._last_try.get(key)
            if key in self._in_flight or (last is not None and
                                          time.monotonic() - last < self.retry_s):
                return
            self._in_flight.add(key)

        def tracked() -> None:
            try:
                task()
            finally:
                with self._lock:
                    self._in_flight.discard(key)
                    self._last_try[key] = time.monotonic()

        self._tasks.put(tracked)

    def drift(self, version: str) -> DriftBaseline | None:
        if version in self._drift:
            return self._drift[version]

        def load() -> None:
            baseline = fetch_drift_baseline(self._mlflow(), self.model_name, version,
                                            self.tracking_uri)
            self._drift[version] = baseline
            log.info("drift baseline of %s v%s loaded", self.model_name, version)

        self._schedule("drift", version, load)
        return None

    def ctr(self, version: str) -> CtrBaseline | None:
        if version in self._ctr:
            return self._ctr[version]

        def load() -> None:
            self._ctr[version] = read_ctr_baseline(self._mlflow(), self.model_name, version)

        self._schedule("ctr", version, load)
        return None

    def save_ctr(self, version: str, baseline: CtrBaseline) -> None:
        self._ctr[version] = baseline
        self._tasks.put(lambda: write_ctr_baseline(self._mlflow(), self.model_name, version,
                                                   baseline))

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until queued MLflow calls are done (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._tasks.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self._tasks.put(None)
        self._thread.join(timeout=5)
