"""body.check_media_type and body.gzipped: the answers of their short cuts are those of the parse."""

from __future__ import annotations

import pytest

from workers.collect import body
from workers.errors import UnsupportedMediaType

CONTENT_TYPES = [
    "text/plain;charset=UTF-8",
    "application/json",
    ' Application/JSON ; charset="utf8"',
    "text/plain; charset=latin-1",
    "text/html",
    "",
    ";",
]


def answer(check: object, *args: object) -> object:
    try:
        return check(*args)  # type: ignore[operator]
    except UnsupportedMediaType as refused:
        return str(refused)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_content_type_seen_before_gets_the_parses_answer(content_type: str) -> None:
    first = answer(body.check_media_type, content_type)
    assert first == answer(body._media_type, content_type)
    assert answer(body.check_media_type, content_type) == first  # the second time, from the dict
    assert (content_type in body._MEDIA_SEEN) is (first in body.MEDIA_TYPES)


def test_the_content_types_remembered_stop_at_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body, "_MEDIA_SEEN", {})
    for n in range(body.MAX_MEDIA_SEEN + 10):
        assert body.check_media_type(f"text/plain; x={n}") == "text/plain"
    assert len(body._MEDIA_SEEN) == body.MAX_MEDIA_SEEN


@pytest.mark.parametrize("compression", [None, "", "gzip", " GZIP ", "br"])
@pytest.mark.parametrize("encoding", [None, "", "identity", "gzip", "deflate"])
def test_gzipped_answers_as_the_stripped_and_lowered_values(
    compression: str | None, encoding: str | None
) -> None:
    query = {} if compression is None else {"compression": compression}
    headers = {} if encoding is None else {"content-encoding": encoding}
    c, e = (compression or "").strip().lower(), (encoding or "").strip().lower()
    expected: object = c == "gzip" or e == "gzip"
    if c not in ("", "gzip"):
        expected = f"compression {c!r} is not supported; use gzip"
    elif e not in ("", "identity", "gzip"):
        expected = f"content encoding {e!r} is not supported; use gzip"
    assert answer(body.gzipped, query, headers) == expected
