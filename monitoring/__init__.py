"""Monitoring: KS/PSI drift against each model's baseline, CTR per model version, alerts."""
