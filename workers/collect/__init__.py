"""The ingest side: an HTTP request in, checked, one envelope per request out to Event Hubs.

Follow docs/architecture.md's picture: `collector` runs the sequence of checks, `body` reads the request
body (media type, gzip, CORS), `limits` and `validation` judge each event, `signing` and `quota` judge the
sender, `privacy` turns the client IP into geo and a visitor hash, and `hub` sends the envelope.
"""
