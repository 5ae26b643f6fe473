"""Sinks: where enriched events go after the shared enrichment (the lake, the firehose)."""
