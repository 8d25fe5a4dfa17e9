"""pytest plugin: the wharf operator itself, as a separate process (`wharf run`) against the real control plane.

Fixtures:
- `wharf_operator` (session): the CRD installed, the operator running with every test registry trusted (plain
  HTTP ones listed as insecure, the test CA as the registry CA bundle, loopback allowed past the SSRF guard).
- `app_ns` (function): a fresh PodSecurity-`restricted` namespace.
- `outage_registry` (function): a plain-HTTP registry of the test's own, to stop()/start() for outages (S14). The
  operator's insecure list is fixed when it starts, so the session reserves one loopback port for it up front
  (held by a bound, non-listening socket, harness.ports.reserved_port()), lists it as
  insecure, and each test's outage registry serves on that port with fresh storage.

The session operator watches every namespace except `wharf-solo-*` (SOLO_NAMESPACES), which are for tests that
start an operator of their own with other settings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from harness.fixtures_cluster import Cluster
from harness.polling import poll
from harness.ports import free_port, reserved_port
from harness.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "app.yaml"
BUILD_IMAGE = ROOT / "scripts" / "build-image.sh"  # the operator image, built without a Docker engine
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]  # the image's tag
# S18: the chart's admission policy, installed with the CRD wherever the harness runs wharf (tests, run-local).
ADMISSION_POLICY = ROOT / "deploy" / "helm" / "wharf" / "admission" / "app-secret-access.yaml"
# Namespaces the session operator leaves alone (a kopf negated glob), so a test may run a second operator with
# other cluster-admin settings there (e.g. WHARF_ROOT_USER_POLICY=refuse) without the two fighting over an App.
SOLO_NAMESPACES = "wharf-solo-*"


@dataclass
class Operator:
    cluster: Cluster
    process: subprocess.Popen[bytes]
    log_file: Path
    metrics_url: str
    health_url: str
    outage_host: str = ""  # 127.0.0.1:PORT listed as insecure for `outage_registry`
    namespaces: tuple[str, ...] = ()  # a solo operator's own namespaces (solo_operator)
    env: Mapping[str, str] = field(default_factory=dict)  # what `launch` set over this process's environment

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # Small helpers the App tests share.
    def apply(self, obj: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def wait_for(self, what: str, predicate: Any, timeout: float = 60, interval: float = 0.5) -> Any:
        """Poll `predicate()` until it returns something truthy; fail with the operator's log otherwise."""
        last = poll(predicate, timeout, interval)
        if last:
            return last
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; last={last!r}\n--- operator log ---\n{self.log_tail()}"
        )

    def app_events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        """Events about Apps in `namespace` (about the App `name` only, when given), oldest first."""
        selector = "involvedObject.kind=App" + (f",involvedObject.name={name}" if name else "")
        out = self.cluster.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return sorted(items, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the operator's `name` samples (e.g. wharf_reconciles_total) whose labels include `labels`."""
        text = httpx.get(self.metrics_url, timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def condition(self, name: str, namespace: str, type_: str = "Ready") -> dict[str, Any]:
        app = self.get("app", name, namespace) or {}
        return next((c for c in (app.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def push_operator_image(registry: RegistryServer) -> str:
    """operator/Dockerfile built by scripts/build-image.sh (cached by its inputs under ~/.cache/wharf: a cold build
    takes minutes, an unchanged tree only the push) and pushed to `registry` as wharf:VERSION; returns its digest."""
    built = subprocess.run(
        ["bash", str(BUILD_IMAGE), "--push", f"docker://{registry.host}/wharf:{VERSION}", "--dest-tls-verify=false"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, f"scripts/build-image.sh failed ({built.returncode}):\n{built.stderr[-6000:]}"
    digest = (built.stdout.strip().splitlines() or [""])[-1]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"scripts/build-image.sh printed no digest:\n{built.stdout}"
    return digest


def _start(
    cluster: Cluster,
    registries: list[RegistryServer],
    ca_file: Path,
    workdir: Path,
    extra_insecure: tuple[str, ...] = (),
) -> Operator:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("apply", "-f", str(ADMISSION_POLICY))
    cluster.kubectl("wait", "--for=condition=Established", "crd/apps.wharf.dev", "--timeout=60s")
    # Established comes before the resource's storage answers (429 "storage is (re)initializing"): the operator
    # starts once Apps can be listed, so its first watches do not begin with retries.
    listable = poll(lambda: cluster.kubectl("get", "apps.wharf.dev", "-A", check=False).returncode == 0, 60, 0.2)
    assert listable, "Apps cannot be listed 60 s after the CRD was Established"
    for registry in registries:
        cluster.trust_registry(registry)
    env = {
        "WHARF_REGISTRY_INSECURE": ",".join([*(r.host for r in registries if not r.tls), *extra_insecure]),
        "WHARF_REGISTRY_ALLOW": "127.0.0.0/8",  # the test registries live on loopback
        "WHARF_REGISTRY_CA_BUNDLE": str(ca_file),
        "WHARF_LOG_LEVEL": "DEBUG",
    }
    operator = launch(cluster, env, workdir / "operator.log", f"--namespace=!{SOLO_NAMESPACES}")
    try:
        _wait_until_new_namespaces_are_seen(operator)
    except BaseException:
        _stop(operator)
        raise
    return operator


def _wait_until_new_namespaces_are_seen(operator: Operator, attempts: int = 12) -> None:
    """With namespace patterns, kopf (1.45) lists the namespaces, then starts its namespace watch with a second
    listing whose items it ignores: a namespace created between the two is never served. Tests create their
    namespaces right after the operator starts, so wait until a namespace created now is picked up (a sentinel
    created inside that window is itself missed: then try another)."""
    for _ in range(attempts):
        sentinel = operator.cluster.create_namespace(f"wharf-harness-{uuid.uuid4().hex[:8]}", restricted=False)
        seen = f"Starting the watch-stream for apps.v1alpha1.wharf.dev in '{sentinel}'"
        picked_up = poll(lambda line=seen: line in operator.log_file.read_text(errors="replace"), 5, 0.2)
        operator.cluster.delete_namespace(sentinel)
        if picked_up:
            return
    raise AssertionError(f"the operator did not pick up new namespaces:\n{operator.log_tail()}")


def launch(
    cluster: Cluster,
    env: Mapping[str, str],
    log_file: Path,
    *args: str,
    kubeconfig: Path | None = None,
    peering: str | None = None,
) -> Operator:
    """`wharf run --standalone ARGS` (`--peering PEERING` when given) as its own process with `env` over this
    process's environment (KUBECONFIG, the metrics port and the health URL filled in), returned once its health
    endpoint answers."""
    metrics_port, health_port = free_port(), free_port()
    health_url = f"http://127.0.0.1:{health_port}/healthz"
    mode = f"--peering={peering}" if peering else "--standalone"
    process = subprocess.Popen(
        [sys.executable, "-m", "wharf.main", "run", mode, f"--liveness={health_url}", *args],
        env={
            **os.environ,
            # The package of this checkout, not whichever one the venv's editable install points at (a git
            # worktree shares the main checkout's venv): the operator under test is the code the tests sit beside.
            "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "KUBECONFIG": str(kubeconfig or cluster.kubeconfig),
            **env,
            "WHARF_METRICS_PORT": str(metrics_port),
        },
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    operator = Operator(cluster, process, log_file, f"http://127.0.0.1:{metrics_port}/metrics", health_url, env=env)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the operator exited ({process.returncode}):\n{operator.log_tail()}")
        try:
            return httpx.get(health_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        operator.wait_for("the operator's health endpoint", healthy, timeout=60)
    except BaseException:
        _stop(operator)
        raise
    return operator


def _stop(operator: Operator) -> None:
    if operator.process.poll() is None:
        operator.process.terminate()
        try:
            operator.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait()


@pytest.fixture(scope="session")
def wharf_operator(
    cluster: Cluster,
    registry_plain: RegistryServer,
    registry_tls: RegistryServer,
    registry_basic: RegistryServer,
    registry_token: RegistryServer,
    registry_ca: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    workdir = tmp_path_factory.mktemp("operator")
    registries = [registry_plain, registry_tls, registry_basic, registry_token]
    reserved = reserved_port()
    outage_host = f"127.0.0.1:{reserved.getsockname()[1]}"
    try:
        operator = _start(cluster, registries, Path(registry_ca.cert), workdir, extra_insecure=(outage_host,))
        operator.outage_host = outage_host
        try:
            yield operator
        finally:
            _stop(operator)
    finally:
        reserved.close()


@pytest.fixture
def outage_registry(wharf_operator: Operator, registry_ca: Any, tmp_path: Path) -> Iterator[RegistryServer]:
    """A plain registry on the operator's reserved insecure port, trusted by the nodes; stop()/start() at will."""
    port = int(wharf_operator.outage_host.rsplit(":", 1)[1])
    with RegistryServer("plain", ca=registry_ca, workdir=tmp_path / "outage-registry", port=port) as server:
        wharf_operator.cluster.trust_registry(server)
        yield server


class SoloOperator(Protocol):
    def __call__(self, env: Mapping[str, str], count: int = 1) -> tuple[Operator, str]: ...


def relaunch(operator: Operator, crash: bool = True) -> Operator:
    """Stop `operator` (SIGKILL when `crash`: no clean-up of any kind, as when its node dies) and start the same
    `wharf run` again, same arguments and settings, logging to a new file beside the old one."""
    if crash:
        operator.process.kill()
        operator.process.wait()
    else:
        _stop(operator)
    args = operator.process.args
    assert isinstance(args, list), args
    own = [str(a) for a in args[args.index("--standalone") + 2 :]]  # after --standalone and --liveness=...
    log_file = operator.log_file.with_name(f"{operator.log_file.stem}.{uuid.uuid4().hex[:6]}.log")
    again = launch(operator.cluster, operator.env, log_file, *own)
    again.namespaces = operator.namespaces
    return again


@pytest.fixture
def solo_operator(wharf_operator: Operator, registry_plain: RegistryServer, tmp_path: Path) -> Iterator[SoloOperator]:
    """Starts a second `wharf run` with other cluster-admin settings (`env` over the plain registry's), watching
    `count` fresh `wharf-solo-*` namespaces only (operator.namespaces), which the session operator leaves alone;
    returns (operator, its first namespace). Everything started is stopped and deleted after the test (an operator
    the test started again with `relaunch` is the test's to `_stop`)."""
    cluster = wharf_operator.cluster
    args = wharf_operator.process.args
    assert isinstance(args, list), args
    assert f"--namespace=!{SOLO_NAMESPACES}" in args, "the session operator watches the solo namespaces too"

    started: list[tuple[Operator | None, tuple[str, ...]]] = []

    def start(env: Mapping[str, str], count: int = 1) -> tuple[Operator, str]:
        prefix = SOLO_NAMESPACES.rstrip("*")
        namespaces = tuple(cluster.create_namespace(f"{prefix}{uuid.uuid4().hex[:8]}") for _ in range(count))
        started.append((None, namespaces))
        base = {"WHARF_REGISTRY_INSECURE": registry_plain.host, "WHARF_REGISTRY_ALLOW": "127.0.0.0/8"}
        scope = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        solo = launch(cluster, {**base, **env}, tmp_path / f"solo-{len(started)}.log", *scope)
        solo.namespaces = namespaces
        started[-1] = (solo, namespaces)
        return solo, namespaces[0]

    try:
        yield start
    finally:
        for solo, namespaces in started:
            if solo is not None:
                _stop(solo)
            for namespace in namespaces:
                cluster.delete_namespace(namespace)


@pytest.fixture
def app_ns(cluster: Cluster) -> Iterator[str]:
    name = cluster.create_namespace(f"app-{uuid.uuid4().hex[:8]}")
    yield name
    cluster.delete_namespace(name)
