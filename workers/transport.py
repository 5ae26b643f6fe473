"""The environment's proxy and CA settings, read once when a client is made.

azure-core's requests transport, with `use_env_settings` on (its default), has `requests` read them
(HTTP_PROXY, HTTPS_PROXY, NO_PROXY and their lower-case forms, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) on
every request: ~15% of the CPU of a metrics table transaction. `settled_options(url)` reads them once,
for the one endpoint a client talks to, and gives them to the client explicitly with
`use_env_settings` off, so the environment is honoured as it stood when the client was made. (The
same switch has `requests` look for credentials in ~/.netrc; that is dropped: the SDK signs every
request itself.)
"""

from __future__ import annotations

import os
from typing import Any


def settled_options(url: str) -> dict[str, Any]:
    """Keyword options of an azure-core client of `url`: the environment's proxies for that URL (none
    when NO_PROXY bypasses it) and CA bundle, read now."""
    from requests.utils import get_environ_proxies

    options: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(url)
    if proxies:
        options["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options
