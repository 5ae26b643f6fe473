"""Assembly: `Resources` (built once per process) and `build_pipeline`, the stateless steps in order.

    pipeline = build_pipeline()            # default Resources, loaded once per process
    row = pipeline.run(row, EnrichContext(app, user_agent, accept_language, referer_header, geo))
    pipeline.versions                       # {"ua_rules": ..., "bot_list": ..., "referrer_db": ...}

Steps mutate the row in place and return it. Order matters where noted: page before referrer (internal
check needs page_host), referrer before campaign (which may upgrade the category to paid).
`pipeline.for_request(context)` runs them for one request's events, each step's work once per
distinct input (workers/enrich/request.py).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from workers.enrich.base import Pipeline
from workers.enrich.bots import bot_step
from workers.enrich.campaign import campaign_step
from workers.enrich.crawlers import LOCAL_BOTS_FILE, BotLists
from workers.enrich.geo import geo_step
from workers.enrich.language import language_step
from workers.enrich.page import PageParser, page_step
from workers.enrich.referrer import LOCAL_REFERERS_FILE, RefererDatabase, ReferrerParser, referrer_step
from workers.enrich.request import RequestSteps
from workers.enrich.ua import UserAgentClassifier, ua_rules_version, ua_step

DATA = Path(__file__).resolve().parent / "data"
VERSIONS_FILE = DATA / "VERSIONS.json"


def reference_versions(
    path: Path = VERSIONS_FILE, local_referers: Path = LOCAL_REFERERS_FILE, local_bots: Path = LOCAL_BOTS_FILE
) -> dict[str, str]:
    """Lineage values: `package@version` of where each reference data set came from (the bot lists and
    the referrer database also name the version of hubcap's curated additions)."""
    stamp = json.loads(path.read_bytes())
    referers = json.loads(local_referers.read_bytes())["version"]
    bots = json.loads(local_bots.read_bytes())["version"]
    crawlers, isbot = stamp["bot_list"], stamp["isbot_list"]
    bot_lists = f"{crawlers['name']}@{crawlers['version']}+{isbot['name']}@{isbot['version']}"
    return {
        "ua_rules": f"ua-parser-builtins@{ua_rules_version()}",
        "bot_list": f"{bot_lists}+hubcap.{bots}",
        "referrer_db": f"{stamp['referrer_db']['name']}@{stamp['referrer_db']['version']}+hubcap.{referers}",
    }


@dataclass(frozen=True)
class Resources:
    user_agents: UserAgentClassifier
    referrers: ReferrerParser
    pages: PageParser
    versions: dict[str, str]

    @classmethod
    def load(cls, ua_cache_size: int = 16384, url_cache_size: int = 16384) -> Resources:
        """Compiles the UA rules and bot patterns and indexes the referrer database (~0.3 s)."""
        return cls(
            user_agents=UserAgentClassifier(BotLists.load(), cache_size=ua_cache_size),
            referrers=ReferrerParser(RefererDatabase.load(), cache_size=url_cache_size),
            pages=PageParser(cache_size=url_cache_size),
            versions=reference_versions(),
        )


@functools.cache
def default_resources() -> Resources:
    return Resources.load()


def build_pipeline(resources: Resources | None = None) -> Pipeline:
    r = resources if resources is not None else default_resources()
    steps = (
        ("page", page_step(r.pages)),
        ("referrer", referrer_step(r.referrers)),
        ("campaign", campaign_step(r.pages)),
        ("user_agent", ua_step(r.user_agents)),
        ("bots", bot_step(r.user_agents)),
        ("language", language_step()),
        ("geo", geo_step()),
    )
    return Pipeline(steps=steps, versions=dict(r.versions), specialize=RequestSteps(steps))
