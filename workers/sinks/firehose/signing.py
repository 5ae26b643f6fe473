"""Standard Webhooks signatures (https://www.standardwebhooks.com/, the `v1` HMAC-SHA256 scheme).

`webhook-signature` holds `v1,<base64 HMAC-SHA256(secret, "<webhook-id>.<webhook-timestamp>.<body>")>`
once per secret, space-separated, so a receiver rotating its secret accepts either during the overlap.
The timestamp is taken afresh on every attempt (receivers refuse stale ones); the id never changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def signature(secret: bytes, batch_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{batch_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(
    secrets: tuple[bytes, ...], batch_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": batch_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, batch_id, timestamp, body) for s in secrets),
    }
