"""Alert rules (promtool check + unit tests), Prometheus/Alertmanager configs, dashboard.

promtool and amtool come with the Debian packages prometheus and
prometheus-alertmanager (scripts/system-deps.sh installs them); without them the
promtool/amtool tests are skipped with that reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import contract
from monitoring.alerting import (
    FAST,
    PRODUCTION,
    alertmanager_config,
    prometheus_config,
    write_configs,
)
from recsys.settings import PROJECT_ROOT, Settings

MONITORING = PROJECT_ROOT / "monitoring"
RULES = MONITORING / "rules" / "recsys.rules.yml"
RULE_TESTS = sorted((MONITORING / "rules" / "tests").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "recsys-dashboard.json"

#: The issue's alerts: CTR below baseline − 2σ, p95 latency > 300 ms, error rate > 5%,
#: PSI above a threshold, input validation failures spiking.
REQUIRED_ALERTS = {"RecsysCTRBelowBaseline", "RecsysHighLatencyP95", "RecsysHighErrorRate",
                   "RecsysScoreDrift", "RecsysFeatureDrift", "RecsysValidationFailuresSpike"}

promtool = shutil.which("promtool")
amtool = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool missing: apt-get install prometheus (scripts/system-deps.sh)")


def contract_metric_names() -> set[str]:
    names = {v for k, v in vars(contract).items()
             if k.isupper() and isinstance(v, str) and v.startswith("recsys_")}
    histograms = {v for v in names if not v.endswith("_total")}
    return names | {f"{h}{suffix}" for h in histograms for suffix in ("_bucket", "_sum", "_count")}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\brecsys_[a-z0-9_]+", expr))


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


# --- rules ------------------------------------------------------------------------------
def test_every_alert_of_the_issue_exists_with_its_threshold() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert set(by_name) >= REQUIRED_ALERTS
    assert "> 0.3" in by_name["RecsysHighLatencyP95"]["expr"]  # seconds
    assert "histogram_quantile(0.95" in by_name["RecsysHighLatencyP95"]["expr"]
    assert "> 0.05" in by_name["RecsysHighErrorRate"]["expr"]
    assert "2 * recsys_ctr_baseline_std" in by_name["RecsysCTRBelowBaseline"]["expr"]
    assert "> 0.2" in by_name["RecsysScoreDrift"]["expr"]


def test_rules_use_only_contract_metric_names() -> None:
    allowed = contract_metric_names()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - allowed
        assert not unknown, f"{rule['alert']} uses {unknown}, not in monitoring/contract.py"


def test_alerts_that_roll_back_are_the_ones_the_service_acts_on() -> None:
    labelled = {r["alert"] for r in rules() if r.get("labels", {}).get("rollback") == "true"}
    assert labelled == set(Settings(_env_file=None).rollback_alert_names)


@needs_promtool
def test_promtool_check_rules() -> None:
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    assert RULE_TESTS, "no promtool tests in monitoring/rules/tests"
    out = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True,
                         text=True, timeout=120, cwd=RULE_TESTS[0].parent)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = {m for f in RULE_TESTS for m in re.findall(r"alertname: (\w+)", f.read_text())}
    assert {r["alert"] for r in rules()} <= tested  # every rule has a test


@needs_promtool
def test_promtool_rule_tests_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = RULE_TESTS[0].read_text().replace("../recsys.rules.yml", str(RULES))
    broken.write_text(text.replace('summary: "Score PSI of model 2 (champion) is 0.35"',
                                   'summary: "Score PSI of model 2 (champion) is 0.36"'))
    out = subprocess.run([promtool, "test", "rules", str(broken)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "RecsysScoreDrift" in out.stdout + out.stderr


# --- configs ----------------------------------------------------------------------------
def test_repo_configs_are_the_rendered_defaults() -> None:
    defaults = Settings(_env_file=None)
    assert yaml.safe_load((MONITORING / "prometheus.yml").read_text()) == prometheus_config(
        defaults, PRODUCTION)
    assert yaml.safe_load((MONITORING / "alertmanager.yml").read_text()) == alertmanager_config(
        defaults, PRODUCTION)


def test_configs_follow_the_settings(tmp_path: Path) -> None:
    s = Settings(_env_file=None, rollback_port=28200, monitor_port=28100, alertmanager_port=29093)
    prom, am = write_configs(s, tmp_path, FAST)
    prom_cfg, am_cfg = yaml.safe_load(prom.read_text()), yaml.safe_load(am.read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom_cfg["scrape_configs"]}
    assert targets["recsys-monitor"] == ["127.0.0.1:28100"]
    assert prom_cfg["global"]["evaluation_interval"] == "1s"
    assert prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:29093"]
    hook = am_cfg["receivers"][1]["webhook_configs"][0]["url"]
    assert hook == "http://127.0.0.1:28200/alerts"
    fast_rules = yaml.safe_load((tmp_path / "rules" / "recsys.rules.yml").read_text())
    repo_rules = yaml.safe_load(RULES.read_text())
    for fast_group, group in zip(fast_rules["groups"], repo_rules["groups"], strict=True):
        for fast, rule in zip(fast_group["rules"], group["rules"], strict=True):
            assert fast["expr"] == rule["expr"] and fast["for"] == "1s"
    write_configs(s, tmp_path / "prod", PRODUCTION)
    assert (tmp_path / "prod" / "rules" / "recsys.rules.yml").read_text() == RULES.read_text()


@needs_promtool
def test_promtool_check_config() -> None:
    out = subprocess.run([promtool, "check", "config", str(MONITORING / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(amtool is None, reason="amtool missing: apt-get install "
                    "prometheus-alertmanager (scripts/system-deps.sh)")
def test_amtool_check_config() -> None:
    out = subprocess.run([amtool, "check-config", str(MONITORING / "alertmanager.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- dashboard --------------------------------------------------------------------------
def test_dashboard_uses_only_contract_metric_names() -> None:
    allowed = contract_metric_names()
    used = set().union(*map(metric_names, dashboard_exprs()))
    assert used and used <= allowed, used - allowed


def test_dashboard_shows_latency_qps_errors_ctr_per_arm_drift_and_versions() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = " ".join(dashboard_exprs())
    for name in (contract.API_REQUEST_LATENCY, contract.API_REQUESTS, contract.MONITOR_CTR,
                 contract.MONITOR_SCORE_PSI, contract.MONITOR_FEATURE_PSI, contract.API_MODEL_INFO):
        assert name in exprs, name
    legends = [t["legendFormat"] for p in dash["panels"] for t in p["targets"]
               if t["expr"] == contract.MONITOR_CTR]
    assert legends and "{{arm}}" in legends[0]  # CTR per arm
    assert 'status=~"5.."' in exprs
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["templating"]["list"][0]["type"] == "datasource"


def test_cli_renders_the_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recsys.cli import app
    from recsys.settings import get_settings

    monkeypatch.setenv("RECSYS_ROLLBACK_PORT", "28299")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["monitor", "configs", "--out", str(tmp_path), "--fast"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    am = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert am["receivers"][1]["webhook_configs"][0]["url"] == "http://127.0.0.1:28299/alerts"
    assert am["route"]["group_wait"] == "1s"
    assert (tmp_path / "rules" / "recsys.rules.yml").exists()
