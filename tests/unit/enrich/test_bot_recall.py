"""Bot recall and human false-positive rate of the bot step against labelled corpora from other projects
(tests/unit/enrich/ua_corpus.py). The UA alone must decide: every event comes from a browser platform
with an Accept-Language header, as a script imitating a browser would send. bench/bots.py prints the same
figures beside those of the detector before isbot and the curated lists."""

from __future__ import annotations

import pytest

from workers.enrich.bots import bot_step
from workers.enrich.pipeline import Resources

from . import ua_corpus
from .helpers import context

MIN_RECALL = 0.95
MAX_HUMAN_FALSE_POSITIVE_RATE = 0.005


def flagged(resources: Resources, corpus: ua_corpus.Corpus) -> list[str]:
    step = bot_step(resources.user_agents)
    return [
        ua
        for ua in corpus.user_agents
        if step({"platform": "Web"}, context(user_agent=ua, accept_language="en-US,en;q=0.9"))["is_bot"]
    ]


def test_bot_recall_on_matomo_bots(resources: Resources) -> None:
    corpus = ua_corpus.matomo_bots()
    recall = len(flagged(resources, corpus)) / len(corpus.user_agents)
    print(f"recall {recall:.4f} over {len(corpus.user_agents)} bots of {corpus.source}")
    assert (len(corpus.user_agents) > 1000, recall >= MIN_RECALL) == (True, True), recall


@pytest.mark.parametrize("corpus_name", ["matomo_browsers", "intoli_browsers"])
def test_humans_flagged_rarely(resources: Resources, corpus_name: str) -> None:
    corpus = getattr(ua_corpus, corpus_name)()
    wrong = flagged(resources, corpus)
    rate = len(wrong) / len(corpus.user_agents)
    print(f"human false-positive rate {rate:.4f} over {len(corpus.user_agents)} of {corpus.source}")
    assert (len(corpus.user_agents) > 5000, rate <= MAX_HUMAN_FALSE_POSITIVE_RATE) == (True, True), wrong[:20]
