"""RegistryClient against an in-memory V2 registry (httpx.MockTransport; the client itself is never mocked).

These pin down wharf's own logic (S12, S13, S14). What real registries do is for tests/integration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from registry_fakes import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    HOST,
    FakeRegistry,
    dumps,
    image_config,
    public_resolver,
)

from wharf.api.image import ExposedPort
from wharf.config import Settings
from wharf.registry import (
    Blocked,
    Credentials,
    Denied,
    InvalidReference,
    NotFound,
    RateLimited,
    RegistryClient,
    RegistryError,
    Unauthorized,
    Unavailable,
    Unsupported,
)

Outcomes = list[tuple[str, str, float]]


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def outcomes() -> Outcomes:
    return []


@pytest.fixture
def make_client(fake: FakeRegistry, outcomes: Outcomes) -> Callable[..., RegistryClient]:
    """A client on the fake registry's transport, with fast retries and the request callback recorded."""

    def make(settings: Settings | None = None, **kwargs: Any) -> RegistryClient:
        options: dict[str, Any] = {
            "transport": fake.transport(),
            "resolver": public_resolver,
            "retries": 2,
            "backoff": 0.001,
            "max_backoff": 0.002,
            "on_request": lambda host, outcome, seconds: outcomes.append((host, outcome, seconds)),
        }
        options.update(kwargs)
        return RegistryClient(settings or Settings(), **options)

    return make


REF = f"{HOST}/team/app:1.0"


def full_config() -> dict[str, Any]:
    return image_config(
        ports=["9000/tcp", "8080/tcp", "53/udp", "8443", "bogus/tcp"],
        user="1001",
        entrypoint=["/entry.sh"],
        cmd=["serve", "--port", "8080"],
        workdir="/srv",
        env=["PATH=/bin", "PORT=1234"],
        labels={"maintainer": "wharf"},
        created="2024-05-01T12:34:56.123456789Z",
    )


# -- facts -------------------------------------------------------------------------------------------------
async def test_resolves_oci_image_to_facts(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    digest = fake.push("team/app", "1.0", full_config())
    async with make_client() as client:
        facts = await client.resolve(REF)
    assert facts.reference == REF
    assert facts.digest == digest  # S13: pinned to what the tag resolved to
    assert facts.pinned == f"{HOST}/team/app@{digest}"
    # S6: sorted, tcp and udp kept, a bare port is tcp, garbage dropped
    assert facts.exposed_ports == (
        ExposedPort(port=53, protocol="udp"),
        ExposedPort(port=8080, protocol="tcp"),
        ExposedPort(port=8443, protocol="tcp"),
        ExposedPort(port=9000, protocol="tcp"),
    )
    assert facts.user == "1001"  # S7
    assert facts.entrypoint == ("/entry.sh",)  # S5
    assert facts.cmd == ("serve", "--port", "8080")
    assert facts.workdir == "/srv"
    assert facts.env == ("PATH=/bin", "PORT=1234")  # S9: image order kept
    assert facts.labels == {"maintainer": "wharf"}
    assert facts.created is not None
    assert facts.created.isoformat() == "2024-05-01T12:34:56.123456+00:00"  # S16: nanoseconds truncated
    assert facts.platform == "linux/amd64"


async def test_docker_schema2_image(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", image_config(cmd=["x"]), manifest_type=DOCKER_MANIFEST, config_type=DOCKER_CONFIG)
    async with make_client() as client:
        facts = await client.resolve(REF)
    assert facts.cmd == ("x",)
    assert facts.entrypoint is None  # S5: absent stays absent
    assert facts.user == ""
    assert facts.exposed_ports == ()


async def test_by_digest(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    digest = fake.push("team/app", "1.0", image_config(cmd=["x"]))
    async with make_client() as client:
        facts = await client.resolve(f"{HOST}/team/app@{digest}")
    assert facts.digest == digest
    assert fake.paths()[-2] == f"/v2/team/app/manifests/{digest}"


# -- indexes (S13) --------------------------------------------------------------------------------------------
def _two_platforms(fake: FakeRegistry, *, index_type: str | None = None) -> str:
    configs = [
        image_config(ports=["8080/tcp"], os="linux", architecture="amd64"),
        image_config(ports=["9090/tcp"], os="linux", architecture="arm64", variant="v8"),
    ]
    if index_type:
        return fake.push_index("team/app", "1.0", configs, index_type=index_type)
    return fake.push_index("team/app", "1.0", configs)


async def test_index_picks_node_platform_and_pins_index_digest(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    index_digest = _two_platforms(fake)
    async with make_client(Settings(node_platform="linux/arm64")) as client:
        facts = await client.resolve(REF)
    assert facts.exposed_ports == (ExposedPort(port=9090),)
    assert facts.platform == "linux/arm64/v8"
    assert facts.digest == index_digest  # the kubelet picks each node's platform from the index


async def test_index_platform_override_per_call(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    _two_platforms(fake, index_type=DOCKER_LIST)
    async with make_client(Settings(node_platform="linux/arm64")) as client:
        facts = await client.resolve(REF, platform="linux/amd64")
        arm = await client.resolve(REF, platform="linux/aarch64")
    assert facts.exposed_ports == (ExposedPort(port=8080),)
    assert arm.exposed_ports == (ExposedPort(port=9090),)


async def test_index_without_node_platform_is_unsupported(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    _two_platforms(fake)
    async with make_client() as client:
        with pytest.raises(Unsupported) as caught:
            await client.resolve(REF, platform="linux/s390x")
    message = str(caught.value)
    assert "linux/s390x" in message
    assert "linux/amd64, linux/arm64/v8" in message
    assert "unknown" not in message
    assert caught.value.reference == REF


# -- unsupported (S12) -------------------------------------------------------------------------------------
async def test_schema1_is_refused(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    body = dumps({"schemaVersion": 1, "name": "team/app", "tag": "1.0", "fsLayers": [], "history": []})
    fake.add_manifest("team/app", "1.0", "application/vnd.docker.distribution.manifest.v1+prettyjws", body)
    async with make_client() as client:
        with pytest.raises(Unsupported, match="schema 1"):
            await client.resolve(REF)


async def test_non_v2_registry_is_unsupported(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.intercept = lambda r: httpx.Response(404, text="<html>nope</html>") if r.url.path == "/v2/" else None
    async with make_client() as client:
        with pytest.raises(Unsupported, match="does not speak the Docker Registry HTTP API V2"):
            await client.resolve(REF)
        with pytest.raises(Unsupported):
            await client.check_v2(HOST)


async def test_html_manifest_is_unsupported(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.intercept = lambda r: (
        httpx.Response(200, text="<html>", headers={"content-type": "text/html"}) if "manifests" in r.url.path else None
    )
    async with make_client() as client:
        with pytest.raises(Unsupported, match="not JSON"):
            await client.resolve(REF)


async def test_artifact_is_not_an_image(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", {"name": "chart"}, config_type="application/vnd.cncf.helm.config.v1+json")
    async with make_client() as client:
        with pytest.raises(Unsupported, match="not a container image"):
            await client.resolve(REF)


async def test_config_digest_is_verified(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    for digest in list(fake.blobs):
        fake.blobs[digest] = fake.blobs[digest].replace(b'"x"', b'"y"')
    async with make_client() as client:
        with pytest.raises(Unsupported, match="altered"):
            await client.resolve(REF)


async def test_manifest_digest_header_is_checked(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    original = fake.handler

    def lying(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if "manifests" in request.url.path:
            response.headers["Docker-Content-Digest"] = "sha256:" + "0" * 64
        return response

    async with make_client(transport=httpx.MockTransport(lying)) as client:
        with pytest.raises(Unsupported, match="altered"):
            await client.resolve(REF)


# -- not found -----------------------------------------------------------------------------------------------
async def test_missing_tag(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        with pytest.raises(NotFound) as caught:
            await client.resolve(f"{HOST}/team/app:2.0")
    error = caught.value
    assert "has no tag '2.0'" in error.message
    assert error.registry_code == "MANIFEST_UNKNOWN"
    assert error.registry_message == "manifest unknown"
    assert error.reference == f"{HOST}/team/app:2.0"
    assert not error.temporary


async def test_missing_repository(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    async with make_client() as client:
        with pytest.raises(NotFound, match="has no repository 'team/other'") as caught:
            await client.resolve(f"{HOST}/team/other:1")
    assert caught.value.registry_code == "NAME_UNKNOWN"
    assert "repository name not known to registry" in str(caught.value)


async def test_missing_repository_told_apart_from_missing_tag(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.name_unknown_on_manifests = False  # MANIFEST_UNKNOWN for both: the tag list tells them apart
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        with pytest.raises(NotFound, match="has no repository 'team/other'"):
            await client.resolve(f"{HOST}/team/other:1")
        with pytest.raises(NotFound, match="has no tag '2'"):
            await client.resolve(f"{HOST}/team/app:2")
    assert fake.paths()[-1] == "/v2/team/app/tags/list"


async def test_invalid_reference_contacts_nothing(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    async with make_client() as client:
        with pytest.raises(InvalidReference):
            await client.resolve("Team/App")
    assert fake.requests == []


# -- auth ----------------------------------------------------------------------------------------------------
async def test_basic_auth(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.auth = "basic"
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    async with make_client() as client:
        facts = await client.resolve(REF, Credentials("alice", "wonderland"))
        assert facts.cmd == ("x",)
        with pytest.raises(Unauthorized, match="rejected the credentials of user 'alice'"):
            await client.resolve(f"{HOST}/team/app@{facts.digest}", Credentials("alice", "wrong"))
        with pytest.raises(Unauthorized, match="requires authentication"):
            await client.resolve(f"{HOST}/team/app@{facts.digest}")


async def test_bearer_auth_fetches_and_caches_tokens_per_scope(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], outcomes: Outcomes
) -> None:
    fake.auth = "bearer"
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    fake.push("team/other", "1.0", image_config(cmd=["y"]))
    creds = Credentials("alice", "wonderland")
    async with make_client(tag_ttl=0) as client:
        await client.resolve(REF, creds)
        assert len(fake.token_requests) == 1
        token_request = fake.token_requests[0]
        assert token_request.url.params.get_list("scope") == ["repository:team/app:pull"]
        assert token_request.url.params["service"] == "fake-registry"
        assert token_request.headers["authorization"].startswith("Basic ")
        await client.resolve(REF, creds)  # tag TTL 0: manifest again, same cached token
        assert len(fake.token_requests) == 1
        await client.resolve(f"{HOST}/team/other:1.0", creds)  # another repository: another scope
        assert len(fake.token_requests) == 2
    # the /v2/ probe's challenge is remembered, so tokens are fetched up front: its 401 is the only one
    assert [o for _, o, _ in outcomes].count("401") == 1


async def test_bearer_token_expiry_refetches(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.auth = "bearer"
    fake.token_lifetime = 1  # shorter than the safety margin: the token is kept only briefly
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    async with make_client(tag_ttl=0) as client:
        await client.resolve(REF)
        await asyncio.sleep(0.6)
        await client.resolve(REF)
    assert len(fake.token_requests) == 2
    assert "authorization" not in fake.token_requests[0].headers  # anonymous token


async def test_bearer_wrong_password(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.auth = "bearer"
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        with pytest.raises(Unauthorized) as caught:
            await client.resolve(REF, Credentials("alice", "nope"))
    assert "token service at auth.example.com refused user 'alice'" in caught.value.message
    assert caught.value.registry_message == "incorrect username or password"


async def test_denied_403(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.intercept = lambda r: (
        httpx.Response(
            403, json={"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
        )
        if "manifests" in r.url.path
        else None
    )
    async with make_client() as client:
        with pytest.raises(Denied) as caught:
            await client.resolve(REF, Credentials("bob", "pw"))
    assert "user 'bob'" in caught.value.message
    assert caught.value.registry_code == "DENIED"
    assert not isinstance(caught.value, Blocked)


async def test_credentials_never_logged(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake.auth = "bearer"
    fake.push("team/app", "1.0", image_config())
    caplog.set_level(logging.DEBUG)
    creds = Credentials("alice", "wonderland")
    async with make_client() as client:
        await client.resolve(REF, creds)
        with pytest.raises(Unauthorized) as caught:
            await client.resolve(f"{HOST}/team/app:other", Credentials("alice", "hunter2-secret"))
    text = caplog.text + repr(creds) + str(caught.value) + repr(caught.value)
    for secret in ("wonderland", "hunter2-secret", "token-alice", "d29uZGVybGFuZ"):
        assert secret not in text


# -- retries and availability (S14) ---------------------------------------------------------------------------
async def test_retries_5xx_then_succeeds(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], outcomes: Outcomes
) -> None:
    fake.push("team/app", "1.0", image_config())
    failures = iter([503, 502])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if "manifests" in request.url.path:
            status = next(failures, None)
            return httpx.Response(status) if status else None
        return None

    fake.intercept = flaky
    async with make_client() as client:
        await client.resolve(REF)
        assert client.stats.by_outcome()["503"] == 1
    assert [o for _, o, _ in outcomes] == ["200", "503", "502", "200", "200"]
    assert all(host == HOST for host, _, _ in outcomes)


async def test_5xx_exhausts_retries(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], outcomes: Outcomes
) -> None:
    fake.intercept = lambda r: (
        httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "try later"}]})
        if "manifests" in r.url.path
        else None
    )
    async with make_client() as client:
        with pytest.raises(Unavailable) as caught:
            await client.resolve(REF)
    assert caught.value.temporary
    assert "HTTP 503" in caught.value.message
    assert "3 attempts" in caught.value.message
    assert caught.value.registry_message == "try later"
    assert [o for _, o, _ in outcomes].count("503") == 3


async def test_connection_error_is_unavailable_with_cause(
    make_client: Callable[..., RegistryClient], outcomes: Outcomes
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with make_client(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(Unavailable) as caught:
            await client.resolve(REF)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert f"cannot reach the registry {HOST}" in caught.value.message
    assert [o for _, o, _ in outcomes] == ["connect_error"] * 3


async def test_timeout_is_unavailable(make_client: Callable[..., RegistryClient]) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with make_client(transport=httpx.MockTransport(slow), retries=0) as client:
        with pytest.raises(Unavailable, match="did not answer in time") as caught:
            await client.resolve(REF)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_429_honours_retry_after(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", image_config())
    sleeps: list[float] = []
    limited = iter([True])

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    fake.intercept = lambda r: (
        httpx.Response(429, headers={"Retry-After": "2"})
        if "manifests" in r.url.path and next(limited, False)
        else None
    )
    async with make_client(sleep=record_sleep) as client:
        await client.resolve(REF)
    assert sleeps == [2.0]


async def test_429_with_long_retry_after_is_rate_limited(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.intercept = lambda r: (
        httpx.Response(
            429,
            headers={"Retry-After": "3600"},
            json={"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit."}]},
        )
        if "manifests" in r.url.path
        else None
    )
    async with make_client(sleep=_no_sleep) as client:
        with pytest.raises(RateLimited) as caught:
            await client.resolve(REF)
    assert caught.value.retry_after == 3600
    assert caught.value.temporary
    assert "pull rate limit" in str(caught.value)


async def test_resolve_timeout(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async with make_client(transport=httpx.MockTransport(hang), resolve_timeout=0.05) as client:
        with pytest.raises(Unavailable, match="took longer than"):
            await client.resolve(REF)


# -- TLS / insecure / guard -----------------------------------------------------------------------------------
async def test_https_by_default_and_http_only_when_listed(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        await client.resolve(REF)
    assert {r.url.scheme for r in fake.requests} == {"https"}
    fake.requests.clear()
    async with make_client(Settings(registry_insecure=(HOST,))) as client:
        await client.resolve(REF)
    assert {r.url.scheme for r in fake.requests} == {"http"}


async def test_plain_http_redirect_refused_unless_listed(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    fake.intercept = lambda r: (
        httpx.Response(307, headers={"Location": "http://cdn.example.net/blob"}) if "blobs" in r.url.path else None
    )
    async with make_client() as client:
        with pytest.raises(Blocked, match=r"refusing plain HTTP to cdn\.example\.net: only registries") as caught:
            await client.resolve(REF)
    assert caught.value.reference == REF


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "private or non-routable"),
    ],
)
async def test_ssrf_guard_refuses_internal_addresses(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], address: str, why: str
) -> None:  # S12
    async def internal(host: str, port: int) -> list[str]:
        return [address]

    async with make_client(resolver=internal) as client:
        with pytest.raises(Blocked) as caught:
            await client.resolve(REF)
    assert why in caught.value.message
    assert "WHARF_REGISTRY_ALLOW" in caught.value.message
    assert isinstance(caught.value, Denied)
    assert fake.requests == []


async def test_ssrf_guard_checks_literal_ips_and_deny_list(
    make_client: Callable[..., RegistryClient], fake: FakeRegistry
) -> None:
    async with make_client() as client:
        with pytest.raises(Blocked, match=r"127\.0\.0\.1 is a loopback address"):
            await client.resolve("127.0.0.1:5000/team/app:1")
    async with make_client(Settings(registry_deny=("93.184.0.0/16",))) as client:
        with pytest.raises(Blocked, match="WHARF_REGISTRY_DENY"):
            await client.resolve(REF)
    assert fake.requests == []


@pytest.mark.parametrize("allow", [HOST, "10.0.0.0/8", "10.1.2.3"])
async def test_allow_list_lets_internal_registries_through(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient], allow: str
) -> None:
    fake.push("team/app", "1.0", image_config())

    async def internal(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    async with make_client(Settings(registry_allow=(allow,)), resolver=internal) as client:
        await client.resolve(REF)


async def test_token_realm_is_guarded(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.auth = "bearer"
    fake.realm = "https://metadata.internal/token"
    fake.push("team/app", "1.0", image_config())

    async def resolver(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "metadata.internal" else ["93.184.216.34"]

    async with make_client(resolver=resolver) as client:
        with pytest.raises(Blocked, match=r"metadata\.internal resolves to 169\.254\.169\.254"):
            await client.resolve(REF)
    assert fake.token_requests == []


# -- caching and concurrency ---------------------------------------------------------------------------------
async def test_warm_resolution_makes_no_requests(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        await client.resolve(REF)
        cold = client.requests_made
        await client.resolve(REF)
        assert client.requests_made == cold
    assert cold == 3  # /v2/, manifest, config


async def test_tag_cache_expires_but_config_cache_does_not(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    async with make_client(tag_ttl=0) as client:
        await client.resolve(REF)
        before = client.requests_made
        await client.resolve(REF)
        assert client.requests_made == before + 1  # the manifest again (tags move), not the config
    assert fake.paths()[-1] == "/v2/team/app/manifests/1.0"


async def test_moved_tag_is_seen_after_ttl(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    first = fake.push("team/app", "1.0", image_config(cmd=["v1"]))
    async with make_client(tag_ttl=0) as client:
        assert (await client.resolve(REF)).digest == first
        second = fake.push("team/app", "1.0", image_config(cmd=["v2"]))
        facts = await client.resolve(REF)
    assert facts.digest == second
    assert facts.cmd == ("v2",)


async def test_fresh_bypasses_the_tag_cache(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.push("team/app", "1.0", image_config(cmd=["v1"]))
    async with make_client() as client:  # default tag TTL: a plain resolve would still see v1
        await client.resolve(REF)
        second = fake.push("team/app", "1.0", image_config(cmd=["v2"]))
        assert (await client.resolve(REF)).cmd == ("v1",)
        facts = await client.resolve(REF, fresh=True)  # S15: restage re-reads the registry
        assert (facts.digest, facts.cmd) == (second, ("v2",))
        assert (await client.resolve(REF)).digest == second  # and the fresh answer refreshes the cache


async def test_caches_are_per_credentials(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    fake.auth = "basic"
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        await client.resolve(REF, Credentials("alice", "wonderland"))
        with pytest.raises(Unauthorized):
            await client.resolve(REF)  # a cached answer for alice must not serve anonymous callers


async def test_concurrent_lookups_share_one_request(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    async with make_client() as client:
        results = await asyncio.gather(*(client.resolve(REF) for _ in range(20)))
        assert len({r.digest for r in results}) == 1
        assert client.requests_made == 3


async def test_per_registry_concurrency_limit(fake: FakeRegistry, make_client: Callable[..., RegistryClient]) -> None:
    for i in range(12):
        fake.push("team/app", f"t{i}", image_config(cmd=[str(i)]))
    active = 0
    peak = 0

    async def counting(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return fake.handler(request)

    async with make_client(transport=httpx.MockTransport(counting), concurrency_per_registry=3) as client:
        await asyncio.gather(*(client.resolve(f"{HOST}/team/app:t{i}") for i in range(12)))
    assert peak == 3


async def test_cancelled_caller_does_not_cancel_shared_work(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())
    gate = asyncio.Event()

    async def gated(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return fake.handler(request)

    async with make_client(transport=httpx.MockTransport(gated)) as client:
        first = asyncio.ensure_future(client.resolve(REF))
        second = asyncio.ensure_future(client.resolve(REF))
        await asyncio.sleep(0.01)
        first.cancel()
        gate.set()
        facts = await second
        assert facts.reference == REF


async def test_callback_failure_does_not_break_resolution(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.push("team/app", "1.0", image_config())

    def broken(host: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    async with make_client(on_request=broken) as client:
        await client.resolve(REF)


async def test_docker_hub_goes_to_registry_1(make_client: Callable[..., RegistryClient]) -> None:
    hub = FakeRegistry(host="registry-1.docker.io")
    hub.push("library/nginx", "latest", image_config(cmd=["nginx"]))
    async with make_client(transport=hub.transport()) as client:
        facts = await client.resolve("nginx")
    assert facts.reference == "docker.io/library/nginx:latest"
    assert facts.pinned.startswith("docker.io/library/nginx@sha256:")
    assert {r.url.host for r in hub.requests} == {"registry-1.docker.io"}


def test_error_tree() -> None:
    for kind in (InvalidReference, NotFound, Unauthorized, Denied, RateLimited, Unavailable, Unsupported):
        assert kind.__bases__ == (RegistryError,)
    assert Blocked.__bases__ == (Denied,)
    assert Unavailable.temporary
    assert RateLimited.temporary
    assert not NotFound.temporary


# -- S18: credentials go only to the registry of the App's own image ------------------------------------------------
async def test_credentials_are_not_sent_to_the_host_a_blob_read_is_redirected_to(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:
    fake.auth = "basic"
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    blobs = dict(fake.blobs)

    def to_storage(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "storage.example.net":
            digest = request.url.path.rsplit("/", 1)[-1]
            return httpx.Response(200, content=blobs[digest])
        if "/blobs/" in request.url.path and request.headers.get("Authorization"):
            digest = request.url.path.rsplit("/", 1)[-1]
            return httpx.Response(307, headers={"Location": f"https://storage.example.net/b/{digest}"})
        return None

    fake.intercept = to_storage
    async with make_client() as client:
        facts = await client.resolve(REF, Credentials("alice", "wonderland"))
    assert facts.cmd == ("x",)
    storage = [r for r in fake.requests if r.url.host == "storage.example.net"]
    assert storage  # the config blob was read from the redirect target...
    assert all("Authorization" not in r.headers for r in storage)  # ...without the registry's credentials
    assert {r.url.host for r in fake.requests if "Authorization" in r.headers} == {HOST.split(":")[0]}


async def test_a_token_realm_that_is_not_a_valid_url_is_refused_not_crashed_on(
    fake: FakeRegistry, make_client: Callable[..., RegistryClient]
) -> None:  # S3
    fake.auth = "bearer"
    fake.realm = "https://0177.0.0.1/token"  # octal: httpx refuses to parse it
    fake.push("team/app", "1.0", image_config(cmd=["x"]))
    async with make_client() as client:
        with pytest.raises(Unsupported, match="not a valid URL"):
            await client.resolve(REF, Credentials("alice", "wonderland"))
