"""The stream stage: hub messages → enriched rows, shared by every sink (docs/architecture.md)."""
