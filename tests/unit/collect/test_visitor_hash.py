"""visitor_hash continues precomputed HMAC pad states: it must give exactly HMAC-SHA256 as the standard
library computes it, for any salt length (a key longer than SHA-256's block is hashed first)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from workers.collect.privacy import visitor_hash

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.mark.parametrize("salt_bytes", [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize(
    ("ip", "user_agent"),
    [("81.2.69.160", UA), (None, UA), ("2001:db8::1", None), (None, None), ("81.2.69.160", "Bröwser/1 ✓")],
)
def test_the_hash_is_hmac_sha256_of_the_salt(salt_bytes: int, ip: str | None, user_agent: str | None) -> None:
    salt = bytes(range(7, 7 + salt_bytes % 249)) + bytes(max(0, salt_bytes - 249))
    message = f"demo|{ip or ''}|{user_agent or ''}".encode()
    assert (
        visitor_hash(salt, "demo", ip, user_agent) == hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]
    )


def test_each_salt_keeps_its_own_hash() -> None:
    first, second = bytes(32), bytes(range(32))
    hashes = [visitor_hash(salt, "demo", "81.2.69.160", UA) for salt in (first, second, first, second)]
    assert hashes[0] == hashes[2] != hashes[1] == hashes[3]
