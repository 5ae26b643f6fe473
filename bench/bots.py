"""Bot recall and human false-positive rate of the bot step, now and with the crawler list alone (the
detector before isbot and hubcap's curated lists), on labelled corpora from other projects that do not
feed the detector (tests/unit/enrich/ua_corpus.py: matomo's device-detector fixtures, Intoli's
user-agents). Every event is a browser-platform event with an Accept-Language header, so the UA alone
decides, as for a script imitating a browser.

    .venv/bin/python bench/bots.py

Prints a line per figure and misses per bot category, then one JSON object:
    recall                              share of matomo's bots flagged
    human_false_positive_rate           share of matomo's browser cases flagged
    human_false_positive_rate_intoli    share of Intoli's real browser visits flagged
    baseline_*                          the same three with the crawler list alone
    bots, humans, humans_intoli         corpus sizes; sources: where each corpus came from
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.unit.enrich import ua_corpus  # noqa: E402
from workers.enrich.base import EnrichContext  # noqa: E402
from workers.enrich.bots import bot_step  # noqa: E402
from workers.enrich.crawlers import BotLists, PatternList, crawler_patterns  # noqa: E402
from workers.enrich.ua import UserAgentClassifier  # noqa: E402


def flagged(classifier: UserAgentClassifier, corpus: ua_corpus.Corpus) -> list[bool]:
    step = bot_step(classifier)
    return [
        step({"platform": "Web"}, EnrichContext(None, ua, "en-US,en;q=0.9", None, None))["is_bot"]
        for ua in corpus.user_agents
    ]


def main() -> None:
    bots, humans, intoli = ua_corpus.matomo_bots(), ua_corpus.matomo_browsers(), ua_corpus.intoli_browsers()
    detectors = {
        "baseline_": UserAgentClassifier(
            BotLists(crawler_patterns(), PatternList([]), PatternList([]), PatternList([]))
        ),
        "": UserAgentClassifier(BotLists.load()),
    }
    figures: dict[str, object] = {}
    for prefix, classifier in detectors.items():
        caught = flagged(classifier, bots)
        missed = Counter(label for label, hit in zip(bots.labels, caught, strict=True) if not hit)
        figures[f"{prefix}recall"] = round(sum(caught) / len(caught), 4)
        figures[f"{prefix}human_false_positive_rate"] = round(
            sum(flagged(classifier, humans)) / len(humans.user_agents), 4
        )
        figures[f"{prefix}human_false_positive_rate_intoli"] = round(
            sum(flagged(classifier, intoli)) / len(intoli.user_agents), 4
        )
        name = prefix.rstrip("_") or "now"
        print(
            f"{name:9} recall {figures[f'{prefix}recall']:.4f}  humans flagged "
            f"{figures[f'{prefix}human_false_positive_rate']:.4f} (matomo) "
            f"{figures[f'{prefix}human_false_positive_rate_intoli']:.4f} (intoli)"
        )
        print(f"{'':9} missed by category: {dict(missed.most_common())}")
    figures.update(
        bots=len(bots.user_agents),
        humans=len(humans.user_agents),
        humans_intoli=len(intoli.user_agents),
        sources={"bots": bots.source, "humans": humans.source, "humans_intoli": intoli.source},
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
