"""The firehose's Standard Webhooks headers, verified by the `standardwebhooks` package."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from workers.sinks.firehose import signing

OLD = b"o" * 32
NEW = b"n" * 32
BODY = b'{"data":[{"event_id":"e1","note":"caf\xc3\xa9"}]}'


def secret(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@pytest.mark.parametrize("key", [OLD, NEW])
def test_every_secret_of_a_rotation_verifies(key: bytes) -> None:
    headers = signing.headers((OLD, NEW), "msg_1", BODY)
    assert Webhook(secret(key)).verify(BODY, headers) == {"data": [{"event_id": "e1", "note": "café"}]}


def test_another_secret_does_not_verify() -> None:
    headers = signing.headers((OLD,), "msg_1", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(NEW)).verify(BODY, headers)


def test_the_id_is_signed() -> None:
    headers = {**signing.headers((OLD,), "msg_1", BODY), "webhook-id": "msg_2"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(OLD)).verify(BODY, headers)


def test_the_timestamp_is_fresh_and_the_id_is_kept() -> None:
    first = signing.headers((OLD,), "msg_1", BODY, now=1_000)
    later = signing.headers((OLD,), "msg_1", BODY, now=2_000)
    assert (first["webhook-id"], later["webhook-id"]) == ("msg_1", "msg_1")
    assert (first["webhook-timestamp"], later["webhook-timestamp"]) == ("1000", "2000")
