"""Sinks: where the stream stage's rows go (the lake, the firehose); each reads the hub with its own
consumer group."""
