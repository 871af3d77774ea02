"""Retrieval: ALS candidates, cold start, similar items, frequently bought together.

Modules, in the order data flows through them:

- :mod:`retrieval.config`        hyper-parameters (from :class:`recsys.settings.Settings`)
- :mod:`retrieval.interactions`  events → weighted user × item matrix (event type, time decay)
- :mod:`retrieval.als`           implicit ALS training, fold-in of new events
- :mod:`retrieval.content`       content vectors of items mapped into the ALS factor space
- :mod:`retrieval.popularity`    recency-weighted, category-aware popularity (cold start)
- :mod:`retrieval.index`         exact BLAS scoring and a faiss HNSW index, one interface
- :mod:`retrieval.candidates`    top-N candidates per user with filters and exclusions
- :mod:`retrieval.similar`       similar items (ALS cosine + co-occurrence)
- :mod:`retrieval.fbt`           frequently bought together (support, confidence, lift)
- :mod:`retrieval.artifacts`     save / load a trained model folder
- :mod:`retrieval.train`         ``python -m retrieval.train`` (artifacts + MLflow)
- :mod:`retrieval.evaluate`      ``python -m retrieval.evaluate`` (offline metrics table)
"""
