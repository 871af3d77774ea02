"""The PyFlink feature job: clickstream → dead letters + windowed features → Kafka.

Run in the stream jobs' environment (``.venv-flink``); settings come from the
same ``RECSYS_*`` variables as everything else::

    .venv-flink/bin/python -m stream_jobs.features_job [--restore]

The job is a Java DataStream topology (``stream_jobs/java``, compiled into a jar on
first use by ``udf_jar``) added to this PyFlink environment through the py4j
gateway: nothing runs in Python once it is submitted. Its settings travel as global
job parameters (``job_spec``). Checkpoints are kept under
``<state_dir>/flink-checkpoints``; ``--restore`` resumes from the newest completed
one, so a killed job continues without losing or double counting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feature_repo.specs import COUNT_COLUMNS
from feature_repo.store import render_config
from recsys.settings import Settings
from stream_jobs.catalogue import export_catalogue
from stream_jobs.job_spec import JOB_CLASS, JobConfig
from stream_jobs.udf_jar import ensure_udf_jar

JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest chk-N folder that has completed (has its _metadata)."""
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: p.stat().st_mtime) if done else None


def job_config(settings: Settings, catalogue_path: str = "") -> JobConfig:
    half_life_ms = int(settings.popularity_half_life_days * 86_400_000)
    feast = render_config(settings)
    return JobConfig(
        bootstrap_servers=settings.bootstrap_servers,
        clickstream_topic=settings.clickstream_topic,
        dead_letter_topic=settings.dead_letter_topic,
        features_topic=settings.features_topic,
        group_id=f"{settings.consumer_group}-features",
        watermark_delay_ms=settings.watermark_delay_ms,
        source_idle_timeout_ms=settings.source_idle_timeout_ms,
        client_properties=tuple(java_client_properties(settings).items()),
        # the same weights as retrieval's popularity and ALS confidence
        event_weights=tuple(float(getattr(settings, f"als_weight_{t}"))
                            for t in COUNT_COLUMNS.values()),
        half_life_ms=half_life_ms,
        pair_windows_ms=(int(settings.stream_co_view_window_minutes * 60_000),
                         int(settings.fbt_window_hours * 3_600_000)),
        catalogue_path=catalogue_path,
        emit_interval_ms=settings.stream_emit_interval_ms,
        emit_max_rows=settings.stream_emit_max_rows,
        feast_project=feast["project"],
        key_serialization_version=int(feast.get("entity_key_serialization_version", 3)),
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


def _map_option(values: dict[str, str]) -> str:
    """A Flink map option, each level quoted: values hold ':' and ','."""
    def quoted(text: str, mark: str) -> str:
        return mark + text.replace(mark, mark * 2) + mark

    return ",".join(quoted(quoted(k, '"') + ":" + quoted(v, '"'), "'")
                    for k, v in values.items())


def flink_options(settings: Settings, restore_from: Path | None,
                  cfg: JobConfig | None = None, udf_jar: Path | None = None) -> dict[str, str]:
    jars_dir = settings.flink_jars_path
    missing = [jar for jar in JARS if not (jars_dir / jar).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)} in {jars_dir}: run `make setup`")
    jars = [jars_dir / jar for jar in JARS] + ([udf_jar] if udf_jar else [])
    cfg = cfg or job_config(settings)
    options = {
        "pipeline.name": "recsys-features",
        "pipeline.jars": ";".join(jar.as_uri() for jar in jars),
        "pipeline.global-job-parameters": _map_option(cfg.job_parameters()),
        # records are handed between chained operators as they are (none is kept or changed
        # after it is passed on)
        "pipeline.object-reuse": "true",
        "parallelism.default": str(settings.flink_parallelism),
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

    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    settings = Settings()
    restore_from = latest_checkpoint(settings.checkpoint_path) if args.restore else None
    catalogue = export_catalogue(settings)
    cfg = job_config(settings, str(catalogue) if catalogue else "")
    udf_jar = ensure_udf_jar(settings.flink_jars_path, settings.java_home)
    options = flink_options(settings, restore_from, cfg, udf_jar)
    config = Configuration()
    for key, value in options.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    # the gateway builds the topology, so it must see the job's classes too
    add_jars_to_context_class_loader(options["pipeline.jars"].split(";"))
    gateway = get_gateway()
    client_properties = gateway.jvm.java.util.HashMap()
    for key, value in cfg.client_properties:
        client_properties.put(key, value)
    java_class(gateway, JOB_CLASS).build(env._j_stream_execution_environment, client_properties)
    client = env.execute_async("recsys-features")
    restored = f" (restored from {restore_from})" if restore_from else ""
    print(f"recsys-features job {client.get_job_id()} running{restored}", flush=True)
    client.get_job_execution_result().result()
    return 0


def java_class(gateway, name: str):
    """A Java class through the py4j gateway, by its dotted name."""
    target = gateway.jvm
    for part in name.split("."):
        target = getattr(target, part)
    return target


if __name__ == "__main__":
    sys.exit(main())
