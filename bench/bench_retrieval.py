"""Benchmark: ALS training time and peak memory; candidate latency, exact and approximate.

    python bench/bench_retrieval.py --dataset /tmp/synth-10m

The data set is generated first when the folder does not exist (1M users × 100K items ×
10M interactions by default; ~20 s). Prints the timings and Markdown rows for
BENCHMARKS.md. Peak memory is the process's maximum resident set size (getrusage),
which includes the interpreter, the loaded events and the matrix. Candidate latency is
one user per call through :class:`retrieval.candidates.CandidateGenerator` (history
lookup, exclusion of seen items, top-N), one thread, after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from datetime import date
from pathlib import Path

import numpy as np

from recsys.datasets.synthetic import SyntheticConfig, generate
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.index import HNSWIndex
from retrieval.interactions import load_interactions
from retrieval.model import fit_retrieval


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(fn, users: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``fn(user)`` over ``users`` (after 20 warm-up calls)."""
    for u in users[:20]:
        fn(u)
    times = []
    for u in users:
        start = time.perf_counter()
        fn(u)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/synth-10m"))
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", type=int, default=400)
    args = parser.parse_args()

    if not args.dataset.exists():
        print(f"generating {args.dataset} …", flush=True)
        generate(SyntheticConfig(n_users=args.users, n_items=args.items,
                                 n_interactions=args.interactions), args.dataset)
    cores = os.cpu_count() or 0
    t0 = time.perf_counter()
    events = load_interactions(args.dataset)
    catalogue = load_catalogue(args.dataset)
    load_s = time.perf_counter() - t0
    print(f"loaded {len(events):,} events, {events.n_users:,} users, {events.n_items:,} items "
          f"in {load_s:.1f}s; peak RSS {peak_mib():,.0f} MiB", flush=True)

    def on_iteration(i: int, seconds: float, _loss: float | None) -> None:
        print(f"  ALS iteration {i + 1}/{args.iterations}: {seconds:.1f}s", flush=True)

    als_config = ALSConfig(factors=args.factors, iterations=args.iterations)
    t0 = time.perf_counter()
    model = fit_retrieval(events, catalogue, als_config, show_progress=False,
                          callback=on_iteration)
    fit_s = time.perf_counter() - t0
    train_s = model.metrics["train_seconds"]
    fit_peak = peak_mib()
    print(f"fit {fit_s:.1f}s (matrix {model.metrics['matrix_seconds']:.1f}s, ALS {train_s:.1f}s"
          f", content vectors for {model.metrics['cold_items']:,} cold items + popularity "
          f"{fit_s - train_s - model.metrics['matrix_seconds']:.1f}s); nnz "
          f"{model.metrics['nnz']:,}; peak RSS {fit_peak:,.0f} MiB", flush=True)

    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    active = np.flatnonzero(np.diff(model.user_items.indptr) >= 5)
    users = rng.choice(active, min(args.queries, len(active)), replace=False)
    ids = model.user_ids[users]
    config = RetrievalConfig(exclude="seen", candidate_count=args.candidates)
    exact = CandidateGenerator(model, config)
    t0 = time.perf_counter()
    hnsw_index = HNSWIndex(model.als.item_factors, args.hnsw_m, 200, args.ef_search)
    build_s = time.perf_counter() - t0
    approx = CandidateGenerator(model, config, index=hnsw_index)
    n = args.candidates
    with threadpool_limits(1):
        e50, e99 = latency(lambda u: exact.for_user(u, n), ids)
        a50, a99 = latency(lambda u: approx.for_user(u, n), ids)
        recall = float(np.mean([
            len(set(exact.for_user(u, n).item_index) & set(approx.for_user(u, n).item_index)) / n
            for u in ids[:500]]))
    print(f"candidates top-{n} of {events.n_items:,} items, {len(ids):,} users, 1 thread:")
    print(f"  exact (BLAS):         p50 {e50:.2f} ms  p99 {e99:.2f} ms")
    print(f"  HNSW (faiss M={args.hnsw_m}, efSearch={args.ef_search}): p50 {a50:.2f} ms  "
          f"p99 {a99:.2f} ms  recall@{n} vs exact {recall:.3f}  (build {build_s:.1f}s)")

    machine = f"{platform.machine()} {cores} cores"
    print()
    print("| date | machine | users | items | events | factors | iterations | ALS s "
          "| fit s (incl. matrix, content, popularity) | peak RSS MiB |")
    print(f"| {date.today()} | {machine} | {events.n_users:,} | {events.n_items:,} | "
          f"{len(events):,} | {args.factors} | {args.iterations} | {train_s:.1f} | {fit_s:.1f} | "
          f"{fit_peak:,.0f} |")
    print()
    print(f"| date | machine | items | N | exact p50/p99 ms | HNSW p50/p99 ms "
          f"| HNSW recall@{n} |")
    print(f"| {date.today()} | {machine} | {events.n_items:,} | {n} | {e50:.2f} / {e99:.2f} | "
          f"{a50:.2f} / {a99:.2f} | {recall:.3f} |")


if __name__ == "__main__":
    main()
