"""How the redirect hands its clicks to the hub producer: in waves, so that clicks share sends.

A send to Event Hubs costs the azure-eventhub SDK about a millisecond of CPU however few messages it
carries (docs/capacity.md), and a click is one small message. The hub producer (workers/collect/hub.py)
already puts the messages queued for one partition while its previous send is in flight into one send,
but clicks are keyed by visitor hash, so they spread over all the hub's partitions and often found
their partition idle: under bench/redirect.py's load they went about two to a send.

`ClickWaves.submit` returns a future that keeps the producer's contract (it ends once the hub has
acknowledged the click, or with the send's error) and adds one rule: at most one wave of clicks is with
the producer at a time. A click that finds no wave out goes at once, so a lone click waits for nothing.
Clicks that come while a wave is out queue, and go together, in the order they came, as the next wave as
soon as every send of the current one has ended; handed over in one pass of the event loop, the producer
puts each partition's share of them in one send. A wave that takes longer than `max_hold_s` (a slow or
unreachable hub) does not hold the next one back past that: the queued clicks then go without waiting
for it.

Order is kept: a visitor's clicks share a partition, the producer sends each partition's messages in
the order it was handed them, and waves hand clicks over in the order they came. But a hand-over is not
a place in the producer's queue: on a cold instance the producer first looks up the hub's partitions,
and a send that arrives just after the lookup stored them, before the sends that waited for it resumed,
is queued ahead of them (workers/collect/hub.py, `HubProducer.send`). A wave released by its hold timer
while the one ahead waits for that lookup could so overtake it. So a click whose partition key still has
a send out stays queued until that send ended: one visitor's clicks reach the producer one after the
other, whatever the producer does inside. A visitor rarely clicks twice within a send's round trip, so
this holds back almost nothing; when the hub is slow, the held click's own deadline bounds its wait.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from workers.collect.hub import carry_over
from workers.stream.envelope import EncodedEnvelope

# The producer's submit (workers/collect/hub.py), a future that ends once the hub has the messages; a
# coroutine function is taken too, each call then run as a task. With `into`, the send is also given the
# click's own future, which it may answer itself and hand back (HubProducer.submit's `done`).
Send = Callable[..., Awaitable[None]]


class ClickWaves:
    def __init__(self, send: Send, *, max_hold_s: float, into: bool = False) -> None:
        self._send = send
        self._into = into
        self.max_hold_s = max_hold_s
        self._queued: list[tuple[list[EncodedEnvelope], str, asyncio.Future[None]]] = []
        self._out = 0  # sends of the current wave that have not ended
        self._wave = 0  # numbers the waves, so a late hold timer cannot release a wave it did not hold
        self._hold: asyncio.TimerHandle | None = None
        self._keys_out: dict[str, int] = {}  # sends out per partition key, whichever wave they are of
        self.waves = 0

    def submit(
        self,
        messages: list[EncodedEnvelope],
        partition_key: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Future[None]:
        """The click's future; cancelling it does not take the click out of its wave (with `into`, once
        its wave went, it does: the producer answers that future itself). `loop`: the running loop,
        when the caller has it at hand (each lookup of it costs CPython 3.11 a getpid() call)."""
        done: asyncio.Future[None] = (loop or asyncio.get_running_loop()).create_future()
        self._queued.append((messages, partition_key, done))
        if self._out == 0:
            self._release()
        return done

    def _release(self) -> None:
        keys_out = self._keys_out
        queued = self._queued
        held = {key for _, key, _ in queued if key in keys_out} if keys_out else None
        if held:
            going = [click for click in queued if click[1] not in held]
            self._queued = [click for click in queued if click[1] in held]
            if not going:
                return
        else:  # no send out for any queued key (nearly every wave): all of them go
            going = queued
            self._queued = []
            if not going:
                return
        loop = asyncio.get_running_loop()  # once a wave, not once a click
        self.waves += 1
        self._wave += 1
        wave = self._wave
        self._out = len(going)
        if self._hold is not None:
            self._hold.cancel()
        self._hold = loop.call_later(self.max_hold_s, self._held_too_long, wave)
        send, into, ended = self._send, self._into, self._ended
        for messages, partition_key, done in going:
            keys_out[partition_key] = keys_out.get(partition_key, 0) + 1
            sent: Any
            try:
                # With `into`, a future: the click's own when the send answers it (no second future,
                # nor the callback that carried its end over); with the two lines below, ~2,500
                # instructions a click less than a future of the send's own through ensure_future.
                sent = send(messages, partition_key, done) if into else send(messages, partition_key)
                if not isinstance(sent, asyncio.Future):  # a coroutine: run as a task
                    sent = asyncio.ensure_future(sent)
            except Exception as exc:  # a send that raised, not failed in its future: ended all the same
                sent = loop.create_future()
                sent.set_exception(exc)
            # Positional: a partial given keywords builds a dict of them on every call.
            sent.add_done_callback(functools.partial(ended, done, wave, partition_key))

    def _ended(self, done: asyncio.Future[None], wave: int, key: str, sent: asyncio.Future[None]) -> None:
        carry_over(done, sent)  # nothing when the send answered the click's own future (`into`)
        left = self._keys_out[key] - 1
        if left:
            self._keys_out[key] = left
        else:
            del self._keys_out[key]
        if wave == self._wave:
            self._out -= 1
            if self._out == 0:
                self._release_next()
        elif self._out == 0 and self._queued:  # no wave out: clicks held for this key go now
            self._release()

    def _held_too_long(self, wave: int) -> None:
        if wave == self._wave and self._out:
            self._release_next()

    def _release_next(self) -> None:
        self._wave += 1  # what is still out of the current wave no longer counts
        self._out = 0
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        self._release()
