"""When the redirect counts the hub as down (workers/links/redirect.py): a click that misses its deadline
while the hub acknowledged other sends is spooled alone, and while the hub is down one probe is out at a
time, whatever the sends from before the outage do.

The hub producer, the day's salt and the spool are stand-ins the test controls (as in
test_redirect_lag.py): each send waits on a future the test ends."""

from __future__ import annotations

import asyncio

from tests.links_support import RecordingSpool, one_link_redirector
from workers.collect.collector import Collector
from workers.links.redirect import HUB_PAUSE_S, LinkRequest, Redirector
from workers.stream.envelope import EncodedEnvelope

HUB_DEADLINE_S = 0.05
ANSWER_WITHIN_S = 2.0


class Producer:
    """A hub whose sends each wait on a future of their own, which `end` settles."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []

    @property
    def sends(self) -> int:
        return len(self.acks)

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        self.acks.append(asyncio.get_running_loop().create_future())
        await self.acks[-1]

    def end(self, index: int, error: Exception | None = None) -> None:
        if error is None:
            self.acks[index].set_result(None)
        else:
            self.acks[index].set_exception(error)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def redirector(collector: Collector, producer: Producer, spool: RecordingSpool, clock: Clock) -> Redirector:
    return one_link_redirector(collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S, clock=clock)


async def answer(redirect: Redirector, user_agent: str = "curl/8.5.0") -> int:
    """A click's answer; visitors differ by user agent (a visitor's clicks go to the hub one by one)."""
    request = LinkRequest("GET", "https", "a", "", {"host": "localhost", "user-agent": user_agent})
    return (await asyncio.wait_for(redirect.handle(request), ANSWER_WITHIN_S)).status


async def until(condition: object) -> None:
    deadline = asyncio.get_running_loop().time() + ANSWER_WITHIN_S
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_a_miss_while_the_hub_acknowledges_other_sends_spools_that_click_only(
    collector: Collector,
) -> None:
    producer, spool = Producer(), RecordingSpool()
    redirect = redirector(collector, producer, spool, Clock())
    slow = asyncio.ensure_future(answer(redirect))
    await until(lambda: producer.sends == 1)
    fast = asyncio.ensure_future(answer(redirect, "Firefox/133"))
    await until(lambda: producer.sends == 2)  # the second click's wave went while the first was out
    producer.end(1)
    assert (await fast, await slow) == (302, 302)
    assert (spool.puts, redirect.hub_down) == (1, False)
    third = asyncio.ensure_future(answer(redirect, "Safari/18"))
    await until(lambda: producer.sends == 3)  # the next click goes to the hub, not to the spool
    producer.end(2)
    producer.end(0)
    assert await third == 302
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (spool.puts, redirect.spooled_clicks) == (1, 0)


async def test_a_miss_while_the_hub_acknowledged_nothing_counts_it_down(collector: Collector) -> None:
    producer, spool = Producer(), RecordingSpool()
    redirect = redirector(collector, producer, spool, Clock())
    assert await answer(redirect) == 302
    assert (redirect.hub_down, spool.puts) == (True, 1)
    assert await answer(redirect) == 302
    assert (producer.sends, spool.puts) == (1, 2)  # straight to the spool
    producer.end(0, ConnectionError("hub gone"))
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)


async def test_one_probe_at_a_time_though_a_send_from_before_the_outage_fails_meanwhile(
    collector: Collector,
) -> None:
    producer, spool, clock = Producer(), RecordingSpool(), Clock()
    redirect = redirector(collector, producer, spool, clock)
    assert await answer(redirect) == 302  # missed: the hub is down, its send still out
    clock.now += HUB_PAUSE_S + 1
    assert await answer(redirect, "Firefox/133") == 302
    assert producer.sends == 2  # the probe
    producer.end(0, ConnectionError("hub gone"))  # the send from before the outage gives up
    await until(lambda: redirect.spooled_clicks == 1)  # counted once that send's end reached the hub state
    clock.now += HUB_PAUSE_S + 1
    assert await answer(redirect, "Safari/18") == 302
    assert (producer.sends, redirect.hub_down) == (2, True)  # the probe is still out: no second one
    producer.end(1)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert redirect.hub_down is False
