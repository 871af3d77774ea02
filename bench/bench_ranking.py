"""Benchmark: LightGBM LambdaRank training time; ONNX Runtime latency for 200 candidates.

    python bench/bench_ranking.py --dataset /tmp/synth-ranking

Generates the synthetic set when the folder is missing (10K users × 2K items × 200K
interactions by default), builds the ranker's training set exactly as
``recsys ranking train`` does (temporal split, point-in-time joins from a scratch Feast
repository backfilled from the data set), then:

- trains LightGBM LambdaRank twice: with early stopping (the default), and for exactly
  ``--trees`` rounds (the serving budget's upper bound), timing each;
- scores one request of ``--candidates`` rows ``--requests`` times through ONNX Runtime:
  the bundle's session (1 intra-op thread, sequential, all graph optimisations), 2
  threads, no graph optimisation, 50/100 trees, float64 rows cast per request, and
  LightGBM's own predict, plus :func:`ranking.features.assemble` for one request (the
  API calls it per request): p50/p99 in ms, the scorers interleaved in rounds so that
  load from other processes hits all of them alike.

Quantization is not measured: it does not apply to tree ensembles (see
``ranking/onnx_export.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from ranking import onnx_export
from ranking.backfill import backfill_metadata_views, backfill_stream_views
from ranking.dataset import temporal_split
from ranking.features import (
    FEATURE_NAMES,
    ITEM_FEATURE_REFS,
    USER_FEATURE_REFS,
    assemble,
    full_name,
)
from ranking.model import (
    RankerConfig,
    fit_ranker,
    ranking_metrics,
    rerank,
    retrieval_order,
)
from ranking.pit import scratch_feature_store
from ranking.train import build_split_set
from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.settings import Settings
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.interactions import load_interactions

ROUND = 250


def interleaved(fns, requests: int) -> list[np.ndarray]:
    """Milliseconds per call of each ``fn``, run in alternating rounds of ``ROUND`` calls
    after 50 warm-up calls each, so that a burst of load from other processes on a shared
    machine hits every scorer alike instead of whichever ran at that moment."""
    for fn in fns:
        for _ in range(50):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(requests // ROUND, 1)):
        for fn, out in zip(fns, times, strict=True):
            for _ in range(ROUND):
                start = time.perf_counter()
                fn()
                out.append((time.perf_counter() - start) * 1000)
    return [np.asarray(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/synth-ranking"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5_000)
    args = parser.parse_args()

    if not args.dataset.exists():
        print(f"generating {args.dataset} …", flush=True)
        generate(SyntheticConfig(n_users=args.users, n_items=args.items,
                                 n_interactions=args.interactions), args.dataset)
    settings = Settings(_env_file=None)
    events, catalogue = load_interactions(args.dataset), load_catalogue(args.dataset)
    split = temporal_split(events, settings.ranker_cutoff_quantile)
    als = ALSConfig.from_settings(settings)
    rconfig = RetrievalConfig(candidate_count=args.candidates)
    t0 = time.perf_counter()
    with scratch_feature_store(settings) as (scratch, store):
        backfill_stream_views(events, scratch.offline_store_path, "bench")
        backfill_metadata_views(args.dataset, scratch.offline_store_path, "bench")
        data, truth, history = build_split_set(split, catalogue, als, rconfig, store,
                                               settings.ranker_labels, print)
    build_s = time.perf_counter() - t0
    print(f"training set: {len(data.queries):,} queries, {len(data.x):,} rows × "
          f"{data.x.shape[1]} features in {build_s:.1f}s (Feast joins "
          f"{data.timings['join_seconds']:.1f}s)", flush=True)

    config = RankerConfig.from_settings(settings).with_(max_trees=args.trees)
    train, valid = data.split_users(config.validation_share, config.seed)
    early = fit_ranker(train, valid, config, print)
    full = fit_ranker(train, valid, config, print, early_stopping=False)
    ranked = ranking_metrics(rerank(valid, early.predict(valid.x)), truth)
    base = ranking_metrics(retrieval_order(valid), truth)
    print(f"validation nDCG@10 (binary): ranker {ranked['ndcg']:.4f} vs retrieval order "
          f"{base['ndcg']:.4f}; P@10 {ranked['precision']:.4f} vs {base['precision']:.4f}")
    print(f"LightGBM: early stopping {early.seconds:.1f}s ({early.best_iteration} trees); "
          f"{args.trees} rounds {full.seconds:.1f}s; {len(train.x):,} training rows",
          flush=True)

    rng = np.random.default_rng(0)
    row0 = rng.integers(0, len(valid.x) - args.candidates)
    x = np.ascontiguousarray(valid.x[row0:row0 + args.candidates])
    x64 = x.astype(np.float64)
    model_trees = full.booster.current_iteration()

    def ort(trees: int, threads: int = 1, opt: str = "all", cast: bool = False):
        sess = onnx_export.session(
            onnx_export.to_onnx(full.booster, len(FEATURE_NAMES), trees), threads, opt)
        if cast:
            return lambda: onnx_export.run(sess, x64.astype(np.float32))
        return lambda: onnx_export.run(sess, x)

    query = valid.queries[0]
    user = {full_name(r): None for r in USER_FEATURE_REFS}
    cands = CandidateGenerator(history, rconfig).for_user(query.user_id)
    items = {full_name(r): [1] * len(cands) for r in ITEM_FEATURE_REFS}
    now = datetime.now(UTC)
    scorers = [
        ("ONNX Runtime, 1 thread, sequential, all opts", model_trees, ort(model_trees)),
        ("ONNX Runtime, 2 threads", model_trees, ort(model_trees, threads=2)),
        ("ONNX Runtime, 1 thread, no graph optimisation", model_trees,
         ort(model_trees, opt="none")),
        ("ONNX Runtime, float64 rows cast per request", model_trees,
         ort(model_trees, cast=True)),
        ("ONNX Runtime, 1 thread, fewer trees", 100, ort(100)),
        ("ONNX Runtime, 1 thread, fewer trees", 50, ort(50)),
        ("ONNX Runtime, 1 thread, early-stopped model", early.best_iteration,
         ort(early.best_iteration)),
        ("LightGBM predict, 1 thread", model_trees,
         lambda: full.booster.predict(x, num_threads=1)),
        (f"assemble() (features for {len(cands)} candidates)", None,
         lambda: assemble(cands, query.user_id, user, items, history, now)),
    ]
    print(f"scoring {args.candidates} candidates × {len(FEATURE_NAMES)} features, "
          f"{args.requests:,} requests each, interleaved in rounds of {ROUND}:", flush=True)
    times = interleaved([fn for _, _, fn in scorers], args.requests)
    results = []
    for (label, trees, _), t in zip(scorers, times, strict=True):
        p50, p99 = float(np.percentile(t, 50)), float(np.percentile(t, 99))
        results.append((label, trees, p50, p99))
        print(f"  {label:<48} {trees or '–':>4} trees  p50 {p50:.3f} ms  p99 {p99:.3f} ms")

    machine = f"{platform.machine()} {os.cpu_count()} cores"
    today = date.today().isoformat()
    print()
    print("| date | machine | data | queries | rows | LightGBM early stopping s (trees) "
          f"| LightGBM {args.trees} rounds s | val nDCG@10 ranker / retrieval |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {today} | {machine} | {args.users:,} users × {args.items:,} items × "
          f"{args.interactions:,} events | {len(train.queries):,} | {len(train.x):,} | "
          f"{early.seconds:.1f} ({early.best_iteration}) | {full.seconds:.1f} | "
          f"{ranked['ndcg']:.3f} / {base['ndcg']:.3f} |")
    print()
    print("| date | machine | scorer | trees | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for label, trees, p50, p99 in results:
        print(f"| {today} | {machine} | {label} | {trees or '–'} | {p50:.3f} | {p99:.3f} |")

if __name__ == "__main__":
    main()
