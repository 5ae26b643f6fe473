"""Sinks: where the stream stage's rows go; each reads the hub with its own consumer group."""
