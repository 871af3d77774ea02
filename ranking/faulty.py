"""A deliberately faulty ranker version, for rollback drills (``recsys demo``, tests).

It copies a registered version and breaks it the way an export bug would: the retrieval
model's item factors are permuted and their sign flipped, so every item id points at
another item's factors, negated (a permutation alone hides in a small catalogue: when
the top-200 candidates are the whole catalogue, the users' ALS scores are the same set
of numbers, only attached to other items).
Everything a load-time check can see stays valid (files, shapes, the ONNX parity rows,
the drift baseline of the original, the validation metric), so the API accepts it. Live,
its candidates no longer fit the user: the ranker's served scores fall away from the
baseline saved with the model (score drift) and fewer recommendations are clicked.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ranking import registry
from ranking.bundle import REGISTRY_FILE, RETRIEVAL_DIR, RankerBundle
from recsys.settings import Settings

FAULTY_TAG = "faulty"
ITEM_FACTORS = "item_factors.npy"


def scramble_item_factors(bundle: Path, out: Path, seed: int = 7) -> Path:
    """Copy ``bundle`` to ``out`` with its retrieval item factors permuted and negated."""
    shutil.copytree(bundle, out)
    (out / REGISTRY_FILE).unlink(missing_ok=True)  # a cached download's bookkeeping
    path = out / RETRIEVAL_DIR / ITEM_FACTORS
    factors = np.load(path, allow_pickle=False)
    np.save(path, -factors[np.random.default_rng(seed).permutation(len(factors))])
    return out


def register_faulty(settings: Settings, source_version: str, seed: int = 7) -> str:
    """Register a scrambled copy of ``source_version`` as a new version (not aliased).

    The new version carries the source's validation metric, as a buggy pipeline would
    report it, and the tag ``faulty=true`` so a reader of the registry can tell.
    """
    client = registry.client_for(settings)
    name = settings.registered_model_name
    source = RankerBundle.load(f"models:/{name}/{source_version}", settings)
    tags = client.get_model_version(name, source_version).tags or {}
    with tempfile.TemporaryDirectory(prefix="recsys-faulty-") as tmp:
        folder = scramble_item_factors(source.folder, Path(tmp) / "bundle", seed)
        run_id = registry.log_run(
            client, settings, folder,
            params={"source_version": source_version,
                    "fault": "item factors permuted and negated", "seed": seed},
            metrics={}, tags={FAULTY_TAG: "true"}, run_name="faulty-drill")
    metric = tags.get(registry.METRIC_TAG, "ndcg@10")
    value = float(tags.get(registry.VALUE_TAG, "0"))
    return registry.register(client, name, run_id, metric, value,
                             tags.get(registry.DATA_TAG, ""),
                             extra_tags={FAULTY_TAG: "true",
                                         "faulty_source_version": str(source_version)})
