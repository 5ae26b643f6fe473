"""One version source: workers.__version__, which the package metadata and the lake rows' capture_version
both read (a deployed Function App runs the source without installing the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_package_version_is_read_from_workers() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert ("version" in project["project"], project["tool"]["setuptools"]["dynamic"]["version"]) == (
        False,
        {"attr": "workers.__version__"},
    )
