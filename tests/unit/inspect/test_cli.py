"""`hubcap inspect` without a host: what it says when it cannot ask. Its answers from a running
inspector are tested in tests/integration/test_inspector.py."""

from __future__ import annotations

import socket

import pytest

from workers.cli import main


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"http://127.0.0.1:{closed_port()}", "Connection refused"),
        ("file:///etc/passwd", "must be http or https"),
    ],
    ids=["closed port", "not http"],  # ids stable between pytest-xdist workers (the port is not)
)
def test_an_inspector_it_cannot_ask_exits_2_saying_why(
    url: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "--app", "test_release", "--url", url]) == 2
    assert said in capsys.readouterr().err


def test_an_attribute_filter_needs_a_name_and_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["inspect", "--attr", "test_id"])
    assert exited.value.code == 2
    assert "--attr takes NAME=VALUE" in capsys.readouterr().err
