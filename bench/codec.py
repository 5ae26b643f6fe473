"""Decode speed of the Event Hubs endpoint's AMQP codec (devstack.eventhubs.codec) on performatives.

The corpus is what the endpoint decodes on its hot paths, encoded with the codec itself: a producer's
and a consumer's ATTACH (source with a selector filter, link properties with an epoch), TRANSFER,
FLOW, DISPOSITION, and a $management request's properties and application-properties sections. Each
round decodes the corpus `--repeat` times as the connection does (descriptor, then the field list) and,
as the baseline in the same round, with the azure-eventhub SDK's own pure-Python decoder
(`_pyamqp._decode.decode_frame`) on the same bytes. Prints one line per round and, last, one JSON
object: {"decode_ns_per_performative": median, "sdk_decode_ns_per_performative": median, "ratio_to_sdk": ...}
(ratio < 1 means faster than the SDK's decoder). With `--rev REV`, the codec as it was at git revision
REV is timed in the same rounds too, and the object adds `rev_decode_ns_per_performative` and
`ratio_to_rev`: how a change to the codec compares with what it replaced, on the same machine and load.

    .venv/bin/python bench/codec.py [--repeat 2000] [--rounds 7] [--rev aea4311]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

from azure.eventhub._pyamqp._decode import decode_frame

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.eventhubs import codec  # noqa: E402
from devstack.eventhubs.codec import Described, Long, Symbol, UByte, UInt, ULong  # noqa: E402


def performative(code: int, fields: list[Any]) -> bytes:
    out = bytearray(b"\x00\x53")
    out.append(code)
    codec.encode(out, fields)
    return bytes(out)


def corpus() -> list[bytes]:
    selector = "amqp.annotation.x-opt-sequence-number > '41'"
    source = Described(
        ULong(0x28),
        [
            "amqps://localhost/clicks/ConsumerGroups/$default/Partitions/0",
            None,
            None,
            None,
            None,
            None,
            None,
            {
                Symbol("apache.org:selector-filter:string"): Described(
                    Symbol("apache.org:selector-filter:string"), selector
                )
            },
            None,
            None,
            None,
        ],
    )
    target = Described(ULong(0x29), ["amqps://localhost/clicks", None, None, None, None, None, None])
    consumer_attach = [
        f"receiver-{uuid.uuid4()}",
        UInt(0),
        True,
        UByte(2),
        UByte(0),
        source,
        Described(ULong(0x29), [None] * 7),
        None,
        False,
        None,
        ULong(1048576),
        None,
        None,
        {Symbol("com.microsoft:epoch"): Long(7), Symbol("com.microsoft:timeout"): UInt(60000)},
    ]
    producer_attach = [
        f"sender-{uuid.uuid4()}",
        UInt(1),
        False,
        UByte(0),
        UByte(0),
        Described(ULong(0x28), [None] * 11),
        target,
        None,
        False,
        UInt(0),
        ULong(1048576),
        None,
        None,
        None,
    ]
    transfer = [UInt(1), UInt(12345), b"\x00\x00\x00\x01", UInt(0x80013700), False, False, None, None]
    flow = [UInt(12), UInt(5000), UInt(3), UInt(5000), UInt(0), UInt(10), UInt(300), UInt(0), None, False]
    disposition = [True, UInt(17), UInt(17), True, Described(ULong(0x24), [])]
    management = [
        Described(ULong(0x73), [uuid.uuid4(), None, None, None, "$management-reply", None, None]),
        Described(
            ULong(0x74),
            {
                "operation": "READ",
                "name": "clicks",
                "type": "com.microsoft:partition",
                "partition": "0",
                "security_token": "SharedAccessSignature sr=x&sig=y&se=1&skn=z",
            },
        ),
    ]
    return [
        performative(0x12, consumer_attach),
        performative(0x12, producer_attach),
        performative(0x14, transfer),
        performative(0x13, flow),
        performative(0x15, disposition),
        performative(0x14, management),
    ]


def codec_at(rev: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:devstack/eventhubs/codec.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"codec_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{rev}:codec.py", "exec"), module.__dict__)  # noqa: S102 - the repo's own code
    return module


def ours(bodies: list[memoryview], repeat: int, decoder: Any = codec) -> float:
    start = time.perf_counter_ns()
    for _ in range(repeat):
        for body in bodies:
            _descriptor, pos = decoder.decode(body, 1)
            decoder.decode(body, pos)
    return (time.perf_counter_ns() - start) / (repeat * len(bodies))


def sdk(bodies: list[memoryview], repeat: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(repeat):
        for body in bodies:
            decode_frame(body)
    return (time.perf_counter_ns() - start) / (repeat * len(bodies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rev", help="also time the codec of this git revision")
    args = parser.parse_args()
    bodies = [memoryview(body) for body in corpus()]
    earlier = codec_at(args.rev) if args.rev else None
    ours(bodies, 100)  # warm-up
    sdk(bodies, 100)
    our_ns, sdk_ns, rev_ns = [], [], []
    for round_number in range(args.rounds):
        our_ns.append(ours(bodies, args.repeat))
        sdk_ns.append(sdk(bodies, args.repeat))
        line = f"round {round_number + 1}: codec {our_ns[-1]:.0f} ns, sdk {sdk_ns[-1]:.0f} ns"
        if earlier is not None:
            rev_ns.append(ours(bodies, args.repeat, earlier))
            line += f", {args.rev} {rev_ns[-1]:.0f} ns"
        print(line + " per performative")
    ours_median, sdk_median = statistics.median(our_ns), statistics.median(sdk_ns)
    result: dict[str, Any] = {
        "decode_ns_per_performative": round(ours_median),
        "sdk_decode_ns_per_performative": round(sdk_median),
        "ratio_to_sdk": round(ours_median / sdk_median, 3),
    }
    if rev_ns:
        result["rev"] = args.rev
        result["rev_decode_ns_per_performative"] = round(statistics.median(rev_ns))
        result["ratio_to_rev"] = round(ours_median / statistics.median(rev_ns), 3)
    result.update(performatives=len(bodies), repeat=args.repeat, rounds=args.rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
