"""wharf.registry against the REAL registry (Debian's docker-registry, distribution 2.8) from tests/harness.

Each mode the harness serves (plain HTTP, TLS with the test CA, htpasswd Basic, Bearer tokens) is exercised
with right and wrong credentials, and every failure asserts the error type and what its message tells the
user (S12, S13, S14). The registries listen on 127.0.0.1, which wharf's SSRF guard refuses by default, so the
settings here allow 127.0.0.0/8 exactly as a cluster admin would allow an in-cluster registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness import images
from harness.images import STANDARD_IMAGES, ImageSpec
from harness.registry import LIMITED_PASSWORD, LIMITED_USERNAME, RegistryServer
from wharf.api.image import ExposedPort
from wharf.config import Settings
from wharf.registry import (
    Blocked,
    Credentials,
    NotFound,
    RegistryClient,
    Unauthorized,
    Unavailable,
    Unsupported,
    credentials_from_dockerconfigjson,
)

pytestmark = pytest.mark.registry

ALLOW_LOOPBACK = ("127.0.0.0/8",)
Outcomes = list[tuple[str, str, float]]


def settings_for(registry: RegistryServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"registry_allow": ALLOW_LOOPBACK}
    if not registry.tls:
        values["registry_insecure"] = (registry.host,)
    if registry.ca_file is not None:
        values["registry_ca_bundle"] = str(registry.ca_file)
    values.update(overrides)
    return Settings(**values)


def client_for(registry: RegistryServer, outcomes: Outcomes | None = None, **settings: Any) -> RegistryClient:
    record = outcomes.append if outcomes is not None else None
    return RegistryClient(
        settings_for(registry, **settings),
        retries=2,
        backoff=0.01,
        max_backoff=0.05,
        on_request=(lambda host, outcome, seconds: record((host, outcome, seconds))) if record else None,
    )


def creds(registry: RegistryServer) -> Credentials:
    assert registry.username is not None
    assert registry.password is not None
    return Credentials(registry.username, registry.password)


@pytest.fixture(scope="module")
def plain_images(registry_plain: RegistryServer) -> dict[str, str]:
    return images.push_standard_images(registry_plain, prefix="std")


# -- plain HTTP, facts -------------------------------------------------------------------------------------
async def test_plain_http_facts_match_the_stored_config(
    registry_plain: RegistryServer, plain_images: dict[str, str]
) -> None:  # S13, S5, S6, S7, S9
    async with client_for(registry_plain) as client:
        for name in ("multi-port", "entrypoint-and-cmd", "env-port", "labels", "workdir", "user-unset", "udp-only"):
            facts = await client.resolve(f"{registry_plain.host}/std/{name}:latest")
            stored = images.inspect_config(registry_plain, f"std/{name}:latest")["config"]
            assert facts.digest == plain_images[name]
            assert facts.user == stored.get("User", "")
            assert facts.entrypoint == (tuple(stored["Entrypoint"]) if "Entrypoint" in stored else None)
            assert facts.cmd == (tuple(stored["Cmd"]) if "Cmd" in stored else None)
            assert facts.workdir == stored.get("WorkingDir", "")
            assert facts.env == tuple(stored.get("Env", ()))
            assert facts.labels == stored.get("Labels", {})
            assert {f"{p.port}/{p.protocol}" for p in facts.exposed_ports} == set(stored.get("ExposedPorts", {}))


async def test_ports_sorted_and_created_time(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    async with client_for(registry_plain) as client:
        multi = await client.resolve(f"{registry_plain.host}/std/multi-port")
        old = await client.resolve(f"{registry_plain.host}/std/old-image:latest")
    assert [p.port for p in multi.exposed_ports] == [8080, 8443, 9000]  # S6
    assert old.created is not None
    assert old.created.year == 2019  # S16


async def test_docker_schema2_format(registry_plain: RegistryServer) -> None:
    digest = images.push_image(
        registry_plain, "fmt/docker", "v1", ImageSpec(exposed_ports=["8080/tcp"], cmd=["/x"]), fmt="docker"
    )
    raw = json.loads(images.inspect_raw(registry_plain, "fmt/docker:v1"))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    async with client_for(registry_plain) as client:
        facts = await client.resolve(f"{registry_plain.host}/fmt/docker:v1")
    assert facts.digest == digest
    assert facts.cmd == ("/x",)


async def test_by_digest(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:  # S13
    digest = plain_images["single-port"]
    async with client_for(registry_plain) as client:
        facts = await client.resolve(f"{registry_plain.host}/std/single-port@{digest}")
    assert facts.digest == digest
    assert facts.pinned == f"{registry_plain.host}/std/single-port@{digest}"


# -- multi-platform index (S13) -------------------------------------------------------------------------------
async def test_multi_platform_index(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    ref = f"{registry_plain.host}/std/multi-platform:latest"
    async with client_for(registry_plain) as client:
        amd = await client.resolve(ref)
        arm = await client.resolve(ref, platform="linux/arm64")
    async with client_for(registry_plain, node_platform="linux/arm64/v8") as client:
        arm_default = await client.resolve(ref)
    assert amd.exposed_ports == (ExposedPort(port=8080),)
    assert amd.labels == {"platform": "linux/amd64"}
    assert arm.exposed_ports == (ExposedPort(port=9090),)
    assert arm.platform == "linux/arm64/v8"
    assert arm_default.exposed_ports == arm.exposed_ports
    # the index digest is pinned, whatever the platform: the kubelet picks each node's manifest
    assert amd.digest == arm.digest == plain_images["multi-platform"]
    index = json.loads(images.inspect_raw(registry_plain, "std/multi-platform:latest"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"


async def test_index_without_node_platform(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    async with client_for(registry_plain) as client:
        with pytest.raises(Unsupported) as caught:
            await client.resolve(f"{registry_plain.host}/std/arm-only:latest")
    assert "no image for the platform linux/amd64" in caught.value.message
    assert "linux/arm64/v8" in caught.value.message


# -- not found -----------------------------------------------------------------------------------------------
async def test_missing_tag(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    ref = f"{registry_plain.host}/std/single-port:no-such-tag"
    async with client_for(registry_plain) as client:
        with pytest.raises(NotFound) as caught:
            await client.resolve(ref)
    error = caught.value
    assert error.reference == ref
    assert "has no tag 'no-such-tag' in repository 'std/single-port'" in error.message
    assert error.registry_code == "MANIFEST_UNKNOWN"
    assert error.registry_message  # the registry's own words are kept
    assert error.status_code == 404


async def test_missing_repository(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    ref = f"{registry_plain.host}/nobody/here:1.0"
    async with client_for(registry_plain) as client:
        with pytest.raises(NotFound) as caught:
            await client.resolve(ref)
    assert "has no repository 'nobody/here'" in caught.value.message
    assert caught.value.registry_code == "NAME_UNKNOWN"


# -- insecure and the guard ----------------------------------------------------------------------------------
async def test_plain_http_only_when_listed(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    outcomes: Outcomes = []
    async with client_for(registry_plain, outcomes, registry_insecure=()) as client:
        with pytest.raises(Unavailable) as caught:
            await client.resolve(f"{registry_plain.host}/std/single-port")
    # wharf spoke TLS (never plain HTTP) and says how to fix it; a TLS failure is not retried
    assert "WHARF_REGISTRY_INSECURE" in caught.value.message
    assert not caught.value.temporary
    assert [o for _, o, _ in outcomes] == ["tls_error"]


async def test_loopback_refused_unless_allowed(registry_plain: RegistryServer, plain_images: dict[str, str]) -> None:
    outcomes: Outcomes = []
    async with client_for(registry_plain, outcomes, registry_allow=()) as client:
        with pytest.raises(Blocked) as caught:
            await client.resolve(f"{registry_plain.host}/std/single-port")
    assert "127.0.0.1 is a loopback address" in caught.value.message
    assert "WHARF_REGISTRY_ALLOW" in caught.value.message
    assert [o for _, o, _ in outcomes] == ["blocked"]  # nothing was sent


# -- TLS -------------------------------------------------------------------------------------------------------
async def test_tls_with_test_ca(registry_tls: RegistryServer) -> None:
    digest = images.push_image(registry_tls, "tls/app", "v1", STANDARD_IMAGES["single-port"])
    async with client_for(registry_tls) as client:
        facts = await client.resolve(f"{registry_tls.host}/tls/app:v1")
    assert facts.digest == digest


async def test_tls_fails_without_the_ca(registry_tls: RegistryServer) -> None:
    images.push_image(registry_tls, "tls/app", "v1", STANDARD_IMAGES["single-port"])
    outcomes: Outcomes = []
    async with client_for(registry_tls, outcomes, registry_ca_bundle="") as client:
        with pytest.raises(Unavailable) as caught:
            await client.resolve(f"{registry_tls.host}/tls/app:v1")
    assert "WHARF_REGISTRY_CA_BUNDLE" in caught.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert caught.value.__cause__ is not None
    assert [o for _, o, _ in outcomes] == ["tls_error"]


# -- DNS: connections go to the checked addresses --------------------------------------------------------------
def _answers(table: dict[str, list[str]]) -> Callable[[str, int], Any]:
    """A resolver for names the system cannot resolve: the only way to reach them is the guard's own answer."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"{host}: no such host")
        return table[host]

    return resolve


async def test_connections_go_to_the_addresses_the_guard_checked(registry_plain: RegistryServer) -> None:
    # The name exists only for the guard's resolver: the connection reaches the registry through the checked
    # address, with no second lookup a rebinding DNS server could answer differently.
    digest = images.push_image(registry_plain, "pin/app", "v1", STANDARD_IMAGES["single-port"])
    name = f"pinned.wharf.test:{registry_plain.port}"
    settings = settings_for(registry_plain, registry_insecure=(name,))
    resolver = _answers({"pinned.wharf.test": ["127.0.0.1"]})
    async with RegistryClient(settings, retries=0, resolver=resolver) as client:
        facts = await client.resolve(f"{name}/pin/app:v1")
    assert facts.digest == digest


async def test_tls_to_a_pinned_address_checks_the_certificate_against_the_name(registry_tls: RegistryServer) -> None:
    # The test certificate names 127.0.0.1 and localhost. Reached by the name `localhost` (pinned to 127.0.0.1),
    # TLS succeeds; reached by another name pinned to the same address, the certificate does not match that name,
    # although it matches the address: the check uses the name, as SNI does.
    digest = images.push_image(registry_tls, "pin/tls", "v1", STANDARD_IMAGES["single-port"])
    resolver = _answers({"localhost": ["127.0.0.1"], "other.wharf.test": ["127.0.0.1"]})
    async with RegistryClient(settings_for(registry_tls), retries=0, resolver=resolver) as client:
        facts = await client.resolve(f"localhost:{registry_tls.port}/pin/tls:v1")
        assert facts.digest == digest
        with pytest.raises(Unavailable) as caught:
            await client.resolve(f"other.wharf.test:{registry_tls.port}/pin/tls:v1")
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert "other.wharf.test" in caught.value.message


# -- Basic -------------------------------------------------------------------------------------------------------
async def test_basic_auth(registry_basic: RegistryServer) -> None:
    digest = images.push_image(registry_basic, "private/app", "v1", STANDARD_IMAGES["single-port"])
    ref = f"{registry_basic.host}/private/app:v1"
    async with client_for(registry_basic) as client:
        facts = await client.resolve(ref, creds(registry_basic))
        assert facts.digest == digest
        with pytest.raises(Unauthorized) as wrong:
            await client.resolve(ref, Credentials(creds(registry_basic).username, "wrong-password"))
        with pytest.raises(Unauthorized) as anonymous:
            await client.resolve(ref)
    assert f"rejected the credentials of user '{registry_basic.username}'" in wrong.value.message
    assert wrong.value.status_code == 401
    assert "requires authentication" in anonymous.value.message
    assert "spec.dockerUsername" in anonymous.value.message
    assert "wrong-password" not in str(wrong.value)


async def test_basic_auth_from_a_pull_secret(registry_basic: RegistryServer) -> None:
    images.push_image(registry_basic, "private/app", "v1", STANDARD_IMAGES["single-port"])
    secret = json.dumps(
        {
            "auths": {
                f"https://{registry_basic.host}": {
                    "username": registry_basic.username,
                    "password": registry_basic.password,
                }
            }
        }
    )
    found = credentials_from_dockerconfigjson(secret, registry_basic.host)
    assert found == creds(registry_basic)
    async with client_for(registry_basic) as client:
        await client.resolve(f"{registry_basic.host}/private/app:v1", found)


# -- Bearer tokens ---------------------------------------------------------------------------------------------
async def test_bearer_token_auth(registry_token: RegistryServer) -> None:
    digest = images.push_image(registry_token, "private/app", "v1", STANDARD_IMAGES["single-port"])
    ref = f"{registry_token.host}/private/app:v1"
    outcomes: Outcomes = []
    async with client_for(registry_token, outcomes) as client:
        facts = await client.resolve(ref, creds(registry_token))
        assert facts.digest == digest
        with pytest.raises(Unauthorized) as wrong:
            await client.resolve(ref, Credentials(creds(registry_token).username, "wrong-password"))
        with pytest.raises(Unauthorized) as anonymous:
            await client.resolve(ref)
    assert token_server_host(registry_token) in {h for h, _, _ in outcomes}
    assert "refused user" in wrong.value.message
    assert wrong.value.status_code == 401
    assert "requires authentication" in anonymous.value.message


def token_server_host(registry: RegistryServer) -> str:
    assert registry.token_server is not None
    return urlsplit(registry.token_server.realm).netloc


async def test_bearer_anonymous_public_repository(registry_token: RegistryServer) -> None:
    images.push_image(registry_token, "public/app", "v1", STANDARD_IMAGES["single-port"])
    async with client_for(registry_token) as client:
        facts = await client.resolve(f"{registry_token.host}/public/app:v1")
    assert facts.exposed_ports == (ExposedPort(port=8080),)


async def test_bearer_user_without_access(registry_token: RegistryServer) -> None:
    images.push_image(registry_token, "private/app", "v1", STANDARD_IMAGES["single-port"])
    async with client_for(registry_token) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.resolve(
                f"{registry_token.host}/private/app:v1", Credentials(LIMITED_USERNAME, LIMITED_PASSWORD)
            )
    assert f"user '{LIMITED_USERNAME}'" in caught.value.message
    assert "may pull the repository" in caught.value.message


async def test_bearer_tokens_are_reused(registry_token: RegistryServer) -> None:
    images.push_image(registry_token, "private/app", "v1", STANDARD_IMAGES["single-port"])
    images.push_image(registry_token, "private/app", "v2", STANDARD_IMAGES["multi-port"])
    outcomes: Outcomes = []
    realm = token_server_host(registry_token)
    async with client_for(registry_token, outcomes) as client:
        await client.resolve(f"{registry_token.host}/private/app:v1", creds(registry_token))
        await client.resolve(f"{registry_token.host}/private/app:v2", creds(registry_token))
    assert [h for h, _, _ in outcomes].count(realm) == 1  # one token for the repository's pull scope


# -- outages (S14) ---------------------------------------------------------------------------------------------
async def test_stopped_registry_is_unavailable_and_recovers(
    stoppable_registry: RegistryServer, push_image: Callable[..., str]
) -> None:
    push_image(stoppable_registry, "app", "v1", STANDARD_IMAGES["single-port"])
    push_image(stoppable_registry, "app", "v2", STANDARD_IMAGES["multi-port"])
    outcomes: Outcomes = []
    host = stoppable_registry.host
    async with client_for(stoppable_registry, outcomes) as client:
        await client.resolve(f"{host}/app:v1")
        stoppable_registry.stop()
        outcomes.clear()
        with pytest.raises(Unavailable) as caught:
            await client.resolve(f"{host}/app:v2")
        assert caught.value.temporary
        assert f"cannot reach the registry {host}" in caught.value.message
        assert "3 attempts" in caught.value.message
        assert caught.value.__cause__ is not None
        assert outcomes == [(host, "connect_error", outcomes[i][2]) for i in range(3)]  # 1 try + 2 retries
        stoppable_registry.start()
        facts = await client.resolve(f"{host}/app:v2")
    assert [p.port for p in facts.exposed_ports] == [8080, 8443, 9000]
