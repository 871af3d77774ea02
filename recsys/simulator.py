"""Closed-loop A/B simulation: synthetic users with hidden preferences use the real API.

Each simulated user is a user of a data set. Their hidden taste is what their own
history says (the share of their events per category and their usual price), plus
a general liking for what is popular, so a popularity baseline is not a straw man.
Half the users (a stable, seeded split) get ``POST /recommendations`` (ALS + ranker),
the other half ``GET /popular``. For every item shown the user clicks with a
probability that grows with how well the item fits that hidden taste, and may then
add it to the cart and buy it; every click, cart and purchase goes back through
``POST /events`` (so into Kafka) carrying the response's request id and model
version. The report compares click-through, add-to-cart and conversion per arm with
Wilson 95 % intervals and the difference with its normal-approximation interval.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recsys.datasets.layout import EVENTS_DIR, ITEMS_FILE

ARMS = ("ranker", "popularity")
OUTCOMES = ("click", "add_to_cart", "purchase")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 300
    rounds: int = 2
    k: int = 10
    seed: int = 42
    base_ctr: float = 0.01  # an item that fits nothing
    max_ctr: float = 0.35  # an item that fits perfectly
    cart_rate: float = 0.35  # of clicks
    purchase_rate: float = 0.5  # of carts


@dataclass
class Taste:
    """A user's hidden preferences (never sent to the API)."""

    category_share: dict[str, float]
    price: float | None


@dataclass
class HiddenWorld:
    tastes: dict[str, Taste]
    item_category: dict[str, str]
    item_price: dict[str, float]
    item_popularity: dict[str, float]  # percentile of event count, 0..1

    @classmethod
    def from_dataset(cls, dataset: Path) -> HiddenWorld:
        items = pq.read_table(dataset / ITEMS_FILE, columns=["item_id", "category", "price"]
                              ).to_pandas()
        events = pq.read_table(dataset / EVENTS_DIR, columns=["user_id", "item_id"]).to_pandas()
        events = events.merge(items, on="item_id", how="left")
        shares = (events.groupby(["user_id", "category"]).size()
                  / events.groupby("user_id").size()).rename("share").reset_index()
        prices = events.groupby("user_id")["price"].median()
        tastes: dict[str, Taste] = {}
        for user, rows in shares.groupby("user_id"):
            price = prices.get(user)
            tastes[str(user)] = Taste(dict(zip(rows.category, rows.share, strict=True)),
                                      None if price is None or pd.isna(price) else float(price))
        counts = events.item_id.value_counts()
        popularity = counts.rank(pct=True)
        return cls(tastes, dict(zip(items.item_id, items.category, strict=True)),
                   {i: float(p) for i, p in zip(items.item_id, items.price, strict=True)
                    if p is not None and not pd.isna(p)},
                   popularity.to_dict())

    def appeal(self, user: str, item: str) -> float:
        """0..1: how well ``item`` fits ``user``'s hidden taste."""
        taste = self.tastes[user]
        category = taste.category_share.get(self.item_category.get(item, ""), 0.0)
        top = max(taste.category_share.values(), default=1.0) or 1.0
        price = self.item_price.get(item)
        price_fit = 0.5 if taste.price is None or price is None or taste.price <= 0 else (
            math.exp(-abs(math.log(max(price, 1e-6) / taste.price))))
        return 0.6 * category / top + 0.25 * self.item_popularity.get(item, 0.0) + 0.15 * price_fit


@dataclass
class ArmTally:
    users: int = 0
    requests: int = 0
    impressions: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    model_versions: set[str] = field(default_factory=set)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float, float]:
    """Rate and its Wilson score interval."""
    if trials == 0:
        return 0.0, 0.0, 0.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return p, centre - half, centre + half


def difference(a: tuple[int, int], b: tuple[int, int], z: float = Z95
               ) -> tuple[float, float, float]:
    """p_a - p_b with a normal-approximation (Wald) interval."""
    (sa, na), (sb, nb) = a, b
    if not na or not nb:
        return 0.0, 0.0, 0.0
    pa, pb = sa / na, sb / nb
    half = z * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return pa - pb, pa - pb - half, pa - pb + half


@dataclass
class SimulationReport:
    arms: dict[str, ArmTally]
    config: SimulationConfig

    def rate(self, arm: str, outcome: str) -> tuple[float, float, float]:
        tally = self.arms[arm]
        return wilson(tally.counts[outcome], tally.impressions)

    def lift(self, outcome: str) -> tuple[float, float, float]:
        a, b = (self.arms[x] for x in ARMS)
        return difference((a.counts[outcome], a.impressions), (b.counts[outcome], b.impressions))

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for arm in ARMS:
            out[f"{arm}_impressions"] = self.arms[arm].impressions
            for outcome in OUTCOMES:
                rate, lo, hi = self.rate(arm, outcome)
                out.update({f"{arm}_{outcome}_rate": rate, f"{arm}_{outcome}_lo": lo,
                            f"{arm}_{outcome}_hi": hi})
        for outcome in OUTCOMES:
            diff, lo, hi = self.lift(outcome)
            out.update({f"lift_{outcome}": diff, f"lift_{outcome}_lo": lo,
                        f"lift_{outcome}_hi": hi})
        return out

    def markdown(self) -> str:
        names = {"click": "CTR", "add_to_cart": "add-to-cart / impression",
                 "purchase": "conversion / impression"}
        lines = ["| metric | ALS + ranker | popularity | difference (95 % CI) |",
                 "|---|---|---|---|"]
        for outcome in OUTCOMES:
            cells = []
            for arm in ARMS:
                rate, lo, hi = self.rate(arm, outcome)
                cells.append(f"{rate:.4f} [{lo:.4f}, {hi:.4f}]")
            diff, lo, hi = self.lift(outcome)
            lines.append(f"| {names[outcome]} | {cells[0]} | {cells[1]} | "
                         f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
        a, b = (self.arms[x] for x in ARMS)
        lines.append(f"| users / impressions | {a.users} / {a.impressions} | "
                     f"{b.users} / {b.impressions} | |")
        return "\n".join(lines)


def assign_arm(user: str, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{user}".encode()).digest()
    return ARMS[digest[0] % 2]


class Simulator:
    """Drives the real API over HTTP with simulated users."""

    def __init__(self, client: httpx.Client, world: HiddenWorld, config: SimulationConfig,
                 write_headers: dict[str, str] | None = None) -> None:
        self.client, self.world, self.config = client, world, config
        self.write_headers = write_headers or {}
        self.rng = np.random.default_rng(config.seed)

    def _shown(self, arm: str, user: str) -> tuple[list[str], dict[str, Any]]:
        if arm == "ranker":
            response = self.client.post("/recommendations", json={
                "user_id": user, "k": self.config.k, "context": {"surface": "simulator"}})
            response.raise_for_status()
            body = response.json()
            return [i["item_id"] for i in body["items"]], {
                "request_id": body["request_id"], "model_version": str(body["model_version"]),
                "arm": body["arm"]}
        response = self.client.get("/popular", params={"k": self.config.k})
        response.raise_for_status()
        return [i["item_id"] for i in response.json()["items"]], {
            "request_id": f"sim-{uuid.uuid4().hex[:16]}", "arm": "popularity"}

    def _reactions(self, user: str, items: list[str], meta: dict[str, Any]) -> list[dict]:
        cfg, events = self.config, []
        for item in items:
            p_click = cfg.base_ctr + (cfg.max_ctr - cfg.base_ctr) * self.world.appeal(user, item)
            steps = [("click", p_click), ("add_to_cart", cfg.cart_rate),
                     ("purchase", cfg.purchase_rate)]
            for kind, probability in steps:
                if self.rng.random() >= probability:
                    break
                events.append(self._event(user, item, kind, meta))
        return events

    @staticmethod
    def _event(user: str, item: str, kind: str, meta: dict[str, Any]) -> dict[str, Any]:
        event = {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item,
                 "event_type": kind, "ts": datetime.now(UTC).isoformat(),
                 "request_id": meta["request_id"],
                 "context": {"arm": meta["arm"], "source": "simulator"}}
        if meta.get("model_version"):
            event["model_version"] = meta["model_version"]
        return event

    def visit(self, user: str, arm: str = "ranker"
              ) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
        """One page view: what ``user`` is shown on ``arm``, and the reactions, which are
        sent back through ``POST /events``. Returns (items, response meta, events)."""
        items, meta = self._shown(arm, user)
        events = self._reactions(user, items, meta)
        if events:
            response = self.client.post("/events", json={"events": events},
                                        headers=self.write_headers)
            response.raise_for_status()
        return items, meta, events

    def run(self, progress: Callable[[int], None] | None = None) -> SimulationReport:
        users = sorted(self.world.tastes)
        rng = np.random.default_rng(self.config.seed)
        chosen = rng.choice(users, size=min(self.config.users, len(users)), replace=False)
        tallies = {arm: ArmTally() for arm in ARMS}
        for user in map(str, chosen):
            arm = assign_arm(user, self.config.seed)
            tally = tallies[arm]
            tally.users += 1
            for _ in range(self.config.rounds):
                items, meta, events = self.visit(user, arm)
                tally.requests += 1
                tally.impressions += len(items)
                if meta.get("model_version"):
                    tally.model_versions.add(meta["model_version"])
                for event in events:
                    tally.counts[event["event_type"]] += 1
            if progress:
                progress(1)
        return SimulationReport(tallies, self.config)


def log_to_mlflow(report: SimulationReport, tracking_uri: str, dataset: Path,
                  experiment: str = "ab-simulation") -> str:
    """One MLflow run with the configuration, every rate and interval, and the table."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, tags={"dataset": str(dataset)})
    run_id = run.info.run_id
    for key, value in vars(report.config).items():
        client.log_param(run_id, key, value)
    for key, value in report.metrics().items():
        client.log_metric(run_id, key, float(value))
    versions = sorted(report.arms["ranker"].model_versions)
    client.set_tag(run_id, "ranker_model_versions", ",".join(versions))
    client.log_text(run_id, report.markdown(), "ab_report.md")
    client.set_terminated(run_id)
    return run_id
