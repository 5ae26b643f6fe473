"""Debian's chromium, as make dev and the browser tests launch it (a Playwright browser download fails
on these machines, so the executable path is always given)."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
