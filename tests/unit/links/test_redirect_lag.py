"""The hub deadline counts the event loop's time: a loop that was busy elsewhere does not make a
healthy hub's ack a miss, and a hub that never answers is still found down (workers/links/redirect.py).

The hub producer, the day's salt and the spool are stand-ins the test controls; the loop is blocked
by a synchronous sleep in a callback, as a burst of other requests' work would block it."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.links_support import RecordingSpool, one_link_redirector
from workers.collect.collector import Collector
from workers.links.redirect import LinkRequest, Redirector
from workers.stream.envelope import EncodedEnvelope

HUB_DEADLINE_S = 0.05
BLOCKED_S = 0.1  # longer than the hub deadline: a timer that falls due meanwhile fires this late
ANSWER_WITHIN_S = 2.0  # generous: the answer's own bound is 2 hub deadlines plus the spool's
TURN_S = 0.04  # a saturated loop: each turn this long, so each timer fires up to this late


class Producer:
    """A hub that acknowledges each send `ack_after_s` after it starts, or never (None)."""

    def __init__(self, ack_after_s: float | None) -> None:
        self.ack_after_s = ack_after_s
        self.sends = 0
        self.unanswered: list[asyncio.Future[None]] = []

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        self.sends += 1
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack_after_s is None:
            self.unanswered.append(ack)
        else:
            asyncio.get_running_loop().call_later(self.ack_after_s, ack.set_result, None)
        await ack

    def give_up(self) -> None:
        """The SDK's own timeout, at last, for the sends the hub never answered."""
        for ack in self.unanswered:
            ack.set_exception(TimeoutError())


def redirector(collector: Collector, producer: Producer, spool: RecordingSpool) -> Redirector:
    return one_link_redirector(collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S)


async def click(redirect: Redirector, block_s: float) -> int:
    """One click's answer; the loop is blocked for `block_s` a few milliseconds into its hub wait."""
    if block_s:
        asyncio.get_running_loop().call_later(0.005, time.sleep, block_s)
    request = LinkRequest("GET", "https", "a", "", {"host": "localhost", "user-agent": "curl/8.5.0"})
    response = await asyncio.wait_for(redirect.handle(request), ANSWER_WITHIN_S)
    return response.status


def saturate(until: float) -> None:
    """Every turn of the loop takes TURN_S of other work until `until`: each timer fires late."""
    time.sleep(TURN_S)
    loop = asyncio.get_running_loop()
    if loop.time() < until:
        loop.call_soon(saturate, until)


@pytest.mark.parametrize("block_s", [0.0, BLOCKED_S], ids=["quiet loop", "blocked loop"])
async def test_a_healthy_hub_is_not_a_miss(collector: Collector, block_s: float) -> None:
    producer, spool = Producer(ack_after_s=0.01), RecordingSpool()
    redirect = redirector(collector, producer, spool)
    status = await click(redirect, block_s)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (status, producer.sends, redirect.hub_down, spool.puts) == (302, 1, False, 0)


async def test_a_healthy_hub_is_not_a_miss_while_every_timer_fires_late(collector: Collector) -> None:
    producer, spool = Producer(ack_after_s=0.01), RecordingSpool()
    redirect = redirector(collector, producer, spool)
    loop = asyncio.get_running_loop()
    loop.call_soon(saturate, loop.time() + 0.3)
    status = await click(redirect, 0.0)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (status, producer.sends, redirect.hub_down, spool.puts) == (302, 1, False, 0)


@pytest.mark.parametrize("block_s", [0.0, BLOCKED_S, 4 * BLOCKED_S], ids=["quiet loop", "blocked", "long"])
async def test_a_hub_that_never_answers_is_down_and_the_click_spooled(
    collector: Collector, block_s: float
) -> None:
    producer, spool = Producer(ack_after_s=None), RecordingSpool()
    redirect = redirector(collector, producer, spool)
    status = await click(redirect, block_s)
    # The answer waited for the spool, and the send is still out: the miss, not a failed send, told.
    assert (status, spool.puts, redirect.hub_down, producer.sends) == (302, 1, True, 1)
    producer.give_up()
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (redirect.spooled_clicks, spool.settled) == (1, [False])


async def test_a_hub_that_never_answers_is_down_though_every_timer_fires_late(collector: Collector) -> None:
    producer, spool = Producer(ack_after_s=None), RecordingSpool()
    redirect = redirector(collector, producer, spool)
    loop = asyncio.get_running_loop()
    loop.call_soon(saturate, loop.time() + ANSWER_WITHIN_S / 2)
    status = await click(redirect, 0.0)
    # The answer waited for the spool, and the send is still out: the miss, not a failed send, told.
    assert (status, spool.puts, redirect.hub_down, producer.sends) == (302, 1, True, 1)
    producer.give_up()
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (redirect.spooled_clicks, spool.settled) == (1, [False])


SLOW_TURN_S = 0.006  # every turn just over ON_TIME_S: each timer, the extra wait's too, fires late


def slow_turns(until: float) -> None:
    time.sleep(SLOW_TURN_S)
    loop = asyncio.get_running_loop()
    if loop.time() < until:
        loop.call_soon(slow_turns, until)


async def test_a_hub_answering_in_nearly_twice_the_deadline_is_a_miss_on_a_slow_loop(
    collector: Collector,
) -> None:
    """The lateness is granted once: renewed on every late timer, a hub this slow passed as healthy."""
    producer, spool = Producer(ack_after_s=1.95 * HUB_DEADLINE_S), RecordingSpool()
    redirect = redirector(collector, producer, spool)
    loop = asyncio.get_running_loop()
    loop.call_soon(slow_turns, loop.time() + 0.5)
    status = await click(redirect, 0.0)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    # Missed, so spooled; the hub took the click late after all, and the spool was told.
    assert (status, spool.puts, spool.settled) == (302, 1, [True])


class CancelledSpool(RecordingSpool):
    """A spool whose write ends cancelled (its writer torn down mid-write)."""

    async def put(self, message: EncodedEnvelope, partition_key: str, *, received_at: int) -> str:
        self.puts += 1
        raise asyncio.CancelledError


class FailingProducer(Producer):
    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        self.sends += 1
        raise ConnectionError("hub refused")


async def test_a_click_whose_spool_write_is_cancelled_is_counted_lost(collector: Collector) -> None:
    producer, spool = FailingProducer(ack_after_s=None), CancelledSpool()
    redirect = redirector(collector, producer, spool)
    status = await click(redirect, 0.0)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (status, spool.puts, redirect.lost_clicks, redirect.spooled_clicks) == (302, 1, 1, 0)
