"""Rollback: moves the MLflow champion alias back to the last stable version on alerts."""
