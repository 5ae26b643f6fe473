"""How the redirect hands a click over without a task of its own (workers/links/redirect.py): the day's
salt is read once per UTC day, an ack the loop took in as the deadline fell due is not a miss, a click
whose request goes away is still spooled when the hub misses it, and the event id is a version 4 UUID
made from the request's one read of randomness.

The hub producer, the day's salt and the spool are stand-ins the test controls (as in
test_redirect_lag.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import uvloop

from tests.links_support import RecordingSpool, one_link_redirector, salted_collector
from workers.collect.collector import Collector
from workers.links.redirect import LinkRequest, Redirector, _uuid4
from workers.stream.envelope import EncodedEnvelope

HUB_DEADLINE_S = 0.05
# Long enough that a loaded machine stalling the test's process cannot push the send's call past it.
LONG_HUB_DEADLINE_S = 0.5
ANSWER_WITHIN_S = 2.0
NOON = 1_700_049_600.0  # 2023-11-15 12:00 UTC


class CountingSalts:
    def __init__(self) -> None:
        self.reads = 0

    async def current(self) -> bytes:
        self.reads += 1
        return b"s" * 32

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> float:
        return self.now


class Producer:
    """A hub that acknowledges each send at once, or never (`answering` False) until `give_up`."""

    def __init__(self, *, answering: bool) -> None:
        self.answering = answering
        self.unanswered: list[asyncio.Future[None]] = []

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        if self.answering:
            return
        self.unanswered.append(asyncio.get_running_loop().create_future())
        await self.unanswered[-1]

    def give_up(self) -> None:
        for ack in self.unanswered:
            ack.set_exception(TimeoutError())


def request() -> LinkRequest:
    return LinkRequest("GET", "https", "a", "", {"host": "localhost", "user-agent": "curl/8.5.0"})


async def until(condition: object) -> None:
    deadline = asyncio.get_running_loop().time() + ANSWER_WITHIN_S
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


@pytest.mark.parametrize(
    ("later_s", "reads"),
    [(60.0, 1), (11 * 3600.0, 1), (12 * 3600.0, 2), (86400.0, 2), (-13 * 3600.0, 2)],
    ids=["a minute later", "before midnight", "at midnight", "a day later", "set back over midnight"],
)
async def test_the_days_salt_is_read_once_per_utc_day(
    collector: Collector, later_s: float, reads: int
) -> None:
    salts, clock, spool = CountingSalts(), Clock(), RecordingSpool()
    collector.salts = salts  # type: ignore[assignment]
    producer = Producer(answering=True)
    redirect = one_link_redirector(
        collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S, clock=clock
    )
    first = await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)
    clock.now += later_s
    second = await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (first.status, second.status, salts.reads, spool.puts) == (302, 302, reads, 0)


def test_an_ack_taken_in_as_the_deadline_falls_due_is_not_a_miss() -> None:
    """On uvloop (the dev host's loop) due timers run before the callbacks already queued. The hub's
    ack lands 3 ms before the deadline while the loop is busy for 5 ms, so the deadline's timer fires
    on time (2 ms late) with the send's end still queued behind it: the click is not decided before
    that end has run."""

    async def click() -> tuple[int, int, bool]:
        collector = await salted_collector()
        loop = asyncio.get_running_loop()
        handed_over_at: list[float] = []

        async def send(messages: list[EncodedEnvelope], partition_key: str) -> None:
            # Timed from the hand-over, where the deadline is set, not from this call: the click's wave
            # and a loaded machine put this call milliseconds later, which would move the ack past it.
            lands = handed_over_at[-1] + LONG_HUB_DEADLINE_S - 0.003
            ack = loop.create_future()
            loop.call_at(lands, ack.set_result, None)
            loop.call_at(lands, time.sleep, 0.005)
            await ack

        spool = RecordingSpool()
        redirect = one_link_redirector(collector, send, spool, hub_deadline_s=LONG_HUB_DEADLINE_S)
        hand_over = redirect._hand_over

        def timed_hand_over(*args: Any) -> None:
            handed_over_at.append(loop.time())
            hand_over(*args)

        redirect._hand_over = timed_hand_over  # type: ignore[method-assign]
        try:
            response = await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)
            await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
        finally:
            await collector.close()
        return response.status, spool.puts, redirect.hub_down

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(click()) == (302, 0, False)


async def test_a_click_whose_request_went_away_is_spooled_when_the_hub_misses_it(
    collector: Collector,
) -> None:
    producer, spool = Producer(answering=True), RecordingSpool()
    redirect: Redirector = one_link_redirector(collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S)
    await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)  # the salt is at hand from now
    producer.answering = False
    answer = asyncio.ensure_future(redirect.handle(request()))
    await until(lambda: len(producer.unanswered) == 1)
    answer.cancel()  # the client went away while its click waited for the hub
    await until(lambda: spool.puts == 1)
    producer.give_up()
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (answer.cancelled(), redirect.spooled_clicks, redirect.lost_clicks) == (True, 1, 0)


@pytest.mark.parametrize("digits", ["0" * 32, "f" * 32, "0123456789abcdef" * 2, "fedcba9876543210" * 2])
def test_event_ids_are_version_4_uuids(digits: str) -> None:
    text = _uuid4(digits)
    parsed = uuid.UUID(text)
    assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


class RaisingSpool(RecordingSpool):
    """A spool whose put fails as it is called, not in its future: no spool does so today."""

    def put(self, message: EncodedEnvelope, partition_key: str, *, received_at: int) -> str:  # type: ignore[override]
        self.puts += 1
        raise RuntimeError("spool broken")


async def test_a_hand_over_that_raises_still_answers_and_counts_the_click_lost(
    collector: Collector,
) -> None:
    producer, spool = Producer(answering=True), RaisingSpool()
    redirect = one_link_redirector(collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S)
    await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)  # the salt is at hand from now
    producer.answering = False
    missed = await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)  # hub up, then missed
    down = await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)  # hub counted down
    producer.give_up()
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    assert (missed.status, down.status, redirect.hub_down, spool.puts, redirect.lost_clicks) == (
        302,
        302,
        True,
        2,
        2,
    )


async def test_a_clicks_event_id_shares_no_randomness_with_its_request_id(collector: Collector) -> None:
    producer, spool = Producer(answering=True), RecordingSpool()
    redirect = one_link_redirector(collector, producer.send, spool, hub_deadline_s=HUB_DEADLINE_S)
    seen: list[tuple[str, str]] = []
    messages = redirect._messages

    def recording(request_id, received_at, app, ip, headers, event, salt):  # type: ignore[no-untyped-def]
        seen.append((request_id, event["event_id"]))
        return messages(request_id, received_at, app, ip, headers, event, salt)

    redirect._messages = recording  # type: ignore[method-assign]
    for _ in range(3):
        await asyncio.wait_for(redirect.handle(request()), ANSWER_WITHIN_S)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    event_ids = [uuid.UUID(event_id).hex for _, event_id in seen]
    assert len(set(event_ids)) == len(seen) == 3
    for request_id, event_id in zip((request_id for request_id, _ in seen), event_ids, strict=True):
        assert request_id not in event_id


class Selective(Producer):
    """A hub that acknowledges the sends numbered in `answered` (from 0) at once, and never the others
    until `give_up`."""

    def __init__(self, answered: set[int]) -> None:
        super().__init__(answering=False)
        self.answered = answered
        self.sends = 0

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        number, self.sends = self.sends, self.sends + 1
        if number not in self.answered:
            await super().send(messages, partition_key)


async def test_each_click_waits_its_own_hub_deadline_under_the_one_timer(collector: Collector) -> None:
    """Clicks handed over one after the other share one deadline timer: each unanswered click still
    waits its full hub deadline from its own hand-over (not the first click's), and a click the hub
    answered in between is neither spooled nor held."""
    producer, spool = Selective({1}), RecordingSpool()
    redirect = one_link_redirector(collector, producer.send, spool, hub_deadline_s=LONG_HUB_DEADLINE_S)

    async def timed_click(visitor: int) -> tuple[int, float]:
        # Visitors of their own: one visitor's clicks would wait for each other's sends (waves.py).
        headers = {"host": "localhost", "user-agent": f"curl/8.{visitor}"}
        started = time.monotonic()
        response = await asyncio.wait_for(redirect.handle(LinkRequest("GET", "https", "a", "", headers)), 5)
        return response.status, time.monotonic() - started

    clicks = []
    for visitor in range(3):
        clicks.append(asyncio.ensure_future(timed_click(visitor)))
        await asyncio.sleep(LONG_HUB_DEADLINE_S / 4)
    (first, first_s), (second, second_s), (third, third_s) = await asyncio.gather(*clicks)
    assert (first, second, third, spool.puts, producer.sends) == (302, 302, 302, 2, 3)
    # Less a little for the event loop's clock, which counts whole milliseconds.
    assert min(first_s, third_s) >= 0.95 * LONG_HUB_DEADLINE_S > second_s
    producer.give_up()
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)


async def test_a_click_through_the_real_producer_is_answered_on_the_clicks_own_future(
    collector: Collector,
) -> None:
    """Unreplaced, the producer's submit is handed the click's wave future and answers it itself (no
    second future per click); a miss of the deadline is still a miss, made when it falls due."""
    from workers.collect.hub import HubProducer, _Pending

    groups: list[list[_Pending]] = []
    acks: list[asyncio.Future[None]] = []

    async def send(group: list[_Pending], partition: str) -> None:
        groups.append(group)
        acks.append(asyncio.get_running_loop().create_future())
        await acks[-1]

    class Client:
        async def close(self) -> None:
            pass

    producer = HubProducer(Client(), linger_s=0)  # type: ignore[arg-type]
    producer._partition_ids = ["0"]
    producer._send_messages = send  # type: ignore[method-assign]
    spool = RecordingSpool()
    redirect = one_link_redirector(collector, Producer(answering=True).send, spool, hub_deadline_s=0.2)
    own_hub, collector.hub = collector.hub, producer
    submitted: list[asyncio.Future[None]] = []
    waves_submit = redirect.waves.submit

    def recorded(*args: Any) -> asyncio.Future[None]:
        submitted.append(waves_submit(*args))
        return submitted[-1]

    redirect.waves.submit = recorded  # type: ignore[method-assign]
    answer = asyncio.ensure_future(redirect.handle(request()))
    await until(lambda: acks)
    assert groups[0][0].done is submitted[0]
    acks[0].set_result(None)
    assert (await asyncio.wait_for(answer, ANSWER_WITHIN_S)).status == 302
    assert spool.puts == 0
    missed = asyncio.ensure_future(redirect.handle(request()))
    assert (await asyncio.wait_for(missed, ANSWER_WITHIN_S)).status == 302
    assert spool.puts == 1
    assert redirect.hub_down
    acks[1].set_result(None)
    await asyncio.wait_for(redirect.settle(), ANSWER_WITHIN_S)
    await producer.close()
    collector.hub = own_hub
