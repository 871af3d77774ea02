"""The stream jobs' own environment: PyFlink and Java 17 run a windowed SQL job."""

from __future__ import annotations

import json
import subprocess

import pytest

from recsys.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration


def test_pyflink_runs_an_event_time_window_job_in_its_own_environment() -> None:
    python = Settings(_env_file=None).flink_python_path
    assert python.exists(), f"{python} missing: run `make setup`"
    result = subprocess.run([str(python), "-m", "stream_jobs.flink_smoke"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])["rows"]
    assert rows == [
        ["u1", "2026-01-01 00:00:00", 2, 1],
        ["u1", "2026-01-01 00:01:00", 1, 1],
        ["u2", "2026-01-01 00:01:00", 1, 1],
    ]


def test_the_two_environments_really_differ_where_they_clash() -> None:
    """Why there are two: PyFlink pins protobuf 5, Feast needs a newer one."""
    python = Settings(_env_file=None).flink_python_path
    probe = "import google.protobuf as p; print(p.__version__)"
    flink_pb = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                              timeout=60).stdout.strip()
    import google.protobuf

    assert flink_pb.split(".")[0] == "5"
    assert int(google.protobuf.__version__.split(".")[0]) > 5
