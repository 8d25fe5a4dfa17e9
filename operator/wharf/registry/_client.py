"""`RegistryClient`: resolve an image reference to `ImageFacts` (S12, S13)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from types import TracebackType
from typing import Self

import httpx

from wharf.api.image import ImageFacts
from wharf.config import Settings
from wharf.registry._auth import AuthState, Credentials, RegistryAuth, parse_www_authenticate
from wharf.registry._cache import LRUCache, SingleFlight, TTLCache
from wharf.registry._errors import (
    Denied,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryErrorBody,
    Unauthorized,
    Unavailable,
    Unsupported,
)
from wharf.registry._guard import Guard, Resolver
from wharf.registry._manifest import (
    ACCEPT,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    ConfigFacts,
    Descriptor,
    Manifest,
    choose_platform,
    compute_digest,
    config_facts,
    digest_algorithm,
    normalize_platform,
    parse_manifest,
    require_image_config,
    verify,
)
from wharf.registry._reference import Reference, parse_reference
from wharf.registry._transport import (
    PinnedTransport,
    PolicyTransport,
    RequestCallback,
    RequestStats,
    Sleep,
    is_tls_failure,
    retry_after_seconds,
)

log = logging.getLogger("wharf.registry")

# Index -> index -> image is legal OCI but unusual; deeper nesting is a loop or an attack.
_MAX_INDEX_DEPTH = 2
_ERROR_BODY_BYTES = 64 * 1024
# Connect fails fast (an unreachable host), reads allow for a slow registry under load.
_DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """The system's trusted CAs plus the cluster admin's bundle (WHARF_REGISTRY_CA_BUNDLE)."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class _Fetched:
    """A finished GET: status, headers and (bounded) body; the connection is already released."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def _read_bounded(response: httpx.Response, limit: int, what: str, where: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Unsupported(f"{where}: the {what} is {declared} bytes, more than the {limit} wharf accepts")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise Unsupported(f"{where}: the {what} is larger than the {limit} bytes wharf accepts")
        chunks.append(chunk)
    return b"".join(chunks)


class RegistryClient:
    """Reads image manifests and configs from Docker Registry V2 / OCI registries.

    One client serves the whole operator: it keeps connections, auth tokens and caches across calls. Use it
    as an async context manager, or call `aclose()`.

    Tuning parameters are keyword-only so tests can make retries fast: `retries` extra attempts per request
    (connection errors, timeouts, 5xx, 429) with backoff `backoff * 2**n` capped at `max_backoff` seconds
    plus jitter; a `Retry-After` longer than `max_retry_after` is not waited for (RateLimited carries it).
    `on_request(registry_host, outcome, seconds)` is called for every HTTP attempt (outcome is the status code,
    or `connect_error`, `timeout`, `tls_error`, `protocol_error`, `network_error`, `blocked`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = _DEFAULT_TIMEOUT,
        resolve_timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        concurrency_per_registry: int = 16,
        tag_ttl: float = 30.0,
        v2_ttl: float = 300.0,
        cache_size: int = 4096,
        on_request: RequestCallback | None = None,
        resolver: Resolver | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._guard = Guard(settings, resolver=resolver)
        self.stats = RequestStats()
        if transport is None:
            verify = _ssl_context(settings.registry_ca_bundle)
            transport = PinnedTransport(
                lambda: httpx.AsyncHTTPTransport(verify=verify, http2=False, retries=0), self._guard
            )
        self._retries = retries
        policy = PolicyTransport(
            transport,
            self._guard,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            stats=self.stats,
            on_request=on_request,
            sleep=sleep,
        )
        self._http = httpx.AsyncClient(
            transport=policy,
            timeout=timeout,
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": "wharf-operator (registry client)"},
            trust_env=False,
        )
        self._resolve_timeout = resolve_timeout
        self._concurrency = concurrency_per_registry
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._auth = AuthState()
        self._v2_ok: TTLCache[str, bool] = TTLCache(maxsize=256, ttl=v2_ttl)
        self._tags: TTLCache[tuple[str, str, Credentials | None], Manifest] = TTLCache(cache_size, tag_ttl)
        self._manifests: LRUCache[tuple[str, str, Credentials | None], Manifest] = LRUCache(cache_size)
        self._configs: LRUCache[str, ConfigFacts] = LRUCache(cache_size)
        self._resolving: SingleFlight[tuple[Reference, Credentials | None, str, bool], ImageFacts] = SingleFlight()
        self._fetching_manifest: SingleFlight[tuple[str, str, Credentials | None], Manifest] = SingleFlight()
        self._fetching_config: SingleFlight[str, ConfigFacts] = SingleFlight()
        self._probing: SingleFlight[str, None] = SingleFlight()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for flight in (self._resolving, self._fetching_manifest, self._fetching_config, self._probing):
            await flight.cancel_all()
        await self._http.aclose()

    @property
    def requests_made(self) -> int:
        """HTTP attempts so far (every retry and token fetch counts)."""
        return self.stats.total

    # -- public operations ------------------------------------------------------------------------------

    async def resolve(
        self,
        reference: str,
        credentials: Credentials | None = None,
        *,
        platform: str | None = None,
        fresh: bool = False,
    ) -> ImageFacts:
        """Resolve `reference` (as a user wrote it) to the image's facts, pinned by digest (S13).

        `fresh=True` asks the registry what the tag points to now, never the short-lived tag cache: a restage
        right after a push must see the new digest.

        For a manifest list / OCI index, the facts come from the image for `platform` (default: the
        cluster's `settings.node_platform`), and `digest` is the index's digest: the kubelet picks each
        node's platform itself, so pinning the index keeps mixed-architecture clusters working.
        """
        ref = parse_reference(reference)
        wanted = platform or self._settings.node_platform
        try:
            normalize_platform(wanted)
        except ValueError as error:
            raise Unsupported(f"{error}; give the platform as os/arch[/variant], e.g. linux/arm64") from error
        try:
            async with asyncio.timeout(self._resolve_timeout):
                return await self._resolving.do(
                    (ref, credentials, wanted, fresh), lambda: self._resolve(ref, credentials, wanted, fresh)
                )
        except TimeoutError as error:
            raise Unavailable(
                f"resolving {ref} took longer than {self._resolve_timeout:g}s; the registry {ref.domain} is "
                "too slow or unreachable",
                reference=str(ref),
            ) from error
        except RegistryError as error:
            if not error.reference:
                error.reference = str(ref)
            raise

    async def check_v2(self, host: str) -> None:
        """Check that `host[:port]` speaks the Registry V2 API (`GET /v2/` answers 200 or 401), or raise
        Unsupported / Unavailable / Blocked. The answer is cached for a few minutes."""
        if self._v2_ok.get(host):
            return
        await self._probing.do(host, lambda: self._probe(host))

    # -- the steps ---------------------------------------------------------------------------------------

    async def _resolve(
        self, ref: Reference, credentials: Credentials | None, platform: str, fresh: bool = False
    ) -> ImageFacts:
        await self.check_v2(ref.registry)
        top = await self._top_manifest(ref, credentials, fresh)
        chosen = top
        depth = 0
        chosen_platform = ""
        while chosen.is_index:
            depth += 1
            if depth > _MAX_INDEX_DEPTH:
                raise Unsupported(f"{ref}: manifest indexes nested more than {_MAX_INDEX_DEPTH} deep")
            entry = choose_platform(chosen, platform, str(ref))
            chosen_platform = entry.platform
            chosen = await self._manifest_by_digest(ref, entry.digest, credentials)
        assert chosen.config is not None
        facts = await self._config(ref, chosen.config, credentials)
        return ImageFacts(
            reference=str(ref),
            digest=top.digest,
            exposed_ports=facts.exposed_ports,
            user=facts.user,
            entrypoint=facts.entrypoint,
            cmd=facts.cmd,
            workdir=facts.workdir,
            env=facts.env,
            created=facts.created,
            labels=dict(facts.labels),
            platform=chosen_platform or facts.platform,
        )

    async def _top_manifest(self, ref: Reference, credentials: Credentials | None, fresh: bool = False) -> Manifest:
        if ref.digest:
            return await self._manifest_by_digest(ref, ref.digest, credentials)
        key = (ref.name, ref.manifest_reference, credentials)
        cached = None if fresh else self._tags.get(key)
        if cached is not None:
            return cached

        async def fetch() -> Manifest:
            manifest = await self._fetch_manifest(ref, ref.manifest_reference, credentials)
            self._tags.put(key, manifest)
            self._manifests.put((ref.name, manifest.digest, credentials), manifest)
            return manifest

        return await self._fetching_manifest.do(key, fetch)

    async def _manifest_by_digest(self, ref: Reference, digest: str, credentials: Credentials | None) -> Manifest:
        key = (ref.name, digest, credentials)
        cached = self._manifests.get(key)
        if cached is not None:
            return cached

        async def fetch() -> Manifest:
            manifest = await self._fetch_manifest(ref, digest, credentials)
            self._manifests.put(key, manifest)
            return manifest

        return await self._fetching_manifest.do(key, fetch)

    async def _fetch_manifest(self, ref: Reference, target: str, credentials: Credentials | None) -> Manifest:
        where = f"{ref.name}@{target}" if ":" in target else f"{ref.name}:{target}"
        try:
            fetched = await self._get(
                ref,
                f"manifests/{target}",
                accept=ACCEPT,
                credentials=credentials,
                limit=MAX_MANIFEST_BYTES,
                what="manifest",
            )
        except NotFound as error:
            if "NAME_UNKNOWN" not in error.registry_code and await self._repository_missing(ref, credentials):
                error.message = self._missing_repository_message(ref)
                error.args = (error.message,)
                error.registry_code = "NAME_UNKNOWN"
            raise
        if ":" in target:  # by digest: the content must hash to it
            verify(fetched.body, target, "manifest", where)
            digest = target
        else:
            digest = compute_digest(fetched.body)
            claimed = fetched.headers.get("docker-content-digest", "")
            if claimed and digest_algorithm(claimed) == "sha256" and claimed != digest:
                raise Unsupported(
                    f"{where}: the registry says the manifest's digest is {claimed} but its content hashes to "
                    f"{digest}; something between wharf and the registry altered it"
                )
        return parse_manifest(fetched.body, fetched.headers.get("content-type", ""), digest, where)

    async def _repository_missing(self, ref: Reference, credentials: Credentials | None) -> bool:
        """Registries (distribution among them) answer MANIFEST_UNKNOWN for a tag in a repository that does
        not exist; asking for its tag list tells the two apart, so the message names the right mistake."""
        try:
            fetched = await self._send(
                ref.registry,
                f"{self._base_url(ref.registry)}/v2/{ref.path}/tags/list?n=1",
                accept="application/json",
                credentials=credentials,
                limit=_ERROR_BODY_BYTES,
                what="tag list",
                where=str(ref),
            )
        except RegistryError:
            return False
        return fetched.status == 404 and "NAME_UNKNOWN" in RegistryErrorBody.parse(fetched.body).code

    @staticmethod
    def _missing_repository_message(ref: Reference) -> str:
        return (
            f"image {ref} not found: {ref.domain} has no repository {ref.path!r}; check the image name (and "
            "registry) in spec.dockerImage"
        )

    async def _config(self, ref: Reference, descriptor: Descriptor, credentials: Credentials | None) -> ConfigFacts:
        where = f"{ref.name}@{descriptor.digest}"
        require_image_config(descriptor, str(ref))
        cached = self._configs.get(descriptor.digest)
        if cached is not None:
            return cached

        async def fetch() -> ConfigFacts:
            fetched = await self._get(
                ref,
                f"blobs/{descriptor.digest}",
                accept="application/json, */*",
                credentials=credentials,
                limit=MAX_CONFIG_BYTES,
                what="image config",
            )
            verify(fetched.body, descriptor.digest, "image config", where)
            facts = config_facts(fetched.body, where)
            self._configs.put(descriptor.digest, facts)
            return facts

        return await self._fetching_config.do(descriptor.digest, fetch)

    # -- HTTP --------------------------------------------------------------------------------------------

    def _base_url(self, registry: str) -> str:
        url = httpx.URL(f"https://{registry}/")
        scheme = "http" if self._guard.is_insecure(url.host, url.port) else "https"
        return f"{scheme}://{registry}"

    def _limit(self, registry: str) -> asyncio.Semaphore:
        semaphore = self._limits.get(registry)
        if semaphore is None:
            semaphore = self._limits[registry] = asyncio.Semaphore(self._concurrency)
        return semaphore

    async def _send(
        self,
        registry: str,
        url: str,
        *,
        accept: str,
        credentials: Credentials | None,
        limit: int,
        what: str,
        where: str,
        auth: bool = True,
    ) -> _Fetched:
        async with self._limit(registry):
            try:
                request = self._http.build_request("GET", url, headers={"Accept": accept})
                response = await self._http.send(
                    request, auth=RegistryAuth(self._auth, credentials) if auth else None, stream=True
                )
                try:
                    if response.status_code == 200:
                        body = await _read_bounded(response, limit, what, where)
                    else:
                        body = (await response.aread())[:_ERROR_BODY_BYTES]
                finally:
                    await response.aclose()
            except httpx.TooManyRedirects as error:
                raise Unsupported(f"{where}: the registry redirected too many times") from error
            except httpx.InvalidURL as error:
                # A token realm or a redirect naming a host httpx cannot parse (0177.0.0.1): refused, not crashed on.
                raise Unsupported(f"{where}: the registry sent an address that is not a valid URL ({error})") from error
            except httpx.TimeoutException as error:
                raise Unavailable(
                    f"{registry} did not answer in time ({type(error).__name__}) after {self._retries + 1} "
                    "attempts; wharf will keep retrying"
                ) from error
            except httpx.HTTPError as error:
                if is_tls_failure(error):
                    failure = Unavailable(
                        f"TLS to {registry} failed ({error}). If the registry's certificate comes from a "
                        "private CA, the cluster admin can add that CA to WHARF_REGISTRY_CA_BUNDLE; if the "
                        "registry serves plain HTTP, the admin can list it in WHARF_REGISTRY_INSECURE"
                    )
                    failure.temporary = False  # retrying cannot fix trust; the admin's settings can
                    raise failure from error
                raise Unavailable(
                    f"cannot reach the registry {registry} ({type(error).__name__}: {error}) after "
                    f"{self._retries + 1} attempts; wharf will keep retrying"
                ) from error
        return _Fetched(response.status_code, response.headers, body)

    async def _get(
        self,
        ref: Reference,
        path: str,
        *,
        accept: str,
        credentials: Credentials | None,
        limit: int,
        what: str,
    ) -> _Fetched:
        where = str(ref)
        url = f"{self._base_url(ref.registry)}/v2/{ref.path}/{path}"
        fetched = await self._send(
            ref.registry, url, accept=accept, credentials=credentials, limit=limit, what=what, where=where
        )
        if fetched.status != 200:
            raise self._error(ref, fetched, what, credentials)
        return fetched

    async def _probe(self, registry: str) -> None:
        url = f"{self._base_url(registry)}/v2/"
        fetched = await self._send(
            registry,
            url,
            accept="application/json",
            credentials=None,
            limit=_ERROR_BODY_BYTES,
            what="/v2/ answer",
            where=registry,
            auth=False,
        )
        if fetched.status == 401:
            challenges = parse_www_authenticate(fetched.headers.get("www-authenticate", ""))
            challenge = next((c for c in challenges if c.scheme in ("bearer", "basic")), None)
            if challenge is not None:
                self._auth.challenges[registry] = challenge
        elif fetched.status in (429, 500, 502, 503, 504):
            raise self._status_error(registry, registry, fetched, "/v2/ probe")
        elif fetched.status != 200:
            raise Unsupported(
                f"{registry} does not speak the Docker Registry HTTP API V2 (GET /v2/ answered HTTP "
                f"{fetched.status}); wharf supports V2 / OCI distribution registries only",
                status_code=fetched.status,
            )
        self._v2_ok.put(registry, True)

    # -- errors ------------------------------------------------------------------------------------------

    def _status_error(self, registry: str, where: str, fetched: _Fetched, what: str) -> RegistryError:
        detail = RegistryErrorBody.parse(fetched.body)
        if fetched.status == 429:
            retry_after = retry_after_seconds(httpx.Response(429, headers=fetched.headers))
            when = f" (it asks to wait {retry_after:g}s)" if retry_after is not None else ""
            return RateLimited(
                f"{registry} is rate-limiting requests (HTTP 429){when} for {where}; wharf will try again "
                "later. Pulling with credentials usually raises the limit",
                retry_after=retry_after,
                registry_message=detail.message,
                registry_code=detail.code,
            )
        return Unavailable(
            f"{registry} answered HTTP {fetched.status} to the {what} request for {where} after "
            f"{self._retries + 1} attempts; wharf will keep retrying",
            registry_message=detail.message,
            registry_code=detail.code,
            status_code=fetched.status,
        )

    def _error(self, ref: Reference, fetched: _Fetched, what: str, credentials: Credentials | None) -> RegistryError:
        detail = RegistryErrorBody.parse(fetched.body)
        status = fetched.status

        def error(kind: type[RegistryError], message: str) -> RegistryError:
            return kind(message, registry_message=detail.message, registry_code=detail.code, status_code=status)

        who = f"user {credentials.username!r}" if credentials else "anonymous pulls"
        if status == 404:
            if "NAME_UNKNOWN" in detail.code:
                message = self._missing_repository_message(ref)
            elif what != "manifest":
                message = f"image {ref}: the registry is missing its {what} ({detail.code or 'HTTP 404'})"
            elif ref.digest:
                message = (
                    f"image {ref} not found: {ref.domain} has no manifest {ref.digest} in {ref.path!r}; "
                    "check the digest in spec.dockerImage"
                )
            else:
                message = (
                    f"image {ref} not found: {ref.domain} has no tag {ref.tag!r} in repository {ref.path!r}; "
                    "check the tag in spec.dockerImage, or push it"
                )
            return error(NotFound, message)
        if status == 401:
            if credentials is None:
                message = (
                    f"{ref.domain} requires authentication to pull {ref.name}: set spec.dockerUsername and the "
                    "password Secret on the App"
                )
            else:
                message = (
                    f"{ref.domain} rejected the credentials of {who} for {ref.name}: check spec.dockerUsername "
                    "and the password Secret, and that this user may pull the repository"
                )
            if ref.domain == "docker.io":
                message += " (Docker Hub also answers this way for repositories that do not exist: check the name)"
            return error(Unauthorized, message)
        if status == 403:
            return error(
                Denied,
                f"{ref.domain} denied {who} access to {ref.name}: grant this account pull permission on the "
                "repository, or use credentials that have it",
            )
        if status == 429 or status >= 500:
            return self._status_error(ref.domain, str(ref), fetched, what)
        return error(
            Unsupported,
            f"{ref.domain} answered HTTP {status} to the {what} request for {ref}, which a V2 registry "
            "should not; is this a Docker Registry V2 / OCI registry?",
        )
