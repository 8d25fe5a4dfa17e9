"""The registry package's small parts: public API, challenge parsing, pull secrets, guard, caches, platforms."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import httpx
import pytest

import wharf.registry
from wharf.config import Settings
from wharf.registry import Blocked, Credentials, Unauthorized, credentials_from_dockerconfigjson
from wharf.registry._auth import parse_www_authenticate, repository_scope
from wharf.registry._cache import LRUCache, SingleFlight, TTLCache
from wharf.registry._guard import Guard
from wharf.registry._manifest import Descriptor, Manifest, choose_platform, normalize_platform, parse_created
from wharf.registry._transport import PinnedTransport, retry_after_seconds


def test_public_api() -> None:
    assert sorted(wharf.registry.__all__) == sorted(
        [
            "Blocked",
            "Credentials",
            "Denied",
            "InvalidReference",
            "NotFound",
            "RateLimited",
            "Reference",
            "RegistryClient",
            "RegistryError",
            "RequestCallback",
            "RequestStats",
            "Unauthorized",
            "Unavailable",
            "Unsupported",
            "credentials_from_dockerconfigjson",
            "parse_reference",
        ]
    )
    for name in wharf.registry.__all__:
        assert getattr(wharf.registry, name) is not None
    assert "RegistryError" in (wharf.registry.__doc__ or "")


def test_layering_imports_only_api_and_config() -> None:
    import ast
    from pathlib import Path

    folder = Path(wharf.registry.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wharf"):
                assert node.module.startswith(("wharf.registry", "wharf.api", "wharf.config")), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in ("kopf", "kubernetes"), path


# -- WWW-Authenticate -----------------------------------------------------------------------------------------
def test_parses_docker_hub_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'
    )
    [challenge] = parse_www_authenticate(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.params["scope"] == "repository:library/nginx:pull"


def test_parses_several_challenges_and_odd_spacing() -> None:
    header = 'Basic realm="a, b", Bearer realm=https://x/token , service="s",error="insufficient_scope"'
    basic, bearer = parse_www_authenticate(header)
    assert (basic.scheme, basic.realm) == ("basic", "a, b")
    assert (bearer.scheme, bearer.realm, bearer.params["error"]) == ("bearer", "https://x/token", "insufficient_scope")


def test_parses_escaped_quotes_and_garbage() -> None:
    [challenge] = parse_www_authenticate(r'Bearer realm="a\"b"')
    assert challenge.realm == 'a"b'
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate('"') == []


def test_repository_scope() -> None:
    assert repository_scope("/v2/library/nginx/manifests/latest") == "repository:library/nginx:pull"
    assert repository_scope("/v2/a/b/c/blobs/sha256:00") == "repository:a/b/c:pull"
    assert repository_scope("/v2/") is None


# -- pull secrets -------------------------------------------------------------------------------------------
def _secret(auths: dict[str, dict[str, str]]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_dockerconfigjson_docker_hub_aliases() -> None:
    blob = _secret({"https://index.docker.io/v1/": _auth("hub", "pw:with:colons")})
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert credentials_from_dockerconfigjson(blob, host) == Credentials("hub", "pw:with:colons")
    assert credentials_from_dockerconfigjson(blob, "ghcr.io") is None


def test_dockerconfigjson_ports_schemes_and_username_password_fields() -> None:
    blob = _secret(
        {
            "registry.example.com:5000": {"username": "u1", "password": "p1"},
            "https://registry.example.com": _auth("u2", "p2"),
        }
    )
    assert credentials_from_dockerconfigjson(blob, "registry.example.com:5000") == Credentials("u1", "p1")
    assert credentials_from_dockerconfigjson(blob, "registry.example.com") == Credentials("u2", "p2")
    assert credentials_from_dockerconfigjson(blob, "registry.example.com:6000") is None


def test_dockerconfigjson_globs_and_paths_like_the_kubelet() -> None:
    blob = _secret(
        {
            "*.example.com": _auth("glob", "g"),
            "eu.example.com": _auth("exact", "e"),
            "eu.example.com/team": _auth("team", "t"),
        }
    )
    assert credentials_from_dockerconfigjson(blob, "us.example.com") == Credentials("glob", "g")
    assert credentials_from_dockerconfigjson(blob, "a.b.example.com") is None  # a glob covers one label
    assert credentials_from_dockerconfigjson(blob, "eu.example.com") == Credentials("exact", "e")
    assert credentials_from_dockerconfigjson(blob, "eu.example.com", "team/app") == Credentials("team", "t")
    assert credentials_from_dockerconfigjson(blob, "eu.example.com", "teamx/app") == Credentials("exact", "e")


def test_dockerconfigjson_legacy_dockercfg_and_errors() -> None:
    legacy = json.dumps({"quay.io": _auth("q", "w")})
    assert credentials_from_dockerconfigjson(legacy, "quay.io") == Credentials("q", "w")
    assert credentials_from_dockerconfigjson({"auths": {"quay.io": _auth("q", "w")}}, "quay.io") is not None
    with pytest.raises(Unauthorized, match="not valid JSON"):
        credentials_from_dockerconfigjson(b"{nope", "quay.io")
    with pytest.raises(Unauthorized, match="base64"):
        credentials_from_dockerconfigjson(_secret({"quay.io": {"auth": "\u00e9\u00e9"}}), "quay.io")
    # A key that is no URL at all matches nothing, and the others still work.
    mixed = {"https://[bad": _auth("x", "y"), "quay.io": _auth("q", "w")}
    assert credentials_from_dockerconfigjson({"auths": mixed}, "quay.io") == Credentials("q", "w")


def test_credentials_repr_hides_password() -> None:
    creds = Credentials("alice", "wonderland")
    assert "wonderland" not in repr(creds)
    assert "alice" in repr(creds)


# -- guard ---------------------------------------------------------------------------------------------------
async def test_guard_resolves_without_blocking_and_caches() -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        await asyncio.sleep(0)
        return ["8.8.8.8", "10.0.0.1"]

    guard = Guard(Settings(), resolver=resolver)
    with pytest.raises(Blocked, match=r"resolves to 10\.0\.0\.1"):  # one internal answer is enough to refuse
        await guard.check("mixed.example", 443)
    with pytest.raises(Blocked):
        await guard.check("mixed.example", 443)
    assert calls == ["mixed.example"]


async def test_guard_system_resolver_refuses_localhost() -> None:
    guard = Guard(Settings())
    with pytest.raises(Blocked, match="loopback"):
        await guard.check("localhost", 5000)
    await Guard(Settings(registry_allow=("localhost:5000",))).check("localhost", 5000)
    await Guard(Settings(registry_allow=("127.0.0.0/8", "::1"))).check("localhost", 5000)


async def test_guard_unresolvable_names_are_left_to_the_connection() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    await Guard(Settings(), resolver=nxdomain).check("nowhere.invalid", 443)


async def test_pinned_transport_connects_to_the_checked_addresses_with_the_name_kept() -> None:
    # The transport's own logic (the real connection is proven in tests/integration/test_registry_real.py).
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34", "2606:2800:220:1::1"]

    seen: list[httpx.Request] = []
    pools: list[str] = []

    def network() -> httpx.AsyncBaseTransport:
        pools.append("pool")

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.host == "93.184.216.34":
                raise httpx.ConnectError("unreachable", request=request)
            return httpx.Response(200)

        return httpx.MockTransport(handle)

    guard = Guard(Settings(), resolver=resolver)
    transport = PinnedTransport(network, guard)
    async with httpx.AsyncClient(transport=transport) as client:
        await guard.check("reg.example", 443)
        response = await client.get("https://reg.example/v2/")
        assert response.status_code == 200
        # The first address refused the connection; the second took it. The name stays in Host and SNI.
        assert [r.url.host for r in seen] == ["93.184.216.34", "2606:2800:220:1::1"]
        assert str(seen[1].url) == "https://[2606:2800:220:1::1]/v2/"
        assert all(r.headers["Host"] == "reg.example" for r in seen)
        assert all(r.extensions["sni_hostname"] == "reg.example" for r in seen)
        assert lookups == ["reg.example"]  # one answer for the check and the connection
        # Another name on the same addresses gets a pool of its own; an IP literal is connected to as written.
        await client.get("https://cdn.example/blob")
        await client.get("https://8.8.4.4/x")
        assert len(pools) == 3
        assert seen[-1].url.host == "8.8.4.4"
        assert "sni_hostname" not in seen[-1].extensions


async def test_pinned_transport_never_falls_back_to_a_fresh_lookup() -> None:
    # A name the guard could not resolve is not connected to by name (that lookup is what a rebinding DNS server
    # would answer); a host refused by now is refused; a timeout on one address moves on to the next.
    answers: dict[str, list[str]] = {"slow.example": ["2606:4700::1", "104.16.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "2606:4700::1":
            raise httpx.ConnectTimeout("no route", request=request)
        return httpx.Response(200)

    guard = Guard(Settings(), resolver=resolver)
    transport = PinnedTransport(lambda: httpx.MockTransport(handle), guard)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match=r"nowhere\.example did not resolve"):
            await client.get("https://nowhere.example/v2/")
        assert seen == []
        assert (await client.get("https://slow.example/v2/")).status_code == 200
        assert seen == ["2606:4700::1", "104.16.0.1"]
        answers["flip.example"] = ["169.254.169.254"]  # what a name resolves to when the connection is made
        with pytest.raises(Blocked, match="link-local"):
            await client.get("https://flip.example/v2/")
        assert seen == ["2606:4700::1", "104.16.0.1"]


def test_guard_scheme() -> None:
    guard = Guard(Settings(registry_insecure=("reg.local:5000", "other.local")))
    guard.check_scheme("http", "reg.local", 5000)
    guard.check_scheme("http", "other.local", 8080)
    guard.check_scheme("https", "anything", None)
    with pytest.raises(Blocked, match="WHARF_REGISTRY_INSECURE"):
        guard.check_scheme("http", "reg.local", 5001)


# -- caches ------------------------------------------------------------------------------------------------
def test_lru_evicts_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_ttl_cache_expires() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, 5.0, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2, ttl=1.0)
    now[0] = 2.0
    assert (cache.get("a"), cache.get("b")) == (1, None)
    now[0] = 5.0
    assert cache.get("a") is None


async def test_single_flight_shares_and_propagates_errors() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        return 7

    assert await asyncio.gather(*(flight.do("k", work) for _ in range(5))) == [7] * 5
    assert runs == 1
    assert flight.in_flight == 0

    async def fail() -> int:
        raise ValueError("boom")

    results = await asyncio.gather(flight.do("e", fail), flight.do("e", fail), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


# -- platforms, times, Retry-After ---------------------------------------------------------------------------
def test_platform_normalization() -> None:
    assert normalize_platform("linux/amd64") == ("linux", "amd64", "")
    assert normalize_platform("linux/aarch64") == ("linux", "arm64", "v8")
    assert normalize_platform("linux/arm") == ("linux", "arm", "v7")
    with pytest.raises(ValueError, match="os/arch"):
        normalize_platform("amd64")


def test_choose_platform_variants() -> None:
    index = Manifest(
        "application/vnd.oci.image.index.v1+json",
        "sha256:x",
        manifests=(
            Descriptor("m", "sha256:a", 1, "linux/arm/v6"),
            Descriptor("m", "sha256:b", 1, "linux/arm/v7"),
            Descriptor("m", "sha256:c", 1, "linux/arm64"),
        ),
    )
    assert choose_platform(index, "linux/arm", "x").digest == "sha256:b"
    assert choose_platform(index, "linux/arm/v6", "x").digest == "sha256:a"
    assert choose_platform(index, "linux/arm64/v8", "x").digest == "sha256:c"


def test_created_times() -> None:
    assert parse_created("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_created("2024-05-01T12:00:00.5+02:00") is not None
    assert parse_created("0001-01-01T00:00:00Z") is None
    assert parse_created("yesterday") is None
    assert parse_created(None) is None


def test_retry_after() -> None:
    request = httpx.Request("GET", "https://x/")
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"}, request=request)) == 7
    now = datetime(2024, 1, 1, tzinfo=UTC)
    dated = httpx.Response(429, headers={"Retry-After": "Mon, 01 Jan 2024 00:00:30 GMT"}, request=request)
    assert retry_after_seconds(dated, now) == 30
    assert retry_after_seconds(httpx.Response(429, request=request)) is None


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("::1", "loopback"),
        ("::ffff:7f00:1", "loopback"),  # IPv4-mapped 127.0.0.1
        ("::ffff:a9fe:a9fe", "link-local"),  # IPv4-mapped 169.254.169.254
        ("fe80::1", "link-local"),
        ("169.254.169.254", "link-local"),
    ],
)
async def test_guard_checks_ip_literals_in_every_form_the_parser_lets_through(host: str, says: str) -> None:  # S3
    with pytest.raises(Blocked, match=says):
        await Guard(Settings()).check(host, 5000)
