"""The inspector: recent good and bad events of test apps, in memory, for people and tests to query
(docs/architecture.md, "The inspector")."""
