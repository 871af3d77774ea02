"""Producers (dataset replay, synthetic clickstream) and the PyFlink feature jobs."""
