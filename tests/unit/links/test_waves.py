"""ClickWaves: a lone click goes at once; clicks that come while a wave is out go together next."""

from __future__ import annotations

import asyncio

import pytest

from workers.links.waves import ClickWaves
from workers.stream.envelope import EncodedEnvelope


class Producer:
    """A hub producer whose sends end when the test says so; it records each send as it starts."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.pending: dict[str, asyncio.Future[None]] = {}

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        self.started.append(partition_key)
        self.pending[partition_key] = asyncio.get_running_loop().create_future()
        await self.pending[partition_key]

    def end(self, key: str, error: Exception | None = None) -> None:
        if error is None:
            self.pending[key].set_result(None)
        else:
            self.pending[key].set_exception(error)


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def click(waves: ClickWaves, key: str) -> asyncio.Future[None]:
    return waves.submit([EncodedEnvelope(b"{}", {})], key)


async def test_a_lone_click_goes_at_once() -> None:
    producer = Producer()
    waves = ClickWaves(producer.send, max_hold_s=10)
    sent = click(waves, "a")
    await turns()
    assert producer.started == ["a"]
    producer.end("a")
    await asyncio.wait_for(sent, 1)
    assert waves.waves == 1


async def test_clicks_that_come_while_a_wave_is_out_go_together_in_order_once_it_ends() -> None:
    producer = Producer()
    waves = ClickWaves(producer.send, max_hold_s=10)
    first = click(waves, "a")
    await turns()
    later = [click(waves, key) for key in ("b", "c", "d")]
    await turns()
    assert producer.started == ["a"]
    producer.end("a")
    await asyncio.wait_for(first, 1)
    await turns()
    assert (producer.started, waves.waves) == (["a", "b", "c", "d"], 2)
    for key in ("b", "c", "d"):
        producer.end(key)
    await asyncio.wait_for(asyncio.gather(*later), 1)


async def test_a_wave_out_longer_than_the_hold_does_not_hold_the_next_one() -> None:
    producer = Producer()
    waves = ClickWaves(producer.send, max_hold_s=0)
    click(waves, "slow")
    after = click(waves, "b")  # queued behind "slow" in the same turn
    await turns()
    assert producer.started == ["slow", "b"]
    producer.end("b")
    await asyncio.wait_for(after, 1)
    producer.end("slow")


async def test_a_failed_send_fails_only_its_own_click_and_the_next_wave_goes() -> None:
    producer = Producer()
    waves = ClickWaves(producer.send, max_hold_s=10)
    first = click(waves, "a")
    await turns()
    second, third = click(waves, "b"), click(waves, "c")
    await turns()
    producer.end("a")
    await turns()
    producer.end("b", ConnectionError("hub gone"))
    producer.end("c")
    await asyncio.wait({first, second, third}, timeout=1)
    with pytest.raises(ConnectionError):
        second.result()
    assert (first.exception(), third.exception()) == (None, None)
    fourth = click(waves, "d")
    await turns()
    producer.end("d")
    await asyncio.wait_for(fourth, 1)
    assert waves.waves == 3


async def test_a_wave_that_ends_after_its_hold_ran_out_does_not_block_later_clicks() -> None:
    producer = Producer()
    waves = ClickWaves(producer.send, max_hold_s=0)
    click(waves, "slow")
    await turns()  # the hold runs out with nothing queued behind the wave
    producer.end("slow")
    await turns()
    later = click(waves, "b")
    await turns()
    assert producer.started == ["slow", "b"]
    producer.end("b")
    await asyncio.wait_for(later, 1)


class VisitorProducer(Producer):
    """A producer whose sends of one key end one at a time, oldest first."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[str, list[asyncio.Future[None]]] = {}

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        self.started.append(partition_key)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(partition_key, []).append(ack)
        await ack

    def end(self, key: str, error: Exception | None = None) -> None:
        ack = self.waiting[key].pop(0)
        if error is None:
            ack.set_result(None)
        else:
            ack.set_exception(error)


async def test_a_click_waits_for_its_visitors_send_still_out_from_a_wave_the_hold_let_go() -> None:
    producer = VisitorProducer()
    waves = ClickWaves(producer.send, max_hold_s=0)
    click(waves, "visitor")  # e.g. waiting for the producer's partition lookup on a cold instance
    await turns()
    later = [click(waves, "visitor"), click(waves, "other")]
    await turns()
    # The hold let the next wave go, but without the visitor's second click.
    assert producer.started == ["visitor", "other"]
    producer.end("other")
    producer.end("visitor")
    await turns()
    assert producer.started == ["visitor", "other", "visitor"]
    producer.end("visitor")
    await asyncio.wait_for(asyncio.gather(*later), 1)


async def test_a_visitors_held_clicks_go_once_its_send_failed() -> None:
    producer = VisitorProducer()
    waves = ClickWaves(producer.send, max_hold_s=0)
    first = click(waves, "visitor")
    await turns()
    later = [click(waves, "visitor"), click(waves, "visitor")]
    await turns()
    assert producer.started == ["visitor"]  # the hold ran out, but both wait for the visitor's send
    producer.end("visitor", ConnectionError("hub gone"))
    await turns()
    assert producer.started == ["visitor"] * 3
    producer.end("visitor")
    producer.end("visitor")
    await asyncio.wait({first, *later}, timeout=1)
    assert isinstance(first.exception(), ConnectionError)
    assert [c.exception() for c in later] == [None, None]


async def test_a_send_that_raises_ends_its_click_and_holds_back_no_other() -> None:
    """A submit that raises instead of failing in its future: the click fails with its error, the
    wave's other clicks go, and the visitor's next click is not held behind it."""
    producer = Producer()

    def submit(messages: list[EncodedEnvelope], partition_key: str) -> asyncio.Future[None]:
        if partition_key == "bad" and "bad" not in producer.started:
            producer.started.append("bad")
            raise ValueError("cannot queue")
        return asyncio.ensure_future(producer.send(messages, partition_key))

    waves = ClickWaves(submit, max_hold_s=10)
    out = click(waves, "a")
    await turns()
    wave = [click(waves, "bad"), click(waves, "b")]
    producer.end("a")
    await asyncio.wait_for(out, 1)
    with pytest.raises(ValueError, match="cannot queue"):
        await asyncio.wait_for(wave[0], 1)
    await turns()
    assert producer.started == ["a", "bad", "b"]
    producer.end("b")
    await asyncio.wait_for(wave[1], 1)
    again = click(waves, "bad")
    await turns()
    assert producer.started[-1] == "bad"
    producer.end("bad")
    await asyncio.wait_for(again, 1)


class AnsweringInto(Producer):
    """A producer that, as HubProducer.submit given a future, answers the click's own future; for the
    keys in `own` it answers a future of its own instead, as a submit replaced by a stand-in does."""

    def __init__(self, own: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.own = own

    def submit(
        self, messages: list[EncodedEnvelope], partition_key: str, done: asyncio.Future[None]
    ) -> asyncio.Future[None]:
        self.started.append(partition_key)
        if partition_key in self.own:
            done = asyncio.get_running_loop().create_future()
        self.pending[partition_key] = done
        return done


async def test_into_the_send_answers_the_clicks_own_future_and_the_waves_go_on() -> None:
    """With `into` the send is given the click's future: what it answers is what the click awaits, a
    future of the send's own is carried over to the click's, and the next wave goes as either ends."""
    producer = AnsweringInto(own=("b",))
    waves = ClickWaves(producer.submit, max_hold_s=10, into=True)
    first = click(waves, "a")
    assert producer.pending["a"] is first
    later = [click(waves, "b"), click(waves, "c")]
    await turns()
    assert producer.started == ["a"]
    producer.end("a")
    await asyncio.wait_for(first, 1)
    await turns()
    assert producer.started == ["a", "b", "c"]
    assert producer.pending["b"] is not later[0]
    assert producer.pending["c"] is later[1]
    producer.end("b")
    producer.end("c", ConnectionError("refused"))
    await asyncio.wait_for(later[0], 1)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(later[1], 1)
    again = click(waves, "c")
    assert producer.started[-1] == "c"
    assert producer.pending["c"] is again
    producer.end("c")
    await asyncio.wait_for(again, 1)
    assert waves.waves == 3
