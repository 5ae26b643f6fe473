"""Labelled user-agent corpora from other projects, read in place from the installed packages; none of
them feeds the detector (which uses crawler-user-agents, isbot and hubcap's curated lists).

- Bots: matomo's device-detector fixture `bots.yml` (LGPL-3.0), every case a bot by its label: search
  bots, crawlers, site monitors, feed fetchers, security checkers, service agents, AI agents, ...;
  shipped in the PyPI wheel of its Python port `device-detector` (requirements-dev.txt).
- Humans (1): the other fixtures of the same suite whose client type is "browser" (phones, tablets,
  desktops, TVs, consoles, feature phones: a parser's edge cases, so a hard set). Cases without a user
  agent (client hints only) are left out: hubcap sees no client hints.
- Humans (2): the npm package `user-agents` (Intoli, BSD-2-Clause): 10,000 user agents of real browser
  visits, refreshed daily by its publisher (package.json pins the version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import yaml_rs

ROOT = Path(__file__).resolve().parents[3]
MATOMO_FIXTURES = files("device_detector") / "tests" / "fixtures" / "upstream"
INTOLI_FILE = ROOT / "node_modules" / "user-agents" / "dist" / "user-agents.json"


@dataclass(frozen=True)
class Corpus:
    source: str
    user_agents: tuple[str, ...]
    labels: tuple[str, ...]  # one per user agent: the corpus's own category (bot category, browser name)


def matomo_bots() -> Corpus:
    cases = yaml_rs.loads((MATOMO_FIXTURES / "bots.yml").read_text())
    return Corpus(
        f"PyPI device-detector=={version('device-detector')} tests/fixtures/upstream/bots.yml",
        tuple(case["user_agent"] for case in cases),
        tuple(case["bot"].get("category") or "uncategorised" for case in cases),
    )


def matomo_browsers() -> Corpus:
    user_agents, labels = [], []
    for fixture in sorted(MATOMO_FIXTURES.iterdir(), key=lambda path: path.name):
        if not fixture.name.endswith(".yml") or fixture.name == "bots.yml":
            continue
        for case in yaml_rs.loads(fixture.read_text()):
            client = case.get("client") or {}
            if client.get("type") == "browser" and case["user_agent"]:
                user_agents.append(case["user_agent"])
                labels.append(client.get("name") or "unnamed")
    return Corpus(
        f"PyPI device-detector=={version('device-detector')} tests/fixtures/upstream/*.yml, browsers",
        tuple(user_agents),
        tuple(labels),
    )


def intoli_browsers() -> Corpus:
    package = json.loads((INTOLI_FILE.parent.parent / "package.json").read_bytes())
    visits = json.loads(INTOLI_FILE.read_bytes())
    return Corpus(
        f"npm user-agents@{package['version']} dist/user-agents.json",
        tuple(visit["userAgent"] for visit in visits),
        tuple(visit.get("deviceCategory") or "unknown" for visit in visits),
    )
