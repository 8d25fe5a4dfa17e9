"""Benchmark (not a test): the operator's apiserver client against the alternatives, under the load that made
wharf collapse (issue 14): many concurrent callers, each a GET then a no-op server-side apply of one Service.

Clients, each in this one process against the project's own control plane (tests/harness):
- `httpx-unbounded`: wharf's httpx client as it was (httpx's default pool, every caller straight into it);
- `httpx-bounded`: wharf.kube.Kube over httpx (at most MAX_IN_FLIGHT requests in flight, the rest on a semaphore);
- `wharf`: wharf.kube.Kube as the operator runs it (aiohttp transport, the same bound);
- `httpx-http2`: the same client over HTTP/2 (one connection, multiplexed), no bound;
- `aiohttp`: kopf's own client library, connector limited to MAX_IN_FLIGHT;
- `lightkube`: lightkube's AsyncClient (its own httpx fork), no bound.
Reports per client: wall time, this process's CPU time per 1,000 requests (what the operator pays), errors.
Usage: `.venv/bin/python benchmarks/kube_client.py [--callers 400] [--rounds 5]` (needs `pip install .[bench]`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "operator")]

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from harness.controlplane import ControlPlane  # noqa: E402
from harness.fixtures_cluster import locate_binaries  # noqa: E402
from wharf.kube import Kube  # noqa: E402
from wharf.kube.client import MAX_IN_FLIGHT, AiohttpTransport, http_client, load_configuration  # noqa: E402

NS = "default"
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "bench", "namespace": NS, "labels": {"wharf.dev/app": "bench"}},
    "spec": {"selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
PATH = f"/api/v1/namespaces/{NS}/services/bench"
APPLY = {"fieldManager": "wharf", "force": "true"}

Call = Callable[[], Awaitable[None]]
Closer = Callable[[], Awaitable[None]]


async def _run(calls: Call, callers: int, rounds: int) -> dict[str, Any]:
    errors = 0

    async def caller() -> None:
        nonlocal errors
        for _ in range(rounds):
            try:
                await calls()
            except Exception:  # counted: the figure is how many fail under load
                errors += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    requests = callers * rounds * 2
    return {
        "requests": requests,
        "wall_s": round(wall, 2),
        "requests_per_s": round(requests / wall),
        "cpu_ms_per_1000": round(cpu / requests * 1e6),
        "errors": errors,
    }


def _httpx(
    kubeconfig: Path, *, http2: bool = False, bounded: bool = True
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    configuration = load_configuration(str(kubeconfig))
    if bounded:
        kube = Kube(http_client(configuration))
    else:
        client = httpx.AsyncClient(
            base_url=configuration.host,
            verify=_tls(configuration),
            timeout=httpx.Timeout(30.0, connect=5.0, pool=None),
            http2=http2,
            headers={"Accept": "application/json"},
        )
        kube = Kube(client)
        kube._room = asyncio.Semaphore(1_000_000)  # no bound: as wharf was (and as HTTP/2 is meant to be used)

    async def call() -> None:
        await kube.get("v1", "Service", NS, "bench")
        await kube.apply(SERVICE)

    return call, kube.aclose


def _tls(configuration: Any) -> ssl.SSLContext:
    """The harness's admin kubeconfig: its CA and a client certificate."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _aiohttp(kubeconfig: Path) -> tuple[Call, Callable[[], Awaitable[None]]]:
    configuration = load_configuration(str(kubeconfig))
    context = _tls(configuration)
    session = aiohttp.ClientSession(
        base_url=configuration.host, connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, ssl=context)
    )
    body = json.dumps(SERVICE)

    async def call() -> None:
        async with session.get(PATH) as response:
            response.raise_for_status()
            await response.json()
        headers = {"Content-Type": "application/apply-patch+yaml"}
        async with session.patch(PATH, params=APPLY, data=body, headers=headers) as response:
            response.raise_for_status()
            await response.json()

    return call, session.close


def _lightkube(kubeconfig: Path) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from lightkube import AsyncClient, KubeConfig
    from lightkube.resources.core_v1 import Service

    client = AsyncClient(KubeConfig.from_file(kubeconfig), field_manager="wharf")

    async def call() -> None:
        await client.get(Service, "bench", namespace=NS)
        await client.apply(Service.from_dict(SERVICE), force=True)  # type: ignore[attr-defined]

    return call, client.close


def _wharf(kubeconfig: Path) -> tuple[Call, Closer]:
    kube = Kube(AiohttpTransport(load_configuration(str(kubeconfig))))

    async def call() -> None:
        await kube.get("v1", "Service", NS, "bench")
        await kube.apply(SERVICE)

    return call, kube.aclose


CLIENTS = {
    "wharf": _wharf,
    "httpx-unbounded": lambda k: _httpx(k, bounded=False),
    "httpx-bounded": lambda k: _httpx(k),
    "httpx-http2": lambda k: _httpx(k, http2=True, bounded=False),
    "aiohttp": _aiohttp,
    "lightkube": _lightkube,
}


async def _measure(kubeconfig: Path, callers: int, rounds: int, clients: list[str]) -> dict[str, dict[str, Any]]:
    results = {}
    for name in clients:
        make = CLIENTS[name]
        call, close = make(kubeconfig)
        await call()  # connect and warm up
        results[name] = await _run(call, callers, rounds)
        await close()
        print(name, results[name], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=400, help="concurrent callers (kopf's unbounded workers)")
    parser.add_argument("--rounds", type=int, default=5, help="GET + apply pairs per caller")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument("--clients", nargs="*", default=list(CLIENTS), choices=list(CLIENTS), help="which to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, ControlPlane(Path(workdir), locate_binaries()) as cp:
        cp.kubectl("apply", "-f", "-", input=json.dumps(SERVICE))
        results = asyncio.run(_measure(cp.kubeconfig, args.callers, args.rounds, args.clients))
    print("| client | requests | wall s | requests/s | client CPU ms per 1,000 requests | errors |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        row = (name, r["requests"], r["wall_s"], r["requests_per_s"], r["cpu_ms_per_1000"], r["errors"])
        print("| " + " | ".join(map(str, row)) + " |")
    if args.json:
        args.json.write_text(json.dumps({"callers": args.callers, "rounds": args.rounds, "results": results}))


if __name__ == "__main__":
    main()
