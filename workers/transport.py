"""The table clients' HTTP: the environment's proxy and CA settings read once, and a transport on urllib3.

azure-core's requests transport, with `use_env_settings` on (its default), has `requests` read them
(HTTP_PROXY, HTTPS_PROXY, NO_PROXY and their lower-case forms, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) on
every request: ~15% of the CPU of a metrics table transaction. `settled_options(url)` reads them once,
for the one endpoint a client talks to, and gives them to the client explicitly with
`use_env_settings` off, so the environment is honoured as it stood when the client was made: the
proxies through the SDK's ProxyPolicy, the CA bundle as `connection_verify`. (The same switch has
`requests` look for credentials in ~/.netrc; that is dropped: the SDK signs every request itself.)

Even so, a Table request cost ~4 ms of this process's CPU whatever its size, about 40% of it in
`requests` (its session, adapters, cookie jar and response model) around the urllib3 call that does
the work. `TableTransport` is azure-core's public extension point for that layer
(`azure.core.pipeline.transport.HttpTransport`) written straight on urllib3: the SDK's pipeline
(its headers, shared key or bearer token, retries, redirects, logging) still runs in front of it, and
only the sending changes. What it keeps of the requests transport:
- the connection options (`connection_timeout`, `read_timeout`, `connection_verify` as a bool or a
  CA bundle's path, `connection_cert`), given when it is made or per request, and `proxies` as the
  SDK's ProxyPolicy passes them (keyed as requests keys them: scheme and host, scheme, "all");
  with verification on and no bundle named, the CA bundle requests uses (certifi's);
- no retries and no redirects of its own: the pipeline's policies do both;
- its errors, as azure-core types the pipeline's retry policy knows: a connection that cannot be made
  is a ServiceRequestError (ServiceRequestTimeoutError when it times out), one that fails once the
  request is sent a ServiceResponseError (ServiceResponseTimeoutError on a read timeout, an
  IncompleteReadError when the body ends early).
It reads every answer whole before it returns (Table answers are bounded by the service: 4 MiB a
transaction, 1,000 entities a query page), so a `stream=True` caller reads the same bytes. The
answer is azure-core's `HttpResponseImpl`, the base its own transports' responses are built on
(azure-core is pinned in requirements.txt; tests/unit/test_table_transport.py runs the SDK's calls
through it on Azurite).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from http.client import IncompleteRead
from typing import Any
from urllib.parse import urlsplit

import urllib3
from azure.core.exceptions import (
    IncompleteReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest as RestRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict
from requests.utils import get_auth_from_url
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

# The SDK's default for both (azure.core.configuration.ConnectionConfiguration).
DEFAULT_TIMEOUT_S = 300.0
# Connections kept per host, as requests' adapter keeps them: the stage's threads share a client.
POOL_CONNECTIONS = 10


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


class TableTransport(HttpTransport):
    """azure-core's sync transport on a urllib3 pool manager; see the module's docstring."""

    def __init__(
        self,
        *,
        connection_timeout: float = DEFAULT_TIMEOUT_S,
        read_timeout: float = DEFAULT_TIMEOUT_S,
        connection_verify: bool | str = True,
        connection_cert: str | tuple[str, str] | None = None,
        **_: Any,  # the client's other options (retries, `proxies`) are its policies'
    ) -> None:
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        self.connection_verify = connection_verify
        self.connection_cert = connection_cert
        self._pools: dict[tuple[str | None, bool | str, Any], urllib3.PoolManager] = {}

    def __enter__(self) -> TableTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def open(self) -> None:
        """Pools are made on first use."""

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.clear()

    def _pool(self, proxy: str | None, verify: bool | str, cert: Any) -> urllib3.PoolManager:
        key = (proxy, verify, cert)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        options: dict[str, Any] = {"num_pools": POOL_CONNECTIONS, "maxsize": POOL_CONNECTIONS}
        if verify is False:
            options["cert_reqs"] = "CERT_NONE"
        else:
            options["cert_reqs"] = "CERT_REQUIRED"
            bundle = _default_bundle() if verify is True else verify
            # As requests does: a folder of certificates, a bundle file, or a setting that names
            # neither, which is refused at once (a retry would not find it either).
            if os.path.isdir(bundle):
                options["ca_cert_dir"] = bundle
            elif os.path.isfile(bundle):
                options["ca_certs"] = bundle
            else:
                raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {bundle}")
        if cert:
            options["cert_file"], options["key_file"] = (cert, None) if isinstance(cert, str) else cert
        if proxy:
            # urllib3 drops the user:password of a proxy's URL; requests sends it as Proxy-Authorization.
            user, password = get_auth_from_url(proxy)
            if user:
                options["proxy_headers"] = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
            made: urllib3.PoolManager = urllib3.ProxyManager(proxy, **options)
        else:
            made = urllib3.PoolManager(**options)
        # The stage's threads share a client and may make their first calls at once: one pool wins.
        pool = self._pools.setdefault(key, made)
        if pool is not made:
            made.clear()
        return pool

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Sends `request` and reads its answer whole. The table SDK's requests are all
        `azure.core.rest` ones with a plain body; any other kind is refused before it is sent."""
        if not isinstance(request, RestRequest):
            raise TypeError(f"TableTransport sends azure.core.rest requests, not {type(request).__name__}")
        if request.files:
            raise ValueError("TableTransport sends no multipart form data (`files`)")
        proxy = _proxy_for(request.url, kwargs.get("proxies"))
        pool = self._pool(
            proxy,
            kwargs.get("connection_verify", self.connection_verify),
            kwargs.get("connection_cert", self.connection_cert),
        )
        timeout = urllib3.Timeout(
            connect=kwargs.get("connection_timeout", self.connection_timeout),
            read=kwargs.get("read_timeout", self.read_timeout),
        )
        body = request.data
        try:
            answer = pool.request(
                request.method,
                request.url,
                body=body.encode() if isinstance(body, str) else body,
                headers=dict(request.headers),
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        # NewConnectionError (a refused connection, a name that does not resolve) is a subclass of
        # ConnectTimeoutError in urllib3 2: it is caught first, so only a real timeout is called one.
        except (NewConnectionError, ProxyError, SSLError) as exc:
            raise ServiceRequestError(exc, error=exc) from exc
        except ConnectTimeoutError as exc:
            raise ServiceRequestTimeoutError(exc, error=exc) from exc
        except ReadTimeoutError as exc:
            raise ServiceResponseTimeoutError(exc, error=exc) from exc
        except ProtocolError as exc:
            if any(isinstance(arg, IncompleteRead) for arg in exc.args):  # urllib3's is http.client's too
                raise IncompleteReadError(exc, error=exc) from exc
            raise ServiceResponseError(exc, error=exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ServiceResponseError(exc, error=exc) from exc
        return _RestResponse(request, answer)


def _default_bundle() -> str:
    import certifi

    return str(certifi.where())


def _proxy_for(url: str, proxies: MutableMapping[str, str] | None) -> str | None:
    """The proxy requests would pick for `url`: by scheme and host, by scheme, else "all"."""
    if not proxies:
        return None
    parts = urlsplit(url)
    for key in (f"{parts.scheme}://{parts.hostname}", parts.scheme, f"all://{parts.hostname}", "all"):
        if proxies.get(key):
            return proxies[key]
    return None


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class _RestResponse(HttpResponseImpl):
    """An answer read whole, as `azure.core.rest.HttpResponse`."""

    def __init__(self, request: RestRequest, answer: urllib3.BaseHTTPResponse) -> None:
        # From the HTTPHeaderDict itself, not its items(): a header sent twice is joined, as requests
        # joins it, rather than its last line kept.
        headers = case_insensitive_dict(answer.headers)
        super().__init__(
            request=request,
            internal_response=answer,
            status_code=answer.status,
            reason=answer.reason,
            headers=headers,
            content_type=headers.get("content-type"),
            stream_download_generator=lambda response, **_: _chunks(response.content, response._block_size),
        )
        self._content = answer.data
