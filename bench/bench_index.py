"""Benchmark: the exact top-N scan, three ways, side by side in one process.

    python bench/bench_index.py [--factors PATH/item_factors.npy --users PATH/user_factors.npy]

Top-``N`` of every item by inner product for one query at a time, one BLAS/OpenMP thread
(as in the API): ``ExactIndex`` (factors kept transposed, one axpy-shaped product), the
row-major product ``item_factors @ q``, and faiss's ``IndexFlatIP``. Each path excludes
the same 30 items and must return the same top-N. Without ``--factors`` the factors are
random normal (100K × 64); with them (a trained retrieval folder, e.g. a bench_api
state's ``ranker-cache/*/1/retrieval``) the queries are that model's user vectors.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from retrieval.index import ExactIndex, top_n


def timed(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], queries: np.ndarray,
          excludes: list[np.ndarray], repeats: int) -> tuple[float, float, list[np.ndarray]]:
    """p50 / p99 ms of ``fn(query, exclude)`` over ``repeats`` passes, and its answers."""
    answers = [fn(q, e) for q, e in zip(queries, excludes, strict=True)]  # warm-up
    times = []
    for _ in range(repeats):
        for q, e in zip(queries, excludes, strict=True):
            t0 = time.perf_counter()
            fn(q, e)
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=Path, help="item_factors.npy of a trained model")
    parser.add_argument("--users", type=Path, help="user_factors.npy (queries)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import faiss
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    if args.factors:
        factors = np.load(args.factors).astype(np.float32)
        users = np.load(args.users).astype(np.float32) if args.users else None
        if users is not None:  # users without training events have zero vectors: all ties
            users = users[np.abs(users).sum(axis=1) > 0]
    else:
        factors = rng.standard_normal((args.items, args.dim)).astype(np.float32)
        users = None
    queries = (users[rng.choice(len(users), args.queries, replace=False)] if users is not None
               else rng.standard_normal((args.queries, factors.shape[1])).astype(np.float32))
    excludes = [rng.choice(len(factors), 30, replace=False) for _ in range(args.queries)]
    n = args.n

    index = ExactIndex(factors)
    flat = faiss.IndexFlatIP(factors.shape[1])
    flat.add(factors)

    def row_major(q: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        scores = factors @ q
        scores[exclude] = -np.inf
        return top_n(scores, n)

    def faiss_flat(q: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        _, ids = flat.search(q.reshape(1, -1), n + len(exclude))
        ids = ids[0]
        return ids[~np.isin(ids, exclude)][:n]

    paths = {"ExactIndex (transposed)": lambda q, e: index.search(q, n, None, e)[0],
             "item_factors @ q": row_major, "faiss IndexFlatIP": faiss_flat}
    faiss.omp_set_num_threads(1)
    results = {}
    with threadpool_limits(1):
        for name, fn in paths.items():
            results[name] = timed(fn, queries, excludes, args.repeats)
    reference = results["item_factors @ q"][2]
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    source = args.factors or f"random normal {len(factors):,} × {factors.shape[1]}"
    print(f"top-{n} of {len(factors):,} items × {factors.shape[1]} factors ({source}), "
          f"{args.queries} queries × {args.repeats}, 1 thread")
    print()
    print("| date | machine | path | p50 ms | p99 ms | same top-N as the row-major product |")
    print("|---|---|---|---|---|---|")
    for name, (p50, p99, answers) in results.items():
        same = np.mean([set(a.tolist()) == set(r.tolist())
                        for a, r in zip(answers, reference, strict=True)])
        print(f"| {date.today()} | {machine} | {name} | {p50:.3f} | {p99:.3f} | {same:.3f} |")


if __name__ == "__main__":
    main()
