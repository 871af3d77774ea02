"""The PyFlink feature job: clickstream → dead letters + windowed features → Kafka.

Run in the stream jobs' environment (``.venv-flink``); settings come from the
same ``RECSYS_*`` variables as everything else::

    .venv-flink/bin/python -m stream_jobs.features_job [--restore]

The SQL runs in the JVM (no Python UDFs on the hot path). Checkpoints are kept
under ``<state_dir>/flink-checkpoints``; ``--restore`` resumes from the newest
completed one, so a killed job continues without losing or double counting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recsys.settings import Settings
from stream_jobs.feature_sql import JobConfig, statements

JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest chk-N folder that has completed (has its _metadata)."""
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: p.stat().st_mtime) if done else None


def job_config(settings: Settings) -> JobConfig:
    return JobConfig(
        bootstrap_servers=settings.bootstrap_servers,
        clickstream_topic=settings.clickstream_topic,
        dead_letter_topic=settings.dead_letter_topic,
        features_topic=settings.features_topic,
        group_id=f"{settings.consumer_group}-features",
        watermark_delay_ms=settings.watermark_delay_ms,
        client_properties=tuple(java_client_properties(settings).items()),
    )


def java_client_properties(settings: Settings) -> dict[str, str]:
    """The broker security settings as Java Kafka client properties."""
    props = dict(settings.kafka_security)
    username, password = props.pop("sasl.username", None), props.pop("sasl.password", None)
    if username is not None:
        module = "org.apache.kafka.common.security.plain.PlainLoginModule" if (
            settings.broker_sasl_mechanism == "PLAIN") else (
            "org.apache.kafka.common.security.scram.ScramLoginModule")
        props["sasl.jaas.config"] = (f'{module} required username="{username}" '
                                     f'password="{password}";')
    return props


def flink_options(settings: Settings, restore_from: Path | None) -> dict[str, str]:
    jars_dir = settings.flink_jars_path
    missing = [jar for jar in JARS if not (jars_dir / jar).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)} in {jars_dir}: run `make setup`")
    options = {
        "pipeline.name": "recsys-features",
        "pipeline.jars": ";".join((jars_dir / jar).as_uri() for jar in JARS),
        "parallelism.default": str(settings.flink_parallelism),
        "table.local-time-zone": "UTC",
        # Off by default: while catching up on a backlog, partitions the reader has not
        # fetched from yet would count as idle and their events would become late.
        "table.exec.source.idle-timeout": f"{settings.source_idle_timeout_ms} ms",
        "pipeline.auto-watermark-interval": "100 ms",
        "execution.checkpointing.interval": f"{int(settings.checkpoint_interval_s * 1000)} ms",
        "execution.checkpointing.dir": settings.checkpoint_path.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
    }
    if restore_from is not None:
        options["execution.state-recovery.path"] = restore_from.as_uri()
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restore", action="store_true",
                        help="resume from the newest completed checkpoint, if any")
    args = parser.parse_args(argv)

    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = Settings()
    restore_from = latest_checkpoint(settings.checkpoint_path) if args.restore else None
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for key, value in flink_options(settings, restore_from).items():
        env.get_config().set(key, value)
    ddl, inserts = statements(job_config(settings))
    for statement in ddl:
        env.execute_sql(statement)
    statement_set = env.create_statement_set()
    for insert in inserts:
        statement_set.add_insert_sql(insert)
    result = statement_set.execute()
    job_id = result.get_job_client().get_job_id()
    restored = f" (restored from {restore_from})" if restore_from else ""
    print(f"recsys-features job {job_id} running{restored}", flush=True)
    result.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
