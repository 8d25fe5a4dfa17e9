"""Benchmark (not a test): wharf.registry resolving 1,000 distinct tags cold, then the same 1,000 warm.

Runs the real `docker-registry` from tests/harness in plain-HTTP mode on loopback. Two scenarios:
- `distinct`: 1,000 tags, each its own image (own config blob, shared layer) - the realistic cold case;
- `same`: 1,000 tags of one image - shows the config cache (content addressed) and single-flight.
For each: requests per resolution and resolutions per second, cold (new client) and warm (same client again,
inside the tag TTL). Usage: `.venv/bin/python benchmarks/registry_bench.py [--tags 1000] [--concurrency 64]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "operator")]

import httpx  # noqa: E402

from harness import images  # noqa: E402
from harness.registry import RegistryServer  # noqa: E402
from wharf.config import Settings  # noqa: E402
from wharf.registry import RegistryClient  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _upload_blob(http: httpx.Client, base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = http.post(f"{base}/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    location = httpx.URL(base).join(started.headers["Location"])
    http.put(location.copy_merge_params({"digest": digest}), content=data).raise_for_status()
    return digest


def populate(registry: RegistryServer, repo: str, count: int, *, distinct: bool) -> list[str]:
    """Push one image with skopeo, then tag `count` manifests through the registry API (fast)."""
    images.push_image(registry, repo, "base", images.STANDARD_IMAGES["multi-port"])
    base = registry.url
    with httpx.Client(timeout=30) as http:
        manifest = http.get(f"{base}/v2/{repo}/manifests/base", headers={"Accept": OCI_MANIFEST}).json()
        config = http.get(f"{base}/v2/{repo}/blobs/{manifest['config']['digest']}").json()
        tags = []
        for i in range(count):
            tag = f"t{i:04d}"
            if distinct:
                config.setdefault("config", {}).setdefault("Labels", {})["bench.index"] = str(i)
                data = json.dumps(config, separators=(",", ":")).encode()
                manifest["config"] = {"mediaType": manifest["config"]["mediaType"], "digest": "", "size": len(data)}
                manifest["config"]["digest"] = _upload_blob(http, base, repo, data)
            body = json.dumps(manifest, separators=(",", ":")).encode()
            http.put(
                f"{base}/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
            ).raise_for_status()
            tags.append(tag)
    return tags


async def run_pass(client: RegistryClient, refs: list[str], concurrency: int) -> tuple[int, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(ref: str) -> None:
        async with gate:
            await client.resolve(ref)

    before = client.requests_made
    started = time.perf_counter()
    await asyncio.gather(*(one(ref) for ref in refs))
    return client.requests_made - before, time.perf_counter() - started


async def scenario(registry: RegistryServer, name: str, refs: list[str], concurrency: int) -> list[str]:
    settings = Settings(registry_insecure=(registry.host,), registry_allow=("127.0.0.0/8",))
    rows = []
    # The tag TTL is raised so the warm pass is warm however slow the cold pass is on this machine.
    async with RegistryClient(settings, tag_ttl=600) as client:
        for label in ("cold", "warm", "tags expired"):
            if label == "tags expired":
                client._tags.clear()  # what the tag TTL does: manifests re-read, configs still cached
            requests, seconds = await run_pass(client, refs, concurrency)
            rows.append(
                f"| {name} | {label} | {len(refs)} | {requests} | {requests / len(refs):.3f} | "
                f"{seconds:.2f} | {len(refs) / seconds:,.0f} |"
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp, RegistryServer("plain", workdir=Path(tmp)) as reg:
        t0 = time.perf_counter()
        distinct = populate(reg, "bench/distinct", args.tags, distinct=True)
        same = populate(reg, "bench/same", args.tags, distinct=False)
        print(f"populated {2 * args.tags} tags in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        print(f"concurrency {args.concurrency} resolutions in flight; client limit 16 requests per registry\n")
        print("| scenario | pass | resolutions | HTTP requests | requests/resolution | seconds | resolutions/s |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, tags in (("distinct images", distinct), ("one image", same)):
            repo = "bench/distinct" if tags is distinct else "bench/same"
            for row in await scenario(reg, name, [f"{reg.host}/{repo}:{t}" for t in tags], args.concurrency):
                print(row)


if __name__ == "__main__":
    asyncio.run(main())
