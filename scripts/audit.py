"""``make audit``: known vulnerabilities of the pinned lock files (pip-audit).

Each lock pins its whole closure, so pip-audit checks exactly those pins (``--no-deps
--disable-pip``: nothing is installed or resolved). Advisory data comes from PyPI's JSON
API, else OSV. pip-audit says "No known vulnerabilities found" even when it could audit
nothing; this wrapper counts what was really audited and says when the vulnerability
service could not be reached.

Exit status: 0 no known vulnerability, 1 vulnerabilities found, 2 nothing could be
audited (no vulnerability service reachable from this machine). ``--unreachable-ok``
(what ``make test`` passes) turns 2 into 0 after saying so: CI fails on a known
vulnerability wherever it can look one up, and not merely for having no network.
Run with the audit environment's Python (``.venv-audit``), which has ``pip-audit``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = ("pypi", "osv")
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def run(lock: Path, service: str) -> tuple[dict | None, str]:
    """pip-audit's JSON report for ``lock`` (None when it failed outright) and its stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run(
            [str(PIP_AUDIT), "--no-deps", "--disable-pip", "--progress-spinner", "off",
             "--vulnerability-service", service, "--timeout", "15", "--format", "json",
             "--output", str(report), "--requirement", str(lock)],
            capture_output=True, text=True, check=False)
        if not report.exists() or not report.read_text().strip():
            return None, done.stderr
        return json.loads(report.read_text()), done.stderr


def audit(lock: Path) -> tuple[int, list[str], int]:
    """(audited, findings, pins) for ``lock``: the first service that could audit any pin."""
    pins = sum(1 for line in lock.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#"))
    for service in SERVICES:
        report, stderr = run(lock, service)
        if report is None:
            last = stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"  {service}: pip-audit failed: {last[0][:300]}")
            continue
        deps = report["dependencies"]
        audited = [d for d in deps if "skip_reason" not in d]
        if not audited:
            reason = next((d["skip_reason"] for d in deps if "skip_reason" in d), "no pins")
            print(f"  {service}: audited 0 of {len(deps)} pins ({reason})")
            continue
        findings = [f"{d['name']}=={d['version']}: {v['id']}"
                    f"{' (' + ', '.join(v.get('aliases', [])) + ')' if v.get('aliases') else ''}"
                    f" fixed in {', '.join(v.get('fix_versions', [])) or 'no release yet'}"
                    for d in audited for v in d.get("vulns", [])]
        skipped = [d["name"] for d in deps if "skip_reason" in d]
        print(f"  {service}: audited {len(audited)} of {len(deps)} pins"
              + (f"; not audited: {', '.join(skipped)}" if skipped else ""))
        return len(audited), findings, pins
    return 0, [], pins


def main(args: list[str]) -> int:
    unreachable_ok = "--unreachable-ok" in args
    locks = [a for a in args if a != "--unreachable-ok"] or ["requirements/main.lock",
                                                              "requirements/flink.lock"]
    started = time.monotonic()
    unreachable, found = [], []
    for name in locks:
        lock = Path(name)
        print(f"{lock}:")
        audited, findings, pins = audit(lock)
        if not audited:
            unreachable.append(f"{lock} ({pins} pins)")
        found += [f"{lock}: {f}" for f in findings]
        for finding in findings:
            print(f"  VULNERABLE {finding}")
    print(f"audit took {time.monotonic() - started:.1f} s")
    if found:
        print(f"{len(found)} known vulnerabilities (see above)")
        return 1
    if unreachable:
        print("NOT AUDITED: no vulnerability service (PyPI's JSON API per version, OSV) answered "
              "from this machine for " + ", ".join(unreachable) + "; run `make audit` where "
              "pypi.org/pypi/<name>/<version>/json or api.osv.dev can be reached")
        return 0 if unreachable_ok else 2
    print("no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
