"""The transport every registry request goes through: guard, bounded retries, and per-attempt accounting.

It wraps the real transport (or a test's `httpx.MockTransport`), so registry requests, token requests and
redirects (blob storage) all pass the same SSRF guard and scheme check, and every attempt is counted.
Retried: connection errors, timeouts, dropped connections, HTTP 5xx (500, 502, 503, 504) and 429, with
exponential backoff and jitter, honouring `Retry-After` up to a cap. Not retried: TLS verification failures
and every other status, which retrying cannot change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from wharf.registry._errors import Blocked
from wharf.registry._guard import Guard

log = logging.getLogger("wharf.registry")

RequestCallback = Callable[[str, str, float], None]
Sleep = Callable[[float], Awaitable[None]]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_tls_failure(error: BaseException) -> bool:
    """True when `error` (or what it wraps) is a TLS handshake/verification failure."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def outcome_of(error: BaseException) -> str:
    """A short, bounded label for metrics."""
    if is_tls_failure(error):
        return "tls_error"
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        return "connect_error"
    if isinstance(error, httpx.RemoteProtocolError):
        return "protocol_error"
    return "network_error"


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RequestStats:
    """Counters a metrics layer can read: attempts per (registry host, outcome) and time spent."""

    def __init__(self) -> None:
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.seconds: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.attempts.values())

    def by_outcome(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (_, outcome), count in self.attempts.items():
            counts[outcome] += count
        return counts


class PolicyTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        guard: Guard,
        *,
        retries: int,
        backoff: float,
        max_backoff: float,
        max_retry_after: float,
        stats: RequestStats,
        on_request: RequestCallback | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._guard = guard
        self._retries = max(0, retries)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_retry_after = max_retry_after
        self._stats = stats
        self._on_request = on_request
        self._sleep = sleep

    def _record(self, host: str, outcome: str, seconds: float) -> None:
        self._stats.attempts[(host, outcome)] += 1
        self._stats.seconds[host] = self._stats.seconds.get(host, 0.0) + seconds
        if self._on_request is not None:
            try:
                self._on_request(host, outcome, seconds)
            except Exception:  # a metrics bug must not break pulls
                log.exception("registry on_request callback failed")

    def _delay(self, attempt: int) -> float:
        ceiling = min(self._max_backoff, self._backoff * (2**attempt))
        # "Equal jitter": at least half the backoff, so retries really back off, plus a random half so that
        # many clients retrying together spread out.
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.netloc.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            self._guard.check_scheme(url.scheme, url.host, url.port)
            await self._guard.check(url.host, port)
        except Blocked:
            self._record(host, "blocked", 0.0)
            raise
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = await self._inner.handle_async_request(request)
            except (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError) as error:
                self._record(host, outcome_of(error), time.monotonic() - started)
                if attempt >= self._retries or is_tls_failure(error):
                    raise
                delay = self._delay(attempt)
                log.info("registry %s: %s, retry %d in %.2fs", host, outcome_of(error), attempt + 1, delay)
            else:
                self._record(host, str(response.status_code), time.monotonic() - started)
                if response.status_code not in RETRY_STATUSES or attempt >= self._retries:
                    return response
                delay = self._delay(attempt)
                asked = retry_after_seconds(response)
                if asked is not None:
                    if asked > self._max_retry_after:
                        return response  # the caller reports when to come back; we do not wait that long
                    delay = max(delay, asked)
                await response.aclose()
                log.info("registry %s: HTTP %d, retry %d in %.2fs", host, response.status_code, attempt + 1, delay)
            attempt += 1
            await self._sleep(delay)

    async def aclose(self) -> None:
        await self._inner.aclose()


class PinnedTransport(httpx.AsyncBaseTransport):
    """Connects to the addresses the guard checked, never to a fresh DNS answer: a name that resolved to a public
    address for the check cannot rebind to an internal one for the connection. The URL's host becomes the address;
    the Host header, TLS SNI and the certificate's name check keep the name. Addresses are tried in order when a
    connection cannot be made, as a resolver-driven connect would.

    Connections are pooled by URL origin, which is now an address that several names may share (a CDN serving
    blobs): each name gets a pool of its own, so a connection verified for one name never carries another's."""

    def __init__(self, network: Callable[[], httpx.AsyncBaseTransport], guard: Guard, *, max_names: int = 256) -> None:
        self._network = network
        self._guard = guard
        self._max_names = max_names
        self._by_name: OrderedDict[str, httpx.AsyncBaseTransport] = OrderedDict()

    async def _pool(self, name: str) -> httpx.AsyncBaseTransport:
        pool = self._by_name.get(name)
        if pool is None:
            pool = self._by_name[name] = self._network()
            if len(self._by_name) > self._max_names:
                _, oldest = self._by_name.popitem(last=False)
                await oldest.aclose()
        self._by_name.move_to_end(name)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        pool = await self._pool(url.host)
        addresses = await self._guard.addresses(url.host, url.port or (443 if url.scheme == "https" else 80))
        if addresses is None:
            return await pool.handle_async_request(request)
        if not addresses:
            # Connecting by name would ask DNS again, and that second answer is exactly what must not be trusted.
            raise httpx.ConnectError(f"{url.host} did not resolve", request=request)
        failure: httpx.ConnectError | httpx.ConnectTimeout | None = None
        for address in addresses:
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=address),
                headers=request.headers,  # Host: the name, set when the request was built
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": url.host},
            )
            try:
                return await pool.handle_async_request(pinned)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # this address is unreachable: the next
                if is_tls_failure(error):
                    raise
                failure = error
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        pools, self._by_name = list(self._by_name.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()
