"""``scripts/audit.py`` (``make audit``) with a stand-in for pip-audit: what it counts as
audited, what it reports as vulnerable, and that "nothing could be audited" is not a pass."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audit.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``audit(reports)`` → (exit status, output); ``reports``: service → pip-audit's JSON
    report, or None for a pip-audit that fails (service unreachable)."""
    module = load()
    lock = tmp_path / "main.lock"
    lock.write_text("# pinned\nflask==2.0.0\nrequests==2.31.0\n")

    def run(reports: dict[str, dict | None], capsys: pytest.CaptureFixture[str],
            *flags: str) -> tuple[int, str]:
        data = tmp_path / "reports.json"
        data.write_text(json.dumps(reports))
        fake = tmp_path / "pip-audit"
        fake.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""
            import json, sys
            args = sys.argv[1:]
            assert "--no-deps" in args and "--disable-pip" in args
            report = json.load(open({str(data)!r}))[args[args.index("--vulnerability-service") + 1]]
            if report is None:
                sys.exit("requests.exceptions.ConnectionError: name resolution failed")
            open(args[args.index("--output") + 1], "w").write(json.dumps(report))
            """))
        fake.chmod(0o755)
        monkeypatch.setattr(module, "PIP_AUDIT", fake)
        status = module.main([*flags, str(lock)])
        return status, capsys.readouterr().out

    return run


SKIPPED = {"dependencies": [
    {"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: {n}"}
    for n in ("flask", "requests")], "fixes": []}


def test_nothing_audited_is_reported_and_fails(audit, capsys) -> None:
    status, out = audit({"pypi": SKIPPED, "osv": None}, capsys)
    assert status == 2
    assert "pypi: audited 0 of 2 pins" in out and "osv: pip-audit failed" in out
    assert "NOT AUDITED" in out and "(2 pins)" in out


def test_vulnerabilities_are_listed_with_their_fixes(audit, capsys) -> None:
    found = {"dependencies": [
        {"name": "flask", "version": "2.0.0", "vulns": [
            {"id": "PYSEC-2023-62", "aliases": ["CVE-2023-30861"], "fix_versions": ["2.2.5"]}]},
        {"name": "requests", "version": "2.31.0", "vulns": []}], "fixes": []}
    status, out = audit({"pypi": found, "osv": None}, capsys)
    assert status == 1
    assert "VULNERABLE flask==2.0.0: PYSEC-2023-62 (CVE-2023-30861) fixed in 2.2.5" in out
    assert "pypi: audited 2 of 2 pins" in out and "1 known vulnerabilities" in out


def test_osv_is_tried_when_pypi_cannot_audit(audit, capsys) -> None:
    clean = {"dependencies": [{"name": "flask", "version": "2.0.0", "vulns": []},
                              {"name": "requests", "version": "2.31.0", "vulns": []}]}
    status, out = audit({"pypi": SKIPPED, "osv": clean}, capsys)
    assert status == 0
    assert "osv: audited 2 of 2 pins" in out and "no known vulnerabilities" in out


def test_ci_passes_unreachable_but_still_fails_on_vulnerabilities(audit, capsys) -> None:
    status, out = audit({"pypi": SKIPPED, "osv": None}, capsys, "--unreachable-ok")
    assert status == 0 and "NOT AUDITED" in out  # said, not hidden
    found = {"dependencies": [{"name": "flask", "version": "2.0.0", "vulns": [
        {"id": "PYSEC-2023-62", "fix_versions": ["2.2.5"]}]}]}
    status, _ = audit({"pypi": found, "osv": None}, capsys, "--unreachable-ok")
    assert status == 1
