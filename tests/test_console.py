"""The web console in real headless Chromium (Debian's package, driven by Playwright).

The console is served by a real API (real stack, ranker versions from MLflow); each
test loads a page, clicks through a flow and asserts on what is shown. Screenshots go
to ``test-artifacts/console/`` (kept by CI as artifacts).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.security import make_token
from tests import test_api_support as support
from tests.test_api_support import ApiModels, ApiServer, api_settings, consume

pytestmark = [pytest.mark.integration, pytest.mark.slow]
api_models = support.api_models  # the shared fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"

if CHROMIUM is None:  # installed by scripts/system-deps.sh; CI always has it
    pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)",
                allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def api(api_models: ApiModels) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(api_models.settings)).__enter__()
    server.wait_ready()
    yield server
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, api: ApiServer, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(base_url=api.url, viewport={"width": 1200, "height": 900})
    token = make_token(api.settings, ["events"])
    context.add_init_script(f"localStorage.setItem('recsys.token', {json.dumps(token)});")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def open_page(page, hash_: str, ready: str) -> None:
    page.goto(f"/console/{hash_}")
    page.wait_for_selector(f"body[data-ready='{ready}']")


def test_recommendations_show_cards_with_their_stage(page, api_models: ApiModels) -> None:
    user = api_models.users[0]
    open_page(page, f"#/recommendations?user={user}&k=8", "recommendations")
    cards = page.locator("ul.cards li.card")
    cards.first.wait_for()
    assert cards.count() == 8
    meta = page.get_by_test_id("response-meta").inner_text()
    assert f"model {api_models.v1}" in meta and "known user" in meta
    first = cards.first
    assert first.locator(".card-stage").inner_text() in {"ranker", "retrieval", "popularity"}
    assert first.locator(".card-category").inner_text() not in {"", "–"}
    float(first.locator(".card-score").inner_text())
    assert page.locator("nav a[aria-current='page']").inner_text() == "Recommendations"


def test_unknown_user_gets_a_cold_start_answer(page) -> None:
    open_page(page, "#/recommendations?user=never-seen-before&k=5", "recommendations")
    page.locator("ul.cards li.card").first.wait_for()
    assert "cold start" in page.get_by_test_id("response-meta").inner_text()
    assert set(page.locator(".card-stage").all_inner_texts()) == {"popularity"}


def test_clicking_a_card_sends_a_click_and_opens_similar_items(page, api: ApiServer,
                                                               api_models: ApiModels) -> None:
    user = api_models.users[1]
    open_page(page, f"#/recommendations?user={user}&k=5", "recommendations")
    card = page.locator("ul.cards li.card").first
    card.wait_for()
    item = card.get_attribute("data-item-id")
    card.locator(".card-open").click()
    page.wait_for_selector(f"body[data-last-event='sent:{item}']")
    page.wait_for_selector("body[data-ready='item']")
    assert page.get_by_role("heading", name=f"Item {item}").is_visible()
    assert page.get_by_role("heading", name="Similar items").is_visible()
    assert page.get_by_role("heading", name="Frequently bought together").is_visible()
    similar = page.get_by_role("list", name="Similar items").locator("li.card")
    assert similar.count() > 0
    assert item not in similar.evaluate_all("cards => cards.map(c => c.dataset.itemId)")

    # The click went through POST /events into Kafka, attributed to the response.
    found = consume(api.settings, api.settings.clickstream_topic, 1,
                    lambda v: b'"source":"console"' in v and item.encode() in v)
    click = json.loads(found[0])
    assert click["event_type"] == "click" and click["user_id"] == user
    assert click["request_id"] and click["model_version"] == api_models.v1


def test_cold_start_page_lists_popular_items_by_category(page, api_models: ApiModels) -> None:
    open_page(page, "#/cold-start", "cold-start")
    cards = page.locator("ul.cards li.card")
    cards.first.wait_for()
    assert cards.count() == 12
    category = cards.first.locator(".card-category").inner_text()
    page.get_by_label("Category (empty: all)").fill(category)
    page.get_by_role("button", name="Show popular").click()
    page.wait_for_function(
        "cat => document.getElementById('status').textContent === `popular in ${cat}`",
        arg=category)
    assert set(page.locator(".card-category").all_inner_texts()) == {category}


def test_models_page_shows_aliases_and_arms(page, api_models: ApiModels) -> None:
    open_page(page, "#/models", "models")
    aliases = page.get_by_role("table", name="Aliases")
    assert aliases.get_by_role("row", name=f"champion {api_models.v1}").count() == 1
    arms = page.get_by_role("table", name="Arms")
    assert "champion" in arms.inner_text()
    assert page.get_by_role("table", name="Rollback history").is_visible()


def test_monitoring_page_charts_latency_from_the_metrics(page, api: ApiServer,
                                                          api_models: ApiModels) -> None:
    with api.client() as client:
        for user in api_models.users[:5]:
            client.post("/recommendations", json={"user_id": user, "k": 5}).raise_for_status()
    open_page(page, "#/monitoring", "monitoring")
    chart = page.locator("#latency-chart svg")
    label = chart.get_attribute("aria-label")
    assert "/recommendations" in label
    assert page.locator("#ctr-chart").is_visible() and page.locator("#drift-chart").is_visible()


def test_every_form_control_has_a_label(page) -> None:
    for hash_, ready in (("#/recommendations", "recommendations"), ("#/cold-start", "cold-start")):
        open_page(page, hash_, ready)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name || e.id)""")
        assert unlabelled == []
