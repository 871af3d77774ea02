"""Steps 9 and 10 of ``recsys demo``, while the serving API is up.

9. Simulated users with hidden tastes (:mod:`recsys.simulator`) compare ALS + ranker with
   popularity through the real API; their clicks go back through ``POST /events``; the
   report (rates with 95 % intervals) is printed and logged to MLflow.
10. The rollback drill (:mod:`rollback.drill`): a faulty copy of the champion goes live,
    the monitor's score drift fires a Prometheus alert, Alertmanager calls the rollback
    service, the alias moves back and the API serves the previous version; the timeline
    is printed. The check: restored and verified within :data:`RESTORE_TARGET_S`, and no
    request failed meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from recsys.settings import Settings

RESTORE_TARGET_S = 60.0
AB_USERS, AB_ROUNDS = 300, 2
DRILL_USERS = 300


def closed_loop(console: Console, dataset: Path):
    """The demo's ``while_serving`` step (see :func:`api.demo.serve_demo`)."""

    def run(settings: Settings, api_url: str, token: str) -> bool:
        from recsys.simulator import HiddenWorld, SimulationConfig, Simulator, log_to_mlflow
        from rollback.drill import run_drill

        world = HiddenWorld.from_dataset(dataset)
        headers = {"Authorization": f"Bearer {token}"}
        console.rule("9. simulated users: ALS + ranker vs popularity (A/B)")
        with httpx.Client(base_url=api_url, timeout=10) as client:
            report = Simulator(client, world, SimulationConfig(users=AB_USERS, rounds=AB_ROUNDS),
                               write_headers=headers).run()
        console.print(report.markdown(), markup=False)
        run_id = log_to_mlflow(report, settings.mlflow_tracking_uri, dataset)
        console.print(f"  MLflow run {run_id} (experiment ab-simulation)")
        ab_ok = all(report.arms[arm].impressions > 0 for arm in report.arms)

        console.rule("10. rollback drill: a faulty model goes live as champion")
        # a seeded sample of the population the baseline describes (sorted ids would be
        # a slice of it: u1, u10, u100, u1000, …)
        pool = sorted(world.tastes)
        users = [str(u) for u in np.random.default_rng(7).choice(
            pool, size=min(DRILL_USERS, len(pool)), replace=False)]
        with httpx.Client(base_url=api_url, timeout=10) as client:
            simulator = Simulator(client, world, SimulationConfig(seed=7), write_headers=headers)
            result = run_drill(settings, api_url, simulator, users,
                               settings.state_path / "drill",
                               log=lambda m: console.print(f"  {m}"))
        table = Table("t (s)", "what", "detail", title="rollback timeline")
        for what, seconds, detail in result.timeline.rows():
            table.add_row("–" if seconds is None else f"{seconds:+.1f}", what, detail)
        console.print(table)
        traffic = Table("served version", "requests", "impressions", "clicks", "CTR",
                        title="simulated traffic during the drill")
        for version, tally in sorted(result.traffic.items()):
            ctr = tally["clicks"] / tally["impressions"] if tally["impressions"] else 0.0
            label = version + (" (faulty)" if version == result.faulty_version else "")
            traffic.add_row(label, str(tally["requests"]), str(tally["impressions"]),
                            str(tally["clicks"]), f"{ctr:.3f}")
        console.print(traffic)
        took = result.live_to_restored_s
        drill_ok = (result.quiet_before and result.restored and result.verified
                    and took is not None
                    and took <= RESTORE_TARGET_S and result.failed_requests == 0)
        console.print(f"  drill: {'ok' if drill_ok else 'FAILED'} — faulty version live → "
                      f"previous version served again in "
                      f"{'–' if took is None else f'{took:.1f}'} s (target ≤ "
                      f"{RESTORE_TARGET_S:.0f} s), {result.failed_requests} failed requests")
        return ab_ok and drill_ok

    return run
