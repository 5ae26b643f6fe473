"""`make dev`: the whole pipeline on this machine, with its state under .devstack/.

Starts Azurite, the Event Hubs endpoint and the dev host (http://localhost:7071), serves the demo page
(http://localhost:8000), sends the Clickstream Analytics on AWS example and some synthetic traffic,
waits until it is Avro in the lake, prints where to look, then follows new lake files until Ctrl-C.
Beside it runs the firehose (devstack/firehose.py): a second dev host running firehose_app.py and a
local webhook receiver; every request the receiver verifies is printed as it arrives.
Whenever no new files come, and whenever a trigger starts or stops failing, it prints the dev host's
status (.devstack/status.json, devstack/status.py): which function fails on which partition, and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from devstack.browser import CHROMIUM, CHROMIUM_ARGS
from devstack.firehose import Firehose, received_lines, run_firehose, wait_for_received
from devstack.services import ROOT
from devstack.stack import Stack, run_stack
from devstack.status import describe, failing, read_status
from workers.settings import Settings
from workers.sinks.lake.lake import EVENTS, area_prefix, open_lake, read_rows
from workers.synthetic import send, server_key

STATE = ROOT / ".devstack"
PIDS = STATE / "pids.json"
DEMO = ROOT / "devstack" / "demo"
AWS_EXAMPLE = (
    '[{"event_type":"button_click","event_id":"460daa08-0717-4385-8f2e-acb5bd019ee7",'
    '"timestamp":1667877566697,"app_id":"test_release","attributes":{"productName":"shoes","Price":99.9}},'
    '{"event_type":"item_view","event_id":"c6067c1c-fd8d-4fdb-bfaf-cc1212ca0195",'
    '"timestamp":1667877565698,"app_id":"test_release","attributes":{"productName":"book","Price":39.9}}]'
)


def _ports(value: str) -> tuple[int, int, int]:
    blob, queue, table = (int(p) for p in value.split(","))
    return blob, queue, table


def stop_leftovers() -> None:
    """Processes of a run that crashed (its children have their own sessions) hold the ports: stop them."""
    if not PIDS.exists():
        return
    groups = json.loads(PIDS.read_text())
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        alive = []
        for pid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
                alive.append(pid)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _group_alive(pid)]
            time.sleep(0.1)
        groups = alive
    print("stopped the processes left over by an earlier run")
    PIDS.unlink()


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def record_pids(stack: Stack, firehose: Firehose | None = None) -> None:
    """Each child leads its own process group; remember them so a crashed run can be cleaned up."""
    pids = [stack.azurite.pid, stack.eventhubs.pid]
    if stack.host.proc:
        pids.append(stack.host.proc.pid)
    if firehose is not None:
        pids += firehose.pids()
    PIDS.write_text(json.dumps(pids))


def show_received(firehose: Firehose, skip: int = 0) -> int:
    """Print what the local webhook receiver got after its first `skip` requests; returns the total."""
    lines = received_lines(firehose.received, skip)
    for line in lines:
        ids = line["event_ids"]
        count = len(ids) if isinstance(ids, list) else 0
        state = "signature verified" if line["verified"] else "SIGNATURE REFUSED"
        print(f"  webhook  {line['webhook_id']}  {count:>4} events  {state}")
    return skip + len(lines)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The demo page's requests are not news."""


@contextlib.contextmanager
def demo_site(port: int) -> Iterator[str]:
    folder = DEMO if DEMO.exists() else STATE / "demo"
    if not DEMO.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text("<!doctype html><title>hubcap demo</title><h1>hubcap demo</h1>")
    handler = partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("localhost", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        server.shutdown()


def visit_demo(demo_url: str, base_url: str) -> bool:
    """Browse the demo page in headless chromium so the real tracker sends events; False if unavailable."""
    if not CHROMIUM.exists():
        print("  (no /usr/bin/chromium: `make install-browser` adds it; skipping the tracker demo)")
        return False
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        sent = lambda r: "/api/collect" in r.url and r.method == "POST"  # noqa: E731
        with page.expect_request(sent, timeout=15_000):  # the page view, flushed within 2 s
            page.goto(f"{demo_url}?collector={base_url}")
        page.click("text=Shoes")
        page.click("[data-hubcap-event=add_to_cart] >> nth=0")
        page.close(run_before_unload=True)  # pagehide: the tracker flushes with sendBeacon
        browser.close()
    return True


def post_aws_example(base_url: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local URL we built
        f"{base_url}/api/collect?appId=test_release&platform=Android&event_bundle_sequence_id=1",
        data=AWS_EXAMPLE.encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "X-Forwarded-For": "101.188.67.134"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


def lake_files(settings: Settings) -> set[str]:
    return {f.path for f in open_lake(settings).list(area_prefix(EVENTS)) if f.path.endswith(".avro")}


def wait_for_new_files(settings: Settings, before: set[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = sorted(lake_files(settings) - before)
        if fresh:
            time.sleep(2)  # let the rest of the first wave land too
            return sorted(lake_files(settings) - before)
        time.sleep(0.5)
    return []


def show_rows(settings: Settings, files: list[str], limit: int = 8) -> None:
    lake = open_lake(settings)
    columns = (
        "event_type",
        "ua_browser_family",
        "device_class",
        "geo_country",
        "geo_city",
        "referrer_category",
    )
    print("  " + "  ".join(f"{c:<18}" for c in columns))
    shown = 0
    for path in files:
        for row in read_rows(lake, path):
            print("  " + "  ".join(f"{row.get(c)!s:<18}" for c in columns))
            shown += 1
            if shown >= limit:
                return


def failing_now(stack: Stack) -> set[tuple[str, str]]:
    """(function, partition) of each trigger the dev host reports failing."""
    status = read_status(stack.host.status_file) if stack.host.status_file else None
    return {(function, partition) for function, partition, _ in failing(status or {})}


def print_status(stack: Stack) -> None:
    status = read_status(stack.host.status_file) if stack.host.status_file else None
    if status is None or not failing(status):
        print("  the dev host reports no failing trigger (.venv/bin/hubcap status)")
        return
    print("the dev host reports failures (also: .venv/bin/hubcap status):")
    for line in describe(status):
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("DEVSTACK_HTTP_PORT", 7071)))
    parser.add_argument(
        "--eventhubs-port", type=int, default=int(os.environ.get("DEVSTACK_EVENTHUBS_PORT", 5672))
    )
    parser.add_argument(
        "--azurite-ports",
        type=_ports,
        default=_ports(os.environ.get("DEVSTACK_AZURITE_PORTS", "10000,10001,10002")),
    )
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEVSTACK_DEMO_PORT", 8000)))
    parser.add_argument(
        "--firehose-port", type=int, default=int(os.environ.get("DEVSTACK_FIREHOSE_PORT", 7072))
    )
    parser.add_argument("--events", type=int, default=200, help="synthetic events to send at start")
    parser.add_argument("--once", action="store_true", help="stop after showing the first rows")
    args = parser.parse_args()

    STATE.mkdir(exist_ok=True)
    stop_leftovers()
    try:
        return run(args)
    finally:
        PIDS.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    print("starting Azurite, the Event Hubs endpoint and the dev host (state and logs in .devstack/)")
    with (
        run_stack(
            STATE,
            http_port=args.http_port,
            eventhubs_port=args.eventhubs_port,
            azurite_ports=args.azurite_ports,
            host_name="localhost",
        ) as stack,
        run_firehose(STATE, stack.host.env, http_port=args.firehose_port) as firehose,
    ):
        record_pids(stack, firehose)
        settings = Settings.from_env(stack.host.env)
        with demo_site(args.demo_port) as demo_url:
            print(f"  collector   {stack.base_url}/api/collect   (health: {stack.base_url}/api/health)")
            print(f"  tracker     {stack.base_url}/api/hubcap.js")
            print(f"  demo page   {demo_url}")
            print(f"  Azurite     {stack.azurite.connection_string}")
            print(f"  Event Hubs  {stack.eventhubs.connection_string};EntityPath={stack.eventhubs.hub}")
            print(
                f"  firehose    {firehose.host.base_url} (second dev host) → receiver {firehose.receiver_url}"
            )
            print(f"  inspector   {firehose.host.base_url}/api/inspect/all?appId=demo   (hubcap inspect)")
            dashboard = f"{firehose.host.base_url}/api/dashboard?appId=demo"
            print(f"  dashboard   {dashboard} (read key: devstack/apps.dev.json)")
            before = lake_files(settings)
            print(f"AWS example → HTTP {post_aws_example(stack.base_url)}")
            key = server_key("demo", None)  # signed like a server-side sender, so visitor IPs count
            statuses = asyncio.run(send(f"{stack.base_url}/api/collect", "demo", args.events, server_key=key))
            print(f"{args.events} synthetic events → HTTP status counts {dict(statuses)}")
            files = wait_for_new_files(settings, before, timeout=60)
            print(f"{len(files)} new Avro files in the lake, e.g. {files[0] if files else '(none yet)'}:")
            if not files:
                print_status(stack)
            show_rows(settings, files)
            print("the firehose delivers the same events to the local webhook receiver:")
            wait_for_received(firehose.received, timeout=30)
            received = show_received(firehose)
            before = lake_files(settings)
            print(f"opening {demo_url} in headless chromium: the tracker sends a page view, a click, …")
            if visit_demo(demo_url, stack.base_url):
                tracked = wait_for_new_files(settings, before, timeout=30)
                print(f"tracker events → {len(tracked)} new Avro files:")
                if not tracked:
                    print_status(stack)
                show_rows(settings, tracked)
                files += tracked
            print("look: .venv/bin/hubcap lake ls | lake cat --app demo | lake sql 'SELECT …' | tail")
            if args.once:
                return 0 if files else 1
            print("following new lake files; Ctrl-C stops everything")
            seen = before | set(files)
            lake = open_lake(settings)
            reported = failing_now(stack)
            try:
                while not stop_event.is_set():
                    if failing_now(stack) != reported:  # a trigger started or stopped failing
                        reported = failing_now(stack)
                        print_status(stack)
                    with contextlib.suppress(Exception):
                        for f in lake.list(area_prefix(EVENTS)):
                            if f.path not in seen and f.path.endswith(".avro"):
                                seen.add(f.path)
                                print(f"  new  {f.size:>8} B  {f.path}")
                        received = show_received(firehose, received)
                    stop_event.wait(2)
            except KeyboardInterrupt:
                pass
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
