"""Prove the stream jobs' environment works: PyFlink + Java run a SQL job locally.

Run with the Flink interpreter (``.venv-flink/bin/python -m stream_jobs.flink_smoke``);
prints one JSON line with the aggregated rows. It uses an event-time tumbling
window so the watermark machinery the feature jobs rely on is exercised.
"""

from __future__ import annotations

import json


def main() -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    env.execute_sql(
        """
        CREATE TEMPORARY VIEW clicks AS SELECT * FROM (VALUES
            ('u1', 'click', TIMESTAMP '2026-01-01 00:00:10'),
            ('u1', 'view',  TIMESTAMP '2026-01-01 00:00:20'),
            ('u2', 'click', TIMESTAMP '2026-01-01 00:01:05'),
            ('u1', 'click', TIMESTAMP '2026-01-01 00:01:30')
        ) AS t(user_id, event_type, ts)
        """
    )
    result = env.execute_sql(
        """
        SELECT user_id, window_start, COUNT(*) AS n_events,
               SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS n_clicks
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
        GROUP BY user_id, window_start, window_end
        """
    )
    with result.collect() as rows:
        out = sorted([row[0], str(row[1]), row[2], row[3]] for row in rows)
    print(json.dumps({"rows": out}))


if __name__ == "__main__":
    main()
