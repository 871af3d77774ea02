"""A ranker version as one folder: ONNX graph, LightGBM model, feature list, parity rows,
drift baseline, metrics and the retrieval model it was trained with (no pickles).

    bundle.json          format, feature names, trees, parity result, validation metric
    ranker.onnx          what serving scores with (ONNX Runtime)
    ranker_lightgbm.txt  the LightGBM model (text), for inspection and re-export
    parity.npz           held-out rows with LightGBM's scores (smoke check at load)
    drift_baseline.json  feature and score distributions (monitoring.baseline)
    metrics.json  params.json  importance.json
    retrieval/           retrieval.artifacts folder (ALS, catalogue, popularity, …)

The same folder is the MLflow artifact directory of the registered model version, so a
rollback of the ``champion`` alias restores ranker and retrieval together.
:meth:`RankerBundle.load` accepts ``models:/<name>@<alias>``, ``models:/<name>/<version>``
or a folder. Downloads are kept under ``<state_dir>/ranker-cache/<name>/<version>`` with
the alias → version last seen, so a process can start from the cache when MLflow is down.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.baseline import BASELINE_FILE, DriftBaseline
from ranking import onnx_export
from ranking.features import FEATURE_NAMES
from recsys.settings import Settings, get_settings
from retrieval.artifacts import ArtifactError, load_model, save_model
from retrieval.model import RetrievalModel

log = logging.getLogger(__name__)

FORMAT = 1
BUNDLE_FILE = "bundle.json"
ONNX_FILE = "ranker.onnx"
LIGHTGBM_FILE = "ranker_lightgbm.txt"
PARITY_FILE = "parity.npz"
METRICS_FILE = "metrics.json"
PARAMS_FILE = "params.json"
IMPORTANCE_FILE = "importance.json"
RETRIEVAL_DIR = "retrieval"
REGISTRY_FILE = "registry.json"  # written into cached downloads: name, version, source
ALIASES_FILE = "aliases.json"
REQUIRED = (BUNDLE_FILE, ONNX_FILE, PARITY_FILE, BASELINE_FILE, METRICS_FILE, RETRIEVAL_DIR)


class BundleError(RuntimeError):
    """A ranker version is missing, corrupt, or does not fit this code."""


def cache_root(settings: Settings) -> Path:
    return settings.state_path / "ranker-cache"


def write_bundle(out: Path, *, onnx_bytes: bytes, lightgbm_text: str, parity_x: np.ndarray,
                 parity_expected: np.ndarray, tolerance: float, max_abs_diff: float,
                 baseline: DriftBaseline, retrieval: RetrievalModel, metrics: dict[str, Any],
                 params: dict[str, Any], importance: dict[str, float],
                 meta: dict[str, Any]) -> Path:
    """Write a complete bundle folder (``out`` must not exist or be empty)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_FILE).write_bytes(onnx_bytes)
    (out / LIGHTGBM_FILE).write_text(lightgbm_text)
    np.savez_compressed(out / PARITY_FILE, x=np.asarray(parity_x, np.float32),
                        expected=np.asarray(parity_expected, np.float64))
    baseline.save(out)
    save_model(retrieval, out / RETRIEVAL_DIR)
    for name, data in ((METRICS_FILE, metrics), (PARAMS_FILE, params),
                       (IMPORTANCE_FILE, importance)):
        (out / name).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    info = {
        "format": FORMAT, "feature_names": list(FEATURE_NAMES),
        "onnx_opset": onnx_export.TARGET_OPSET, "input": onnx_export.INPUT_NAME,
        "parity": {"rows": len(parity_x), "max_abs_diff": max_abs_diff,
                   "tolerance": tolerance},
        "created": datetime.now(UTC).isoformat(timespec="seconds"), **meta,
    }
    (out / BUNDLE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out


@dataclass
class RankerBundle:
    name: str
    version: str
    feature_names: tuple[str, ...]
    retrieval: RetrievalModel
    baseline: DriftBaseline
    metrics: dict[str, Any]
    folder: Path
    info: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    _session: Any = field(default=None, repr=False)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Ranker scores of the rows of ``x`` (n × len(feature_names), float32)."""
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"x has shape {x.shape}; the ranker takes "
                             f"(n, {len(self.feature_names)})")
        return onnx_export.run(self._session, x)

    def smoke_check(self) -> None:
        """Re-score the stored parity rows; BundleError if ONNX disagrees with LightGBM."""
        try:
            with np.load(self.folder / PARITY_FILE, allow_pickle=False) as data:
                x, expected = data["x"], data["expected"]
            got = self.score(x)
        except Exception as exc:  # corrupt file, wrong shapes, ORT failure
            raise BundleError(f"{self.folder}: smoke check could not run: {exc}") from exc
        tolerance = float(self.info.get("parity", {}).get("tolerance", 1e-4))
        diff = float(np.max(np.abs(got - expected))) if len(x) else 0.0
        if not np.isfinite(got).all() or diff > tolerance:
            raise BundleError(f"{self.folder}: ONNX scores differ from the stored LightGBM "
                              f"scores by {diff:.3g} (tolerance {tolerance:g})")

    @classmethod
    def from_folder(cls, folder: Path, name: str | None = None, version: str | None = None,
                    threads: int = 1) -> RankerBundle:
        """Load and validate a bundle folder; BundleError naming what is wrong."""
        folder = Path(folder)
        if not folder.is_dir():
            raise BundleError(f"{folder}: not a folder")
        missing = [f for f in REQUIRED if not (folder / f).exists()]
        if missing:
            raise BundleError(f"{folder}: missing {', '.join(missing)}")
        try:
            info = json.loads((folder / BUNDLE_FILE).read_text())
            metrics = json.loads((folder / METRICS_FILE).read_text())
        except ValueError as exc:
            raise BundleError(f"{folder}: {BUNDLE_FILE} or {METRICS_FILE} is not JSON: "
                              f"{exc}") from exc
        if info.get("format") != FORMAT:
            raise BundleError(f"{folder}: bundle format {info.get('format')!r}, "
                              f"this code reads {FORMAT}")
        names = tuple(info.get("feature_names") or ())
        if names != FEATURE_NAMES:
            extra = sorted(set(names) - set(FEATURE_NAMES))
            lacking = sorted(set(FEATURE_NAMES) - set(names))
            order = ", order differs" if not extra and not lacking else ""
            raise BundleError(f"{folder}: feature list mismatch (bundle has {len(names)}, "
                              f"code assembles {len(FEATURE_NAMES)}; unknown {extra[:5]}, "
                              f"missing {lacking[:5]}{order})")
        try:
            baseline = DriftBaseline.load(folder)
        except (ValueError, OSError) as exc:
            raise BundleError(f"{folder}: {BASELINE_FILE}: {exc}") from exc
        try:
            retrieval = load_model(folder / RETRIEVAL_DIR)
        except (ArtifactError, ValueError, OSError) as exc:
            raise BundleError(f"{folder}: retrieval model: {exc}") from exc
        try:
            sess = onnx_export.session((folder / ONNX_FILE).read_bytes(), threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{folder}: {ONNX_FILE} does not load: {exc}") from exc
        shape = sess.get_inputs()[0].shape
        if len(shape) != 2 or shape[1] != len(FEATURE_NAMES):
            raise BundleError(f"{folder}: {ONNX_FILE} takes input shape {shape}, the features "
                              f"are {len(FEATURE_NAMES)}")
        registry = {}
        if (folder / REGISTRY_FILE).exists():
            registry = json.loads((folder / REGISTRY_FILE).read_text())
        return cls(name or registry.get("name") or info.get("name") or "local",
                   str(version or registry.get("version") or "local"), names, retrieval,
                   baseline, metrics, folder, info, threads, sess)

    @classmethod
    def load(cls, model_uri: str, settings: Settings | None = None) -> RankerBundle:
        """From ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a folder."""
        settings = settings or get_settings()
        threads = settings.ranker_onnx_threads
        if not model_uri.startswith("models:/"):
            return cls.from_folder(Path(model_uri), threads=threads)
        name, alias, version = parse_model_uri(model_uri)
        folder, version = _fetch(settings, name, alias, version)
        return cls.from_folder(folder, name, version, threads)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` → (name, alias, None); ``models:/name/3`` → (name, None, "3")."""
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, version
    raise BundleError(f"{uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")


def _complete(folder: Path) -> bool:
    return (folder / REGISTRY_FILE).exists()


def _aliases(root: Path) -> dict[str, str]:
    try:
        return json.loads((root / ALIASES_FILE).read_text())
    except (OSError, ValueError):
        return {}


def cached_alias(settings: Settings, name: str, alias: str) -> str | None:
    """The version ``alias`` pointed at when this machine last asked MLflow, if that
    version is complete in the local cache (what a process may start from while MLflow
    is down)."""
    root = cache_root(settings) / name
    version = _aliases(root).get(alias)
    return version if version and _complete(root / version) else None


def _fetch(settings: Settings, name: str, alias: str | None, version: str | None
           ) -> tuple[Path, str]:
    """A local copy of the version (downloaded once), falling back to the cache."""
    root = cache_root(settings) / name
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri,
                              registry_uri=settings.mlflow_tracking_uri)
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, version))
    except Exception as exc:  # MLflow down, or no such model / alias / version
        cached = _aliases(root).get(alias) if alias else version
        if cached and _complete(root / cached):
            log.warning("MLflow: %s; using cached %s version %s", exc, name, cached)
            return root / cached, cached
        raise BundleError(f"models:/{name}{'@' + alias if alias else '/' + str(version)}: "
                          f"{exc} (and no cached copy under {root})") from exc
    version = str(mv.version)
    folder = root / version
    if not _complete(folder):
        _download(settings, name, version, mv.source, folder)
    if alias:
        remember_aliases(settings, name, {alias: version})
    return folder, version


def remember_aliases(settings: Settings, name: str, aliases: dict[str, str | None]) -> None:
    """Record what the aliases point at (None: no such alias), for :func:`cached_alias`."""
    root = cache_root(settings) / name
    known = _aliases(root)
    merged = {alias: version for alias, version in {**known, **aliases}.items()
              if version is not None}
    if merged == known:
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{ALIASES_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, root / ALIASES_FILE)  # a reader never sees half a file


def _download(settings: Settings, name: str, version: str, source: str, folder: Path) -> None:
    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder.parent))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp),
                                            tracking_uri=settings.mlflow_tracking_uri)
        found = [p.parent for p in tmp.rglob(BUNDLE_FILE)]
        if len(found) != 1:
            raise BundleError(f"models:/{name}/{version} ({source}): no single {BUNDLE_FILE} "
                              "in its artifacts")
        (found[0] / REGISTRY_FILE).write_text(json.dumps({
            "name": name, "version": version, "source": source,
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        found[0].rename(folder)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"models:/{name}/{version}: download of {source} failed: "
                          f"{exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("downloaded %s version %s to %s", name, version, folder)
