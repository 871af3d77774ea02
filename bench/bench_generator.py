"""Benchmark: synthetic generator time and peak memory.

    python bench/bench_generator.py --users 1000000 --items 100000 --interactions 10000000

Prints one Markdown table row for BENCHMARKS.md. Peak memory is the process's
maximum resident set size (getrusage), which includes the interpreter and
libraries.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from recsys.datasets.synthetic import SyntheticConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="keep the data set here")
    args = parser.parse_args()

    cfg = SyntheticConfig(n_users=args.users, n_items=args.items,
                          n_interactions=args.interactions, seed=args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-gen-")) / "synthetic"
    done = 0

    def progress(rows: int) -> None:
        nonlocal done
        done += rows
        print(f"  {done:,}/{cfg.n_interactions:,} events", flush=True)

    start = time.perf_counter()
    manifest = generate(cfg, out, overwrite=True, progress=progress)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mib = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    if args.out is None:
        shutil.rmtree(out.parent)
    print("| date | machine | users | items | events | wall s | events/s | peak RSS MiB "
          "| size MiB |")
    print(f"| {date.today()} | {platform.machine()} {_cores()} cores | {cfg.n_users:,} | "
          f"{cfg.n_items:,} | {manifest['events']:,} | {seconds:.1f} | "
          f"{manifest['events'] / seconds:,.0f} | {peak_mib:,.0f} | {size_mib:,.0f} |")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
