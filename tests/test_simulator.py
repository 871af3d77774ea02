"""The closed-loop A/B simulator: statistics by hand, then against the real API and Kafka."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from api.security import make_token
from recsys.simulator import (
    ARMS,
    HiddenWorld,
    SimulationConfig,
    Simulator,
    assign_arm,
    difference,
    log_to_mlflow,
    wilson,
)
from tests import test_api_support as support
from tests.test_api_support import ApiModels, ApiServer, api_settings, consume

api_models = support.api_models  # the shared fixture


def test_wilson_interval_matches_the_formula() -> None:
    # 10 successes in 100: centre (0.1 + z²/200)/(1 + z²/100), by hand.
    rate, lo, hi = wilson(10, 100)
    z = 1.959963984540054
    centre = (0.1 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.1 * 0.9 / 100 + z * z / 40_000) / (1 + z * z / 100)
    assert rate == 0.1
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)
    assert wilson(0, 0) == (0.0, 0.0, 0.0)


def test_difference_interval() -> None:
    diff, lo, hi = difference((30, 100), (10, 100))
    half = 1.959963984540054 * math.sqrt(0.3 * 0.7 / 100 + 0.1 * 0.9 / 100)
    assert diff == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half))


def test_arms_are_stable_and_balanced() -> None:
    users = [f"u{k}" for k in range(4_000)]
    arms = [assign_arm(u, 42) for u in users]
    assert arms == [assign_arm(u, 42) for u in users]
    share = arms.count("ranker") / len(arms)
    assert 0.47 < share < 0.53


def test_hidden_taste_prefers_the_users_own_categories(small_dataset: Path) -> None:
    world = HiddenWorld.from_dataset(small_dataset)
    user = max(world.tastes, key=lambda u: max(world.tastes[u].category_share.values()))
    shares = world.tastes[user].category_share
    favourite = max(shares, key=shares.get)
    liked = [i for i, c in world.item_category.items() if c == favourite]
    other = [i for i, c in world.item_category.items() if c not in shares]
    assert liked and other
    mean = lambda items: sum(world.appeal(user, i) for i in items) / len(items)  # noqa: E731
    assert mean(liked) > mean(other) + 0.3
    assert all(0 <= world.appeal(user, i) <= 1 for i in world.item_category)


@pytest.fixture(scope="module")
def api(api_models: ApiModels) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(api_models.settings)).__enter__()
    server.wait_ready()
    yield server
    server.__exit__(None, None, None)


@pytest.mark.integration
@pytest.mark.slow
def test_simulation_runs_through_the_api_into_kafka_and_mlflow(api: ApiServer,
                                                               api_models: ApiModels) -> None:
    world = HiddenWorld.from_dataset(api_models.dataset)
    config = SimulationConfig(users=40, rounds=2, k=5, seed=3, max_ctr=0.6)
    headers = {"Authorization": f"Bearer {make_token(api.settings, ['events'])}"}
    with api.client() as client:
        report = Simulator(client, world, config, write_headers=headers).run()

    for arm in ARMS:
        tally = report.arms[arm]
        assert tally.users > 5 and tally.requests == tally.users * 2
        assert tally.impressions == tally.requests * 5
    assert report.arms["ranker"].model_versions == {api_models.v1}
    sent = sum(sum(t.counts.values()) for t in report.arms.values())
    assert sent > 0

    # Every simulated reaction reached the clickstream topic through POST /events.
    found = consume(api.settings, api.settings.clickstream_topic, sent,
                    lambda v: b'"source":"simulator"' in v)
    kinds = [json.loads(v)["event_type"] for v in found]
    assert len(found) == sent
    assert kinds.count("click") == sum(t.counts["click"] for t in report.arms.values())

    run_id = log_to_mlflow(report, api.settings.mlflow_tracking_uri, api_models.dataset)
    run = mlflow.MlflowClient(api.settings.mlflow_tracking_uri).get_run(run_id)
    assert run.data.metrics["ranker_impressions"] == report.arms["ranker"].impressions
    assert "ranker_click_lo" in run.data.metrics
    assert "| CTR |" in report.markdown()
