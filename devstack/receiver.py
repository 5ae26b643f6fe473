"""The dev stack's webhook receiver: what a customer's endpoint does, for `make dev` to show.

`python -m devstack.receiver --port P --secret whsec_… --log F` answers each POST 204 when its
Standard Webhooks signature verifies (checked with the `standardwebhooks` package, not hubcap's code)
and 401 when it does not, and appends one JSON line per request to F: the time, `webhook-id`, whether
it verified, and the event ids it carried.
"""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# Not a secret: the local receiver's key, known to the dev registry and to this receiver only.
DEV_SECRET = "whsec_aHViY2FwLWRldi1yZWNlaXZlci1ub3Qtc2VjcmV0IQ=="  # noqa: S105


def serve(port: int, secret: str, log: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    verifier = Webhook(secret)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a customer's endpoint behind any web server

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                events = verifier.verify(body, headers)["data"]
                verified = True
            except (WebhookVerificationError, ValueError, KeyError, TypeError):
                events, verified = [], False
            line = {
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "webhook_id": headers.get("webhook-id"),
                "verified": verified,
                "event_ids": [e.get("event_id") for e in events if isinstance(e, dict)],
            }
            with lock, log.open("ab") as out:
                out.write(orjson.dumps(line) + b"\n")
            self.send_response(204 if verified else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", default=DEV_SECRET)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    serve(args.port, args.secret, args.log, args.host).serve_forever()


if __name__ == "__main__":
    main()
