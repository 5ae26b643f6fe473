"""Enrichment: the contract lives in base.py, the steps in their own modules, the assembly in pipeline.py."""
