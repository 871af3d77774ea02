"""The monitor's Prometheus metrics (names from :mod:`monitoring.contract`).

Gauges are served from one immutable :class:`Snapshot` that the monitor swaps in after
each evaluation, so a scrape never sees half of an update and series of versions that
left the window disappear instead of going stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring import contract as c

Labels = tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    feature_psi: dict[Labels, float] = field(default_factory=dict)  # (version, feature)
    feature_ks: dict[Labels, float] = field(default_factory=dict)
    feature_ks_pvalue: dict[Labels, float] = field(default_factory=dict)
    feature_missing: dict[Labels, float] = field(default_factory=dict)
    score_psi: dict[Labels, float] = field(default_factory=dict)  # (version, arm)
    score_ks: dict[Labels, float] = field(default_factory=dict)
    score_ks_pvalue: dict[Labels, float] = field(default_factory=dict)
    ctr: dict[Labels, float] = field(default_factory=dict)  # (version, arm)
    ctr_baseline: dict[Labels, float] = field(default_factory=dict)
    ctr_baseline_std: dict[Labels, float] = field(default_factory=dict)
    conversion: dict[Labels, float] = field(default_factory=dict)
    impressions: dict[Labels, float] = field(default_factory=dict)
    baseline_loaded: dict[Labels, float] = field(default_factory=dict)  # (version,)


VERSION_FEATURE = ("model_version", "feature")
VERSION_ARM = ("model_version", "arm")

_GAUGES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (c.MONITOR_FEATURE_PSI, "feature_psi", VERSION_FEATURE, "PSI of a ranker feature vs the "
     "version's training baseline, over the drift window."),
    (c.MONITOR_FEATURE_KS, "feature_ks", VERSION_FEATURE, "Two-sample KS statistic of a feature."),
    (c.MONITOR_FEATURE_KS_PVALUE, "feature_ks_pvalue", VERSION_FEATURE, "KS p-value of a feature."),
    (c.MONITOR_FEATURE_MISSING, "feature_missing", VERSION_FEATURE, "Share of served values "
     "of a feature that were missing (expired or absent online), over the drift window."),
    (c.MONITOR_SCORE_PSI, "score_psi", VERSION_ARM, "PSI of served ranker scores."),
    (c.MONITOR_SCORE_KS, "score_ks", VERSION_ARM, "KS statistic of served ranker scores."),
    (c.MONITOR_SCORE_KS_PVALUE, "score_ks_pvalue", VERSION_ARM, "KS p-value of served scores."),
    (c.MONITOR_CTR, "ctr", VERSION_ARM, "Click-through rate over the CTR window."),
    (c.MONITOR_CTR_BASELINE, "ctr_baseline", VERSION_ARM, "CTR of the version's first window."),
    (c.MONITOR_CTR_BASELINE_STD, "ctr_baseline_std", VERSION_ARM,
     "Standard error of a window's CTR at the baseline rate."),
    (c.MONITOR_CONVERSION, "conversion", VERSION_ARM, "Purchases / impressions over the window."),
    (c.MONITOR_WINDOW_IMPRESSIONS, "impressions", VERSION_ARM, "Impressions in the CTR window."),
    (c.MONITOR_BASELINE_LOADED, "baseline_loaded", ("model_version",),
     "1 when the version's drift baseline is loaded from MLflow."),
)


class SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.snapshot  # one atomic read
        for name, attr, labels, doc in _GAUGES:
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            for values, value in sorted(getattr(snapshot, attr).items()):
                family.add_metric(list(values), value)
            yield family


class MonitorMetrics:
    """A registry of its own (several monitors can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = SnapshotCollector()
        self.registry.register(self.gauges)
        self.malformed = Counter(c.MONITOR_MALFORMED, "Input the monitor could not use.",
                                 ["source", "reason"], registry=self.registry)
        self.records = Counter(c.MONITOR_RECORDS, "Input records by what the monitor did.",
                               ["source", "outcome"], registry=self.registry)

    def publish(self, snapshot: Snapshot) -> None:
        self.gauges.snapshot = snapshot
