"""Scale benchmark (not a test): N Apps through wharf against the same objects from a raw client, in one session.

    .venv/bin/python benchmarks/scale.py run --apps 1000 --label after [--waves 2] [--shards 2] [--nodes 2]
    .venv/bin/python benchmarks/scale.py table benchmarks/results/*.json     # rewrites the table in
                                                                            # docs/performance.md

`run` brings up the project's control plane, pull agent and a Registry V2 server (tests/harness, as the
integration tests do; Go binaries from tests/cluster/build-binaries.sh or $WHARF_BIN_DIR), pushes one image, then:

1. raw: creates, for N App names, exactly the Deployment + Service wharf renders for them (wharf.render, owner
   references dropped) and times "all created" and "all Deployments Available"; deletes them;
2. wharf: starts the operator (`wharf run`, its own client certificate so the apiserver's audit log tells its
   requests apart), creates N Apps and times "all child objects exist" and "all Apps Ready", with p50/p99 of
   create -> Deployment and create -> Ready per App; counts the operator's API requests by verb (audit log) to
   converge; stays idle `--idle` seconds (requests and CPU per minute); edits 100 Apps at once (p99 edit ->
   Deployment updated); deletes the Apps; with `--waves 2` does it all again (leak check: peak RSS of wave 2 vs
   wave 1); reads operator RSS/CPU from /proc, registry requests from the operator's metrics, and errors and
   tracebacks from its log.

Results: JSON (`--out`, default benchmarks/results/<label>-n<N>[-s<shards>].json) and the Markdown table on
stdout. Absolute times on a shared machine are noise: the ratios against the raw client of the same run are the
result. A convergence that does not finish within `--converge-timeout` is reported as what it reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "operator"), str(Path(__file__).resolve().parent)]

import httpx  # noqa: E402
import scale_report as report  # noqa: E402

from harness import images  # noqa: E402
from harness.certs import CA  # noqa: E402
from harness.controlplane import ControlPlane  # noqa: E402
from harness.fixtures_cluster import Cluster, locate_binaries  # noqa: E402
from harness.fixtures_operator import CRD, Operator, _stop, launch  # noqa: E402
from harness.polling import poll  # noqa: E402
from harness.pull_agent import PullAgent  # noqa: E402
from harness.registry import RegistryServer  # noqa: E402
from wharf.api.app import App  # noqa: E402
from wharf.config import SHARD_LABEL, Settings  # noqa: E402
from wharf.registry import RegistryClient  # noqa: E402
from wharf.render import render  # noqa: E402

OPERATOR_USER = "wharf-bench-operator"
RAW_USER = "wharf-bench-raw"

RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
IMAGE = images.ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server"])
APPS_PATH = "/apis/wharf.dev/v1alpha1/namespaces/{ns}/apps"
DEPLOYMENTS_PATH = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICES_PATH = "/api/v1/namespaces/{ns}/services"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# -- the operator process, from /proc ---------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


@dataclass
class Operators:
    """The operator processes of one run (one per shard), sampled for RSS in the background."""

    procs: list[Operator]
    peak_kib: int = 0

    @property
    def pids(self) -> list[int]:
        return [op.process.pid for op in self.procs]

    def rss(self) -> int:
        return sum(self.rss_each())

    def rss_each(self) -> list[int]:
        return [rss_kib(pid) for pid in self.pids]

    def cpu(self) -> float:
        return sum(self.cpu_each())

    def cpu_each(self) -> list[float]:
        return [cpu_seconds(pid) for pid in self.pids]

    def reset_peak(self) -> None:
        self.peak_kib = self.rss()

    async def sample(self) -> None:
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak_kib = max(self.peak_kib, self.rss())
            await asyncio.sleep(1.0)


# -- the apiserver ----------------------------------------------------------------------------------------------
def client_for(kubeconfig: Path, limit: int) -> httpx.AsyncClient:
    config = json.loads(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return httpx.AsyncClient(
        base_url=cluster["server"],
        verify=context,
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )


@dataclass
class Watch:
    """A watch of one collection kept in memory: the current objects, and callbacks per event."""

    http: httpx.AsyncClient
    path: str
    on_event: Callable[[str, dict[str, Any], float], None]
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def start(self) -> Watch:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        version = ""
        while True:
            try:
                if not version:
                    listing = (await self.http.get(self.path)).json()
                    now = time.monotonic()
                    self.objects.clear()
                    for item in listing.get("items", []):
                        self._see("ADDED", item, now)
                    version = listing["metadata"]["resourceVersion"]
                params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
                async with self.http.stream("GET", self.path, params=params, timeout=None) as response:
                    async for line in response.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            version = ""  # 410 Gone: list again
                            break
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._see(event["type"], obj, time.monotonic())
            except (httpx.HTTPError, json.JSONDecodeError, KeyError) as error:
                log(f"watch {self.path}: {error!r}; again")
                await asyncio.sleep(1)

    def _see(self, kind: str, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self.on_event(kind, obj, at)


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


def available(deployment: dict[str, Any]) -> bool:
    return _condition(deployment, "Available").get("status") == "True"


def app_ready(app: dict[str, Any]) -> bool:
    status = app.get("status") or {}
    return _condition(app, "Ready").get("status") == "True" and status.get("observedGeneration") == app["metadata"].get(
        "generation"
    )


@dataclass
class Tracker:
    """What the watches saw, by App name: first Deployment, first Service, Deployment Available, App Ready, and
    the first Deployment generation change after an edit."""

    deployment: report.Timeline = field(default_factory=report.Timeline)
    service: report.Timeline = field(default_factory=report.Timeline)
    available: report.Timeline = field(default_factory=report.Timeline)
    ready: report.Timeline = field(default_factory=report.Timeline)
    updated: report.Timeline = field(default_factory=report.Timeline)
    generation: dict[str, int] = field(default_factory=dict)
    editing: bool = False

    @staticmethod
    def owner(obj: dict[str, Any]) -> str:
        return str(obj["metadata"].get("labels", {}).get("wharf.dev/app", obj["metadata"]["name"]))

    def on_deployment(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind == "DELETED":
            return
        app = self.owner(obj)
        self.deployment.see(app, at)
        if available(obj):
            self.available.see(app, at)
        generation = obj["metadata"].get("generation", 0)
        if self.editing and generation > self.generation.get(app, generation):
            self.updated.see(app, at)
        self.generation[app] = generation

    def on_service(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind != "DELETED":
            self.service.see(self.owner(obj), at)

    def on_app(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind != "DELETED" and app_ready(obj):
            self.ready.see(obj["metadata"]["name"], at)


async def create_all(
    http: httpx.AsyncClient, items: list[tuple[str, str, dict[str, Any]]], concurrency: int
) -> dict[str, float]:
    """POST every (name, path, body) with `concurrency` in flight; returns name -> when its (last) create
    answered (monotonic)."""
    gate = asyncio.Semaphore(concurrency)
    done: dict[str, float] = {}

    async def one(name: str, path: str, body: dict[str, Any]) -> None:
        async with gate:
            for attempt in range(5):
                response = await http.post(path, json=body)
                if response.status_code in (200, 201):
                    break
                if response.status_code == 409:
                    break  # created by an earlier attempt whose answer was lost
                if attempt == 4:
                    raise RuntimeError(f"creating {path} {name}: {response.status_code} {response.text[:300]}")
                await asyncio.sleep(0.5 * (attempt + 1))
            done[name] = time.monotonic()

    await asyncio.gather(*(one(*item) for item in items))
    return done


async def wait_until(what: str, predicate: Callable[[], bool], limit: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + limit
    last_note = time.monotonic()
    while not predicate():
        if time.monotonic() > deadline:
            log(f"gave up waiting for {what} after {limit:.0f}s")
            return False
        if time.monotonic() - last_note > 30:
            log(f"still waiting for {what}")
            last_note = time.monotonic()
        await asyncio.sleep(every)
    return True


def app_body(name: str, namespace: str, image: str, shard: str | None) -> dict[str, Any]:
    labels = {SHARD_LABEL: shard} if shard is not None else {}
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        # 64M: N Apps must fit the kwok nodes' allocatable memory; one instance each.
        "spec": {"dockerImage": image, "manifest": {"instances": 1, "memory": "64M", "disk_quota": "64M"}},
    }


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": report.percentile(values, 50),
        "p99": report.percentile(values, 99),
        "max": max(values) if values else None,
    }


# -- the run ----------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.audit_seen: set[str] = set()
        self.audit_offset = 0
        self.audit: list[report.AuditRecord] = []

    def read_audit(self, control_plane: ControlPlane) -> None:
        with control_plane.audit_log.open() as f:
            f.seek(self.audit_offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self.audit_offset += len(complete.encode())
        self.audit.extend(report.parse_audit_lines(complete.splitlines(), self.audit_seen))

    async def requests(self, control_plane: ControlPlane, user: str, start: float, end: float) -> dict[str, Any]:
        await asyncio.sleep(2.5)  # the apiserver writes the audit log in batches (at most 1 s late)
        self.read_audit(control_plane)
        return report.count_requests(self.audit, [user], start, end)

    async def run(self) -> dict[str, Any]:
        args = self.args
        n = args.apps
        result: dict[str, Any] = {"label": args.label, "apps": n, "shards": args.shards, "waves": args.waves}
        control_plane = ControlPlane(
            self.workdir / "cluster", locate_binaries(), nodes=args.nodes, audit_users=(OPERATOR_USER, RAW_USER)
        )
        registry = RegistryServer("plain", ca=CA(self.workdir / "ca"), workdir=self.workdir / "registry")
        agent: PullAgent | None = None
        operators: Operators | None = None
        try:
            log(f"control plane ({args.nodes} kwok nodes), registry, pull agent; work dir {self.workdir}")
            control_plane.start()
            agent = PullAgent(control_plane.kubeconfig).start()
            cluster = Cluster(control_plane, agent)
            registry.start()
            images.push_image(registry, "bench/app", "1", IMAGE)
            cluster.trust_registry(registry)
            image = f"{registry.host}/bench/app:1"
            cluster.kubectl("apply", "-f", str(CRD))
            cluster.kubectl("wait", "--for=condition=Established", "crd/apps.wharf.dev", "--timeout=60s")
            assert poll(lambda: cluster.kubectl("get", "apps", "-A", check=False).returncode == 0, 60, 0.5)
            raw_http = client_for(control_plane.client_kubeconfig(RAW_USER, "system:masters"), args.concurrency)
            admin = client_for(control_plane.kubeconfig, max(args.concurrency, args.edits))
            async with raw_http, admin:
                result["raw"] = await self.raw(cluster, raw_http, admin, registry, image)
                operators = self.start_operators(
                    cluster, registry, control_plane.client_kubeconfig(OPERATOR_USER, "system:masters")
                )
                await self.wharf(cluster, operators, admin, image, result)
        except (Exception, asyncio.CancelledError) as error:  # what was measured so far is written, with why
            result["error"] = traceback.format_exc()
            log(f"the run failed or was stopped: {error!r}")
        finally:
            result["log"] = self.log_errors(operators)
            if operators is not None:
                for op in operators.procs:
                    _stop(op)
            if agent is not None:
                agent.stop()
            registry.close()
            control_plane.stop()
        return result

    async def raw(
        self,
        cluster: Cluster,
        http: httpx.AsyncClient,
        admin: httpx.AsyncClient,
        registry: RegistryServer,
        image: str,
    ) -> dict[str, Any]:
        args, n, namespace = self.args, self.args.apps, "bench-raw"
        settings = Settings(registry_insecure=(registry.host,), registry_allow=("127.0.0.0/8",))
        async with RegistryClient(settings) as client:
            facts = await client.resolve(image)
        items: list[tuple[str, str, dict[str, Any]]] = []
        for i in range(n):
            name = f"app-{i:05d}"
            body = app_body(name, namespace, image, None)
            body["metadata"]["uid"] = f"00000000-0000-0000-0000-{i:012d}"
            rendered = render(App.from_resource(body), facts, settings)
            for obj in rendered.objects:
                obj["metadata"].pop("ownerReferences", None)  # no App exists: the garbage collector would delete them
                prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
                plural = {"Deployment": "deployments", "Service": "services"}[obj["kind"]]
                items.append(
                    (f"{obj['kind']}/{obj['metadata']['name']}", f"{prefix}/namespaces/{namespace}/{plural}", obj)
                )
        cluster.create_namespace(namespace)
        tracker = Tracker()
        watch = Watch(admin, DEPLOYMENTS_PATH.format(ns=namespace), tracker.on_deployment).start()
        log(f"raw: creating {len(items)} objects for {n} Apps")
        started = time.monotonic()
        created = await create_all(http, items, args.concurrency)
        created_s = max(created.values()) - started
        log(f"raw: all created in {created_s:.1f}s")
        done = await wait_until(
            "raw: all Deployments Available", lambda: len(tracker.available.first) >= n, args.converge_timeout
        )
        available_s = (max(tracker.available.first.values()) - started) if done else None
        log(f"raw: all Available in {available_s}s")
        await watch.stop()
        cluster.delete_namespace(namespace)
        gone = poll(lambda: cluster.kubectl("get", "ns", namespace, check=False).returncode != 0, 900, 2)
        log(f"raw: namespace deleted ({'gone' if gone else 'still there after 900 s'})")
        return {"created_s": created_s, "available_s": available_s, "available_count": len(tracker.available.first)}

    def start_operators(self, cluster: Cluster, registry: RegistryServer, kubeconfig: Path) -> Operators:
        procs = []
        for shard in range(self.args.shards):
            env = {
                "WHARF_REGISTRY_INSECURE": registry.host,
                "WHARF_REGISTRY_ALLOW": "127.0.0.0/8",
                "WHARF_LOG_LEVEL": "INFO",
            }
            if self.args.shards > 1:
                env["WHARF_APP_SELECTOR"] = f"{SHARD_LABEL}=s{shard}"
            log_file = self.workdir / f"operator-{shard}.log"
            procs.append(launch(cluster, env, log_file, "--all-namespaces", kubeconfig=kubeconfig))
        return Operators(procs)

    async def wave(
        self, wave: int, cluster: Cluster, ops: Operators, admin: httpx.AsyncClient, image: str, out: dict[str, Any]
    ) -> None:
        """One wave of N Apps: create, converge, (wave 1: idle, edits), delete; figures go into `out` as they
        are measured (a failure later keeps them)."""
        args, n = self.args, self.args.apps
        namespace = f"bench-wharf-{wave}"
        cluster.create_namespace(namespace)
        tracker = Tracker()
        watches = [
            Watch(admin, DEPLOYMENTS_PATH.format(ns=namespace), tracker.on_deployment).start(),
            Watch(admin, SERVICES_PATH.format(ns=namespace), tracker.on_service).start(),
            Watch(admin, APPS_PATH.format(ns=namespace), tracker.on_app).start(),
        ]
        await asyncio.sleep(1)
        ops.reset_peak()
        items = []
        for i in range(n):
            shard = f"s{i % args.shards}" if args.shards > 1 else None
            body = app_body(f"app-{i:05d}", namespace, image, shard)
            items.append((body["metadata"]["name"], APPS_PATH.format(ns=namespace), body))
        log(f"wave {wave}: creating {n} Apps")
        cpu_each0, wall0, started = ops.cpu_each(), time.time(), time.monotonic()
        cpu0 = sum(cpu_each0)
        created = await create_all(admin, items, args.concurrency)
        out["created_s"] = max(created.values()) - started
        children = await wait_until(
            f"wave {wave}: every App's Deployment and Service",
            lambda: len(tracker.deployment.first) >= n and len(tracker.service.first) >= n,
            args.converge_timeout,
        )
        out["children_s"] = (
            max(max(tracker.deployment.first.values()), max(tracker.service.first.values())) - started
            if children
            else None
        )
        remaining = max(1.0, args.converge_timeout - (time.monotonic() - started))
        ready = await wait_until(f"wave {wave}: all Apps Ready", lambda: len(tracker.ready.first) >= n, remaining)
        out["ready_s"] = (max(tracker.ready.first.values()) - started) if ready else None
        out["timed_out"] = not ready
        out["ready_count"] = len(tracker.ready.first)
        out["deployment_count"] = len(tracker.deployment.first)
        wall1 = time.time()
        out["cpu_seconds_per_app"] = (ops.cpu() - cpu0) / n
        out["cpu_seconds_each"] = [after - before for after, before in zip(ops.cpu_each(), cpu_each0, strict=True)]
        out["converged_rss_mib_each"] = [kib / 1024 for kib in ops.rss_each()]
        out["create_to_deployment"] = summary(tracker.deployment.latencies(created))
        out["create_to_ready"] = summary(tracker.ready.latencies(created))
        out["converge_wall_s"] = wall1 - wall0
        out["peak_rss_mib"] = ops.peak_kib / 1024
        out["converged_rss_mib"] = ops.rss() / 1024
        counts = await self.requests(cluster.control_plane, OPERATOR_USER, wall0, wall1)
        out["requests"] = counts
        out["requests_per_app"] = {k: v / n for k, v in report.app_requests(counts).items()}
        log(f"wave {wave}: {out['ready_count']} of {n} Ready; requests {report.app_requests(counts)}")
        if wave == 1:
            out["idle"] = await self.idle(cluster, ops, n)
            try:
                out["edits"] = await self.edits(admin, namespace, tracker, n)
            except httpx.HTTPError as error:  # an overloaded apiserver: the run goes on, the table says so
                out["edits"] = {"error": repr(error)}
                log(f"edits failed: {error!r}")
        log(f"wave {wave}: deleting the Apps")
        for attempt in range(3):
            try:
                # One deletecollection; the apiserver deletes the Apps one by one, slowly when it is busy.
                await admin.delete(APPS_PATH.format(ns=namespace), timeout=args.converge_timeout)
                break
            except httpx.HTTPError as error:
                log(f"deleting the Apps: {error!r} (attempt {attempt + 1})")
        await wait_until(f"wave {wave}: Apps gone", lambda: not watches[2].objects, args.converge_timeout)
        await wait_until(f"wave {wave}: Deployments gone", lambda: not watches[0].objects, args.converge_timeout)
        await asyncio.sleep(args.settle)
        out["after_delete_rss_mib"] = ops.rss() / 1024
        out["peak_rss_mib"] = ops.peak_kib / 1024
        for watch in watches:
            await watch.stop()
        cluster.delete_namespace(namespace)

    async def idle(self, cluster: Cluster, ops: Operators, n: int) -> dict[str, Any]:
        seconds = self.args.idle
        log(f"idle for {seconds:.0f}s")
        await asyncio.sleep(5)  # the last status patches of the convergence settle
        cpu_each0, wall0 = ops.cpu_each(), time.time()
        await asyncio.sleep(seconds)
        cpu_each1, wall1 = ops.cpu_each(), time.time()
        cpu0, cpu1 = sum(cpu_each0), sum(cpu_each1)
        counts = await self.requests(cluster.control_plane, OPERATOR_USER, wall0, wall1)
        app = report.app_requests(counts)
        minutes = (wall1 - wall0) / 60
        return {
            "seconds": wall1 - wall0,
            "requests": counts,
            "cpu_cores": (cpu1 - cpu0) / (wall1 - wall0),
            "cpu_cores_each": [(b - a) / (wall1 - wall0) for a, b in zip(cpu_each0, cpu_each1, strict=True)],
            "writes_per_app_per_min": app["writes"] / n / minutes,
            "lists_per_app_per_min": app.get("list", 0) / n / minutes,
            "requests_per_app_per_min": (app["writes"] + app["reads"]) / n / minutes,
        }

    async def edits(self, admin: httpx.AsyncClient, namespace: str, tracker: Tracker, n: int) -> dict[str, Any]:
        count = min(self.args.edits, n)
        names = [f"app-{i:05d}" for i in range(0, n, max(1, n // count))][:count]
        log(f"{count} concurrent edits")
        tracker.updated = report.Timeline()
        tracker.editing = True
        edited: dict[str, float] = {}

        async def edit(name: str) -> None:
            patch = {"spec": {"manifest": {"env": {"BENCH_EDIT": "1"}}}}
            response = await admin.patch(
                f"{APPS_PATH.format(ns=namespace)}/{name}",
                json=patch,
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
            edited[name] = time.monotonic()

        await asyncio.gather(*(edit(name) for name in names))
        await wait_until(
            "edits reach the Deployments", lambda: len(tracker.updated.first) >= count, self.args.edit_timeout
        )
        tracker.editing = False
        latencies = tracker.updated.latencies(edited)
        return {**summary(latencies), "count": count, "updated": len(latencies)}

    async def wharf(
        self, cluster: Cluster, ops: Operators, admin: httpx.AsyncClient, image: str, result: dict[str, Any]
    ) -> None:
        sampler = asyncio.create_task(ops.sample())
        waves: list[dict[str, Any]] = []
        before = None
        try:
            await asyncio.sleep(10)  # the operator's start-up settles
            before = ops.rss() / 1024
            for wave in range(1, self.args.waves + 1):
                waves.append({})
                await self.wave(wave, cluster, ops, admin, image, waves[-1])
        finally:
            sampler.cancel()
            self.summarize(ops, result, waves, before)

    def summarize(
        self, ops: Operators, result: dict[str, Any], waves: list[dict[str, Any]], before: float | None
    ) -> None:
        n = self.args.apps
        first = waves[0] if waves else {}
        result["wharf"] = {k: v for k, v in first.items() if k not in ("idle", "edits")}
        result["idle"] = first.get("idle")
        result["edits"] = first.get("edits")
        with contextlib.suppress(OSError, httpx.HTTPError):
            result["wharf"]["registry_per_app"] = self.registry_requests(ops) / (n * max(1, len(waves)))
        result["waves_detail"] = waves[1:]
        raw = result["raw"]
        result["ratios"] = {
            "children": report.per(first.get("children_s"), raw["created_s"]),
            "ready": report.per(first.get("ready_s"), raw["available_s"]),
        }
        converged = first.get("converged_rss_mib")
        second_peak = waves[1].get("peak_rss_mib") if len(waves) > 1 else None
        result["rss"] = {
            "before_mib": before,
            "converged_mib": converged,
            "after_delete_mib": first.get("after_delete_rss_mib"),
            "kib_per_app": (converged - before) * 1024 / n if converged is not None and before is not None else None,
            "first_wave_peak_mib": first.get("peak_rss_mib"),
            "second_wave_growth": (second_peak / first["peak_rss_mib"] - 1) if second_peak else None,
            "per_shard_converged_mib": converged / self.args.shards if converged is not None else None,
        }

    @staticmethod
    def registry_requests(ops: Operators) -> float:
        total = 0.0
        for op in ops.procs:
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(op.metrics_url, timeout=5).text
                total += sum(
                    float(v) for v in re.findall(r"^wharf_registry_requests_total\{[^}]*\} (\S+)$", text, re.M)
                )
        return total

    @staticmethod
    def log_errors(ops: Operators | None) -> dict[str, Any]:
        errors, tracebacks, samples = 0, 0, list[str]()
        for op in ops.procs if ops else []:
            for line in op.log_file.read_text(errors="replace").splitlines():
                if "Traceback (most recent call last)" in line:
                    tracebacks += 1
                # kopf's plain format shows no level: its handler failures are known by their wording.
                if re.search(r"failed with an exception|Unhandled exception|\bERROR\b", line):
                    errors += 1
                    if len(samples) < 5:
                        samples.append(line[:300])
        return {"errors": errors, "tracebacks": tracebacks, "samples": samples}


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def commit() -> str:
    """The operator's commit: $WHARF_BENCH_COMMIT (a run from an exported tree says which), else git's."""
    if os.environ.get("WHARF_BENCH_COMMIT"):
        return os.environ["WHARF_BENCH_COMMIT"]
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


async def _interruptible(run: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """`run` as a task that SIGTERM or SIGINT cancels: the run stops its processes and its figures so far are
    written (a capped run stopped by hand still reports what it measured)."""
    task = asyncio.ensure_future(run)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await task


def run(args: argparse.Namespace) -> int:
    if args.nodes is None:
        args.nodes = max(1, -(-args.apps * 5 // 4000))  # ceil(1.25 N / 1,000): a kwok node takes 1,000 pods
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wharf-scale-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit(),
        "machine": machine(),
        "command": "python benchmarks/scale.py " + shlex.join(sys.argv[1:]),
    }
    result = {**meta, **asyncio.run(_interruptible(Bench(args, workdir).run())), "workdir": str(workdir)}
    suffix = f"-s{args.shards}" if args.shards > 1 else ""
    out = Path(args.out or RESULTS / f"{args.label}-n{args.apps}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    print(report.table([result]))
    return 0


def table(args: argparse.Namespace) -> int:
    runs = [json.loads(Path(path).read_text()) for path in args.results]
    generated = report.table(runs) + "\n\n" + report.provenance(runs)
    if args.print:
        print(generated)
        return 0
    document = DOC.read_text() if DOC.exists() else "# Performance\n"
    DOC.write_text(report.splice(document, generated))
    log(f"wrote the table of {len(runs)} runs into {DOC}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/scale.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_run = commands.add_parser("run", help="run the benchmark once")
    p_run.add_argument("--apps", type=int, default=1000, help="N, the number of Apps")
    p_run.add_argument("--label", default="run", help="the run's name in the table (before, after, ...)")
    p_run.add_argument("--shards", type=int, default=1, help="operator processes, each serving a disjoint slice")
    p_run.add_argument("--waves", type=int, default=1, choices=(1, 2), help="2: a second wave (memory leak check)")
    p_run.add_argument(
        "--nodes", type=int, help="kwok fake nodes (1,000 pods each; default: room for N Apps and their rollouts)"
    )
    p_run.add_argument("--concurrency", type=int, default=16, help="creates in flight (raw client and Apps)")
    p_run.add_argument("--converge-timeout", type=float, default=900, help="cap on each wait for convergence (s)")
    p_run.add_argument("--idle", type=float, default=120, help="idle window after convergence (s)")
    p_run.add_argument("--edits", type=int, default=100, help="concurrent edits")
    p_run.add_argument("--edit-timeout", type=float, default=300, help="cap on the wait for the edits (s)")
    p_run.add_argument("--settle", type=float, default=30, help="wait after the Apps are gone before RSS (s)")
    p_run.add_argument("--workdir", help="logs, certificates, etcd data (default: a new temporary directory)")
    p_run.add_argument("--out", help="JSON result file")
    p_run.set_defaults(func=run)
    p_table = commands.add_parser("table", help="write the table of result files into docs/performance.md")
    p_table.add_argument("results", nargs="+", help="JSON files from `run`, one column each, in this order")
    p_table.add_argument("--print", action="store_true", help="print instead of writing docs/performance.md")
    p_table.set_defaults(func=table)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
