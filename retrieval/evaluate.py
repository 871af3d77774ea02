"""Offline evaluation with the Microsoft Recommenders protocol; prints a Markdown table.

    python -m retrieval.evaluate --dataset ../shared/data/ml-100k

Protocol: every event (MovieLens: every rating) is an interaction; per-user stratified
random split 75/25 with a fixed seed (:mod:`retrieval.split`); top-k over items the user
has not seen in training; binary relevance; metrics as in :mod:`retrieval.metrics`.
ALS hyper-parameters are tuned on a validation split carved out of the training part
(75/25 of it again, another seed), never on the test part; the chosen configuration is
then trained on the whole training part and scored once on the test part.
``--dataset`` is a data set folder or a raw MovieLens folder (converted on the fly).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.settings import Settings
from retrieval.als import ALSModel, train_als
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.interactions import Interactions, load_interactions
from retrieval.metrics import mean_metrics, recall_at
from retrieval.model import fit_retrieval
from retrieval.popularity import Popularity
from retrieval.split import relevant_items, stratified_split

UNIFORM = {"impression": 0.0, "view": 1.0, "click": 1.0, "add_to_cart": 1.0, "purchase": 1.0}
MILD = {"impression": 0.0, "view": 1.0, "click": 1.25, "add_to_cart": 1.5, "purchase": 2.0}
GRADED = {"impression": 0.0, "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
WEIGHT_SCHEMES = {"uniform": UNIFORM, "mild": MILD, "graded": GRADED}
REFERENCE = [  # Microsoft Recommenders, MovieLens 100K, top-10
    ("reference: BiVAE (Microsoft Recommenders)", 0.412, 0.219, 0.475, 0.146),
    ("reference: BPR (Microsoft Recommenders)", 0.388, 0.213, 0.442, None),
]


@dataclass
class Row:
    name: str
    metrics: dict[str, float]
    candidate_recall: float | None = None


@dataclass
class EvaluationReport:
    rows: list[Row]
    chosen: ALSConfig
    weights_name: str
    tuning: list[tuple[str, float]] = field(default_factory=list)
    k: int = 10
    n_candidates: int = 200
    seconds: float = 0.0

    def markdown(self) -> str:
        lines = metrics_table(self.rows, self.k, self.n_candidates)
        c = self.chosen
        lines += ["", f"Chosen on the validation split: factors={c.factors}, "
                      f"regularization={c.regularization}, alpha={c.alpha}, "
                      f"iterations={c.iterations}, half_life_days={c.half_life_days}, "
                      f"event weights={self.weights_name} {_weights_text(c.event_weights)}.",
                  f"Runtime {self.seconds:.1f} s ({len(self.tuning)} configurations tried)."]
        return "\n".join(lines)


def metrics_table(rows: Iterable[Row], k: int, n_candidates: int) -> list[str]:
    """Markdown rows of the evaluation table, the published reference rows beside ours."""
    lines = [f"| model | P@{k} | R@{k} | nDCG@{k} | MAP@{k} | candidate recall@{n_candidates} |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        m = r.metrics
        cand = "–" if r.candidate_recall is None else f"{r.candidate_recall:.3f}"
        lines.append(f"| {r.name} | {m['precision']:.3f} | {m['recall']:.3f} | "
                     f"{m['ndcg']:.3f} | {m['map']:.3f} | {cand} |")
    for name, p, rc, nd, mp in REFERENCE:
        lines.append(f"| {name} | {p:.3f} | {rc:.3f} | {nd:.3f} | "
                     f"{'–' if mp is None else f'{mp:.3f}'} | – |")
    return lines


def _weights_text(w: dict[str, float]) -> str:
    return "(" + ", ".join(f"{t} {v:g}" for t, v in w.items() if t != "impression") + ")"


def top_k(scores: np.ndarray, exclude: sp.csr_matrix, users: np.ndarray, k: int
          ) -> dict[int, np.ndarray]:
    """Top-k items per user from a (users × items) score block, excluding ``exclude`` rows."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    sub = exclude[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    scores[rows, sub.indices] = -np.inf
    k = min(k, scores.shape[1])  # a catalogue smaller than k ranks every item
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    ranked = np.take_along_axis(part, order, axis=1)
    return {int(u): ranked[j] for j, u in enumerate(users)}


def als_rankings(model: ALSModel, seen: sp.csr_matrix, users: np.ndarray, k: int
                 ) -> dict[int, np.ndarray]:
    return top_k(model.user_factors[users] @ model.item_factors.T, seen, users, k)


def popularity_rankings(pop: Popularity, seen: sp.csr_matrix, users: np.ndarray, k: int
                        ) -> dict[int, np.ndarray]:
    return top_k(np.broadcast_to(pop.scores, (len(users), len(pop.scores))), seen, users, k)


def search_space(base: ALSConfig) -> Iterable[tuple[str, ALSConfig]]:
    """Grid over factors × regularization × alpha × event weights (time decay off, then on)."""
    for factors, reg, alpha, (wname, w) in itertools.product(
            (32, 64, 128, 256), (1.0, 3.0, 10.0, 30.0, 100.0), (1.0, 2.0, 5.0, 10.0),
            WEIGHT_SCHEMES.items()):
        yield wname, base.with_(factors=factors, regularization=reg, alpha=alpha,
                                event_weights=w, half_life_days=0.0)


def tune(train: Interactions, base: ALSConfig, k: int, seed: int,
         log: Callable[[str], None] = print, grid: Iterable[tuple[str, ALSConfig]] | None = None
         ) -> tuple[ALSConfig, str, list[tuple[str, float]]]:
    """Best config by validation nDCG@k, on a split of ``train`` only."""
    fit_mask, val_mask = stratified_split(train, 0.75, seed + 1)
    fit, val = train.subset(fit_mask), train.subset(val_mask)
    truth = relevant_items(val)
    users = np.array(sorted(truth), dtype=np.int64)
    seen = fit.binary()
    results: list[tuple[str, float]] = []
    best: tuple[float, ALSConfig, str] | None = None

    def score(name: str, cfg: ALSConfig) -> None:
        nonlocal best
        model = train_als(fit.matrix(cfg.event_weights, cfg.half_life_days), cfg,
                          show_progress=False)
        ndcg = mean_metrics(als_rankings(model, seen, users, k), truth, k)["ndcg"]
        label = (f"f={cfg.factors} reg={cfg.regularization} alpha={cfg.alpha} w={name} "
                 f"hl={cfg.half_life_days}")
        results.append((label, ndcg))
        if best is None or ndcg > best[0]:
            best = (ndcg, cfg, name)
            log(f"  validation nDCG@{k} {ndcg:.4f}  {label}")

    for name, cfg in grid or search_space(base):
        score(name, cfg)
    assert best is not None
    _, cfg, name = best
    span_days = (train.ts_ms.max() - train.ts_ms.min()) / 86_400_000
    for hl in (span_days / 4, span_days):  # does time decay help?
        score(name, cfg.with_(half_life_days=round(float(hl), 1)))
    for iterations in (10, 30):
        score(name, best[1].with_(iterations=iterations))
    return best[1], best[2], results


def evaluate(dataset: Path, seed: int = 42, k: int = 10, n_candidates: int = 200,
             tune_als: bool = True, settings: Settings | None = None,
             log: Callable[[str], None] = print) -> EvaluationReport:
    """Run the protocol on a data set folder (or raw MovieLens folder); returns the report."""
    started = time.perf_counter()
    dataset = _as_dataset(dataset, log)
    settings = settings or Settings(_env_file=None)
    base = ALSConfig.from_settings(settings).with_(seed=seed)
    events = load_interactions(dataset)
    catalogue = load_catalogue(dataset)
    train_mask, test_mask = stratified_split(events, 0.75, seed)
    train, test = events.subset(train_mask), events.subset(test_mask)
    truth = relevant_items(test)
    users = np.array(sorted(truth), dtype=np.int64)
    seen = train.binary()
    log(f"{len(events):,} interactions, {events.n_users:,} users, {events.n_items:,} items; "
        f"train {len(train):,} / test {len(test):,}")

    rows: list[Row] = []
    pop = Popularity.fit(train, catalogue.category_codes, UNIFORM, 0.0)
    pop_big = popularity_rankings(pop, seen, users, n_candidates)
    rows.append(Row("popularity (training counts)", mean_metrics(pop_big, truth, k),
                    recall_at(pop_big, truth, n_candidates)))

    untuned = base.with_(factors=32, alpha=5.0, regularization=0.01, iterations=15,
                         half_life_days=0.0, event_weights=UNIFORM)
    model = train_als(train.matrix(UNIFORM), untuned, show_progress=False)
    ranked = als_rankings(model, seen, users, n_candidates)
    rows.append(Row("ALS untuned (32 factors, alpha 5, reg 0.01)",
                    mean_metrics(ranked, truth, k), recall_at(ranked, truth, n_candidates)))

    results: list[tuple[str, float]] = []
    weights_name = "settings"
    chosen = base
    if tune_als:
        log("tuning ALS on a validation split of the training part …")
        chosen, weights_name, results = tune(train, base, k, seed, log)
    retrieval = fit_retrieval(train, catalogue, chosen,
                              RetrievalConfig(exclude="seen", candidate_count=n_candidates),
                              show_progress=False, now_ms=int(train.ts_ms.max()))
    warm_only = ALSModel(retrieval.als.user_factors,
                         np.where(retrieval.item_cold[:, None], 0, retrieval.als.item_factors),
                         chosen)
    ranked = als_rankings(warm_only, seen, users, n_candidates)
    rows.append(Row("ALS tuned", mean_metrics(ranked, truth, k),
                    recall_at(ranked, truth, n_candidates)))
    gen = CandidateGenerator(retrieval, RetrievalConfig(exclude="seen",
                                                        candidate_count=n_candidates))
    served = {int(u): gen.for_user(str(retrieval.user_ids[u])).item_index for u in users}
    rows.append(Row("ALS tuned via CandidateGenerator (+ content vectors for cold items)",
                    mean_metrics(served, truth, k), recall_at(served, truth, n_candidates)))
    return EvaluationReport(rows, chosen, weights_name, results, k, n_candidates,
                            time.perf_counter() - started)


def _as_dataset(path: Path, log: Callable[[str], None]) -> Path:
    if (path / "manifest.json").exists() or not ((path / "u.data").exists()
                                                 or (path / "ratings.dat").exists()):
        return path
    from recsys.datasets.movielens import load

    out = Path(tempfile.mkdtemp(prefix="retrieval-eval-")) / "movielens"
    log(f"converting MovieLens {path} → {out}")
    load(path, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True,
                        help="data set folder, or a raw MovieLens folder (u.data/ratings.dat)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--no-tune", action="store_true",
                        help="use the ALS settings as they are instead of tuning")
    args = parser.parse_args(argv)
    report = evaluate(args.dataset, args.seed, args.k, args.candidates, not args.no_tune,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    print(report.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
