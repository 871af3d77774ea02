"""LightGBM → ONNX (onnxmltools), the parity check, and the low-latency ONNX Runtime session.

Parity: the exported graph scores held-out rows next to LightGBM's own ``predict``; the
largest absolute difference is reported and an export above the tolerance is refused
(:class:`ExportError`). The graph takes float32 (what the API assembles), LightGBM
predicts in float64 from the same float32 rows, so the differences are rounding of
thresholds and leaf sums in float32 (~1e-6).

Quantization does not apply: ONNX Runtime's quantizers rewrite MatMul/Conv/Gather
weights to int8, and a tree ensemble (``ai.onnx.ml.TreeEnsembleRegressor``) has no such
weights, only thresholds and leaf values that the op evaluates in float. What helps is
measured in ``bench/bench_ranking.py``: float32 input, fewer trees (early stopping),
one intra-op thread with sequential execution (no thread-pool hand-off for 200 rows),
and full graph optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

TARGET_OPSET = 15
INPUT_NAME = "input"


class ExportError(RuntimeError):
    """The ONNX graph does not reproduce LightGBM within the tolerance."""


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def to_onnx(booster: lgb.Booster, n_features: int, num_iteration: int | None = None) -> bytes:
    """The booster (first ``num_iteration`` trees) as a serialized ONNX model."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if num_iteration is not None and num_iteration < booster.current_iteration():
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=num_iteration))
    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET, zipmap=False)
    return model.SerializeToString()


def session(onnx_bytes: bytes, threads: int = 1, optimization: str = "all"):
    """An ONNX Runtime session tuned for one small batch at a time."""
    import onnxruntime as ort

    levels = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run(sess, x: np.ndarray) -> np.ndarray:
    """Scores of the rows of ``x`` (float32, 2-D) as a 1-D float32 array."""
    return sess.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0].ravel()


def check_parity(sess, booster: lgb.Booster, x: np.ndarray, tolerance: float,
                 num_iteration: int | None = None) -> Parity:
    """Max |ONNX − LightGBM| over the rows of ``x``; raises ExportError above tolerance."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    expected = booster.predict(x, num_iteration=num_iteration)
    got = run(sess, x)
    diff = float(np.max(np.abs(got - expected))) if len(x) else 0.0
    parity = Parity(len(x), diff, tolerance)
    if not parity.ok:
        raise ExportError(f"ONNX differs from LightGBM by up to {diff:.3g} on {len(x)} "
                          f"held-out rows (tolerance {tolerance:g}); export refused")
    return parity
