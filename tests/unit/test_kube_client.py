"""The apiserver client's own rules (wharf.kube.client): at most MAX_IN_FLIGHT requests in flight however many
callers wait (issue 14: no pool queue grows without limit), every request counted by verb and resource, and the
bearer token read at most once per TOKEN_REFRESH_SECONDS (in a thread, not per request)."""

from __future__ import annotations

import asyncio

import httpx
from kubernetes import client as k8s

from wharf.kube import Kube
from wharf.kube.client import MAX_IN_FLIGHT, _ConfigurationAuth


async def test_requests_in_flight_are_bounded_and_counted() -> None:
    in_flight = 0
    most = 0
    counted: list[tuple[str, str, int]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={"metadata": {"name": "x"}})

    http = httpx.AsyncClient(base_url="https://apiserver", transport=httpx.MockTransport(handler))
    kube = Kube(http, on_request=lambda verb, resource, code: counted.append((verb, resource, code)))
    await asyncio.gather(*(kube.get("apps/v1", "Deployment", "ns", f"d{i}") for i in range(10 * MAX_IN_FLIGHT)))
    await kube.aclose()
    assert most == MAX_IN_FLIGHT
    assert set(counted) == {("GET", "deployments", 200)}
    assert len(counted) == 10 * MAX_IN_FLIGHT


async def test_the_token_is_read_once_per_refresh_period() -> None:
    configuration = k8s.Configuration()
    reads = 0

    def refresh(config: k8s.Configuration) -> None:
        nonlocal reads
        reads += 1
        config.api_key = {"BearerToken": f"Bearer token-{reads}"}

    configuration.refresh_api_key_hook = refresh
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={})

    http = httpx.AsyncClient(
        base_url="https://apiserver", transport=httpx.MockTransport(handler), auth=_ConfigurationAuth(configuration)
    )
    for _ in range(5):
        await http.get("/api")
    await http.aclose()
    assert seen == ["Bearer token-1"] * 5
    assert reads == 1
