"""Live metrics: a third sink on the hub (consumer group `metrics`, in the real-time Function App beside
the firehose) that keeps per-minute, hour and day counters per app, branded link, domain and workspace
in Azure Table storage, exactly once (`sink`, `store`, `counters`); `api` answers GET /api/metrics and
serves the dashboard that reads it."""
