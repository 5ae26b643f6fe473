"""The bytes workers/collect/hub_link.py puts on the SDK's link: the batch message and its transfer
frame, each compared with what the pinned azure-eventhub encodes for the same send; the dispositions
it settles without the SDK's decoder, each checked against that decoder; and the shape guard, which
lets any other SDK version take the public path only."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub._pyamqp import cbs as pyamqp_cbs
from azure.eventhub._pyamqp._decode import decode_frame
from azure.eventhub._pyamqp._encode import encode_frame, encode_payload
from azure.eventhub._pyamqp.cbs import check_expiration_and_refresh_status
from azure.eventhub._pyamqp.constants import CbsAuthState, CbsState
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.outcomes import Accepted, Rejected, Released
from azure.eventhub._pyamqp.performatives import DispositionFrame, TransferFrame

from devstack.eventhubs.server.frames import accepted
from workers.collect import hub_link
from workers.collect.hub import fill_batch
from workers.collect.hub_link import (
    _batch_parts,
    accepted_delivery,
    batch_payload,
    batch_transfer_frame,
    sdk_link_shape_matches,
    transfer_frame,
)


def sdk_transfer(channel: int, handle: int, delivery_id: int, tag: int, payload: bytes) -> bytes:
    """What the SDK's session and transport write for an unsettled one-frame transfer of a batch."""
    header, body = encode_frame(
        TransferFrame(
            handle=handle,
            delivery_id=delivery_id,
            delivery_tag=struct.pack(">I", tag),
            message_format=hub_link.BATCH_MESSAGE_FORMAT,
            settled=False,
            more=False,
            rcv_settle_mode=None,
            state=None,
            resume=None,
            aborted=None,
            batchable=None,
            payload=payload,
        )
    )
    assert body is not None
    return header + struct.pack(">H", channel) + bytes(body)


@pytest.mark.parametrize(
    ("channel", "handle", "delivery_id", "tag"),
    [
        pytest.param(0, 0, 0, 1, id="first-delivery"),
        pytest.param(1, 2, 255, 256, id="smalluint-edge"),
        pytest.param(3, 256, 256, 70_000, id="uint"),
        pytest.param(65_535, 4_294_967_295, 2**31, 2**32 - 1, id="largest"),
    ],
)
@pytest.mark.parametrize("payload", [b"", b"p" * 40_000], ids=["empty", "40k"])
def test_the_transfer_frame_is_the_sdks(
    channel: int, handle: int, delivery_id: int, tag: int, payload: bytes
) -> None:
    assert transfer_frame(channel, handle, delivery_id, tag, payload) == sdk_transfer(
        channel, handle, delivery_id, tag, payload
    )


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([b"\x00Sr" + b"m" * 200], id="one-click"),
        pytest.param([b"m" * 255, b"n" * 256], id="short-and-long-form"),
        pytest.param([b"a" * 900] * 35, id="a-collect-share"),
        pytest.param([b"x" * 70_000], id="over-64k"),
    ],
)
def test_the_batch_payload_is_the_sdks(messages: list[bytes]) -> None:
    batch = EventDataBatch(max_size_in_bytes=1024 * 1024, partition_id="1")
    fill_batch(batch, messages)
    encoded = bytearray()
    encode_payload(encoded, batch._message)
    assert batch_payload(messages) == bytes(encoded)
    # What send_on_link writes: the same frame as the batch payload's transfer, joined in one piece.
    parts, size = _batch_parts(messages)
    assert batch_transfer_frame(3, 256, 256, 70_000, parts, size) == sdk_transfer(
        3, 256, 256, 70_000, bytes(encoded)
    )


def sdk_disposition(**fields: Any) -> bytes:
    """A disposition frame's body as the SDK encodes it: role receiver and settled unless given."""
    defaults = {"role": True, "last": None, "settled": True, "batchable": None}
    _, body = encode_frame(DispositionFrame(**{**defaults, **fields}))
    assert body is not None
    return bytes(body)


def list8(*fields: bytes) -> bytes:
    """A disposition's body with the given encoded fields, in the list8 form."""
    joined = b"".join(fields)
    return b"\x00\x53\x15\xc0" + bytes((len(joined) + 1, len(fields))) + joined


def list32(*fields: bytes) -> bytes:
    joined = b"".join(fields)
    return b"\x00\x53\x15\xd0" + struct.pack(">II", len(joined) + 4, len(fields)) + joined


TRUE, FALSE, NULL = b"\x41", b"\x42", b"\x40"
ACCEPTED_LIST0 = b"\x00\x53\x24\x45"
BUSY = Rejected(error=AMQPError(condition=b"com.microsoft:server-busy", description=b"busy"))

DISPOSITIONS = [
    ("sdk-accepted", sdk_disposition(first=300, last=300, state=Accepted(), batchable=False), 300),
    ("sdk-no-last", sdk_disposition(first=7, state=Accepted()), 7),
    ("endpoint", accepted(3, 70_000)[8:], 70_000),
    ("uint0-five-fields", list8(TRUE, b"\x43", NULL, TRUE, ACCEPTED_LIST0), 0),
    ("smalluint-list8-outcome", list8(TRUE, b"\x52\x09", b"\x52\x09", TRUE, b"\x00\x53\x24\xc0\x01\x00"), 9),
    ("list32", list32(b"\x56\x01", b"\x52\x05", NULL, b"\x56\x01", ACCEPTED_LIST0, b"\x56\x00"), 5),
    (
        "list32-outcome",
        list8(TRUE, b"\x52\x05", NULL, TRUE, b"\x00\x53\x24\xd0\x00\x00\x00\x04\x00\x00\x00\x00"),
        5,
    ),
    ("list32-outcome-size-0", list8(TRUE, b"\x52\x05", NULL, TRUE, b"\x00\x53\x24\xd0" + bytes(8)), None),
    ("rejected", sdk_disposition(first=300, last=300, state=BUSY, batchable=False), None),
    ("released", sdk_disposition(first=300, last=300, state=Released()), None),
    ("unsettled", sdk_disposition(first=300, last=300, settled=False, state=Accepted()), None),
    ("from-a-sender", sdk_disposition(role=False, first=300, last=300, state=Accepted()), None),
    ("a-range", sdk_disposition(first=300, last=301, state=Accepted()), None),
    ("no-state", list8(TRUE, b"\x52\x09", NULL, TRUE), None),
    ("trailing-byte", sdk_disposition(first=300, state=Accepted()) + b"\x40", None),
    ("truncated", sdk_disposition(first=300, state=Accepted())[:-1], None),
    (
        "list-size-wrong",
        list8(TRUE, b"\x52\x09", NULL, TRUE, ACCEPTED_LIST0)[:4] + b"\x20" + list8()[5:],
        None,
    ),
    (
        "ulong-descriptor",
        b"\x00\x80" + bytes(7) + b"\x15" + list8(TRUE, b"\x43", NULL, TRUE, ACCEPTED_LIST0)[3:],
        None,
    ),
    ("a-transfer", sdk_transfer(0, 0, 300, 1, b"")[8:], None),
    ("empty", b"", None),
]


@pytest.mark.parametrize(
    ("body", "delivery_id"), [c[1:] for c in DISPOSITIONS], ids=[c[0] for c in DISPOSITIONS]
)
def test_only_a_settled_acceptance_of_one_delivery_is_read_without_the_sdk(
    body: bytes, delivery_id: int | None
) -> None:
    assert accepted_delivery(body) == delivery_id


@pytest.mark.parametrize(
    "body",
    [c[1] for c in DISPOSITIONS if c[2] is not None],
    ids=[c[0] for c in DISPOSITIONS if c[2] is not None],
)
def test_what_is_read_without_the_sdk_is_what_the_sdk_decodes(body: bytes) -> None:
    performative, fields = decode_frame(memoryview(bytearray(body)))
    role, first, last, settled, state = fields[:5]
    assert (performative, role, last in (None, first), settled, state) == (
        21,
        True,
        True,
        True,
        {"accepted": []},
    )
    assert accepted_delivery(body) == first


def test_the_pinned_sdk_is_the_one_the_link_path_drives() -> None:
    assert sdk_link_shape_matches()


def test_another_sdk_version_takes_the_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_link, "sdk_version", "5.15.2")
    sdk_link_shape_matches.cache_clear()
    try:
        assert not sdk_link_shape_matches()
    finally:
        sdk_link_shape_matches.cache_clear()


NOW = 1_800_000_000
TOKENS = [
    ("no-cbs", None, True),
    ("in-force", (CbsState.OPEN, CbsAuthState.OK, NOW + 3600, 360), True),
    ("refresh-window-reached", (CbsState.OPEN, CbsAuthState.OK, NOW + 300, 360), False),
    ("expired", (CbsState.OPEN, CbsAuthState.OK, NOW - 1, 0), False),
    ("refresh-under-way", (CbsState.OPEN, CbsAuthState.IN_PROGRESS, NOW + 3600, 360), False),
    ("cbs-link-opening", (CbsState.OPENING, CbsAuthState.OK, NOW + 3600, 360), False),
]


@pytest.mark.parametrize(("cbs", "valid"), [c[1:] for c in TOKENS], ids=[c[0] for c in TOKENS])
def test_the_token_is_taken_as_valid_only_where_the_sdks_check_would_pass_at_once(
    monkeypatch: pytest.MonkeyPatch, cbs: tuple[Any, Any, int, int] | None, valid: bool
) -> None:
    """Without a refresh due, the SDK's `auth_complete_async` answers True; anywhere else it runs."""
    assert sdk_link_shape_matches()
    monkeypatch.setattr(hub_link.time, "time", lambda: NOW + 0.5)
    monkeypatch.setattr(pyamqp_cbs, "utc_now", lambda: datetime.fromtimestamp(NOW + 0.5, UTC))
    authenticator = None
    if cbs is not None:
        state, auth_state, expires_on, refresh_window = cbs
        authenticator = SimpleNamespace(
            state=state, auth_state=auth_state, _expires_on=expires_on, _refresh_window=refresh_window
        )
        sdk_says = not any(check_expiration_and_refresh_status(expires_on, refresh_window))
        assert valid == (state == CbsState.OPEN and auth_state == CbsAuthState.OK and sdk_says)
    assert hub_link._token_valid(SimpleNamespace(_cbs_authenticator=authenticator)) == valid
