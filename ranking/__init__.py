"""Ranking: LightGBM LambdaRank on point-in-time features, ONNX export, MLflow registry."""
