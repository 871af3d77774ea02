"""Start and stop the Flink feature job from the platform environment.

The job runs in its own interpreter (``settings.flink_python``) as a managed
process group, so stopping it also stops the JVM it started; its settings are
this process's settings, passed as ``RECSYS_*`` variables.
"""

from __future__ import annotations

import os

from recsys.kafka_io import ensure_topics
from recsys.settings import Settings, settings_env
from recsys.stack.process import ManagedProcess, StartupError

JOB_NAME = "flink-features"


def feature_job(settings: Settings) -> ManagedProcess:
    return ManagedProcess(JOB_NAME, settings.state_path / "run")


def start_feature_job(settings: Settings, restore: bool = False) -> ManagedProcess:
    """Launch the job (resuming from the newest checkpoint when ``restore``)."""
    python = settings.flink_python_path
    if not python.exists():
        raise StartupError(f"{python} missing: run `make setup` to build the Flink environment")
    ensure_topics(settings)
    job = feature_job(settings)
    if job.pid() is not None:
        return job
    argv = [str(python), "-m", "stream_jobs.features_job", *(["--restore"] if restore else [])]
    job.start(argv, env={**os.environ, **settings_env(settings)})
    return job
