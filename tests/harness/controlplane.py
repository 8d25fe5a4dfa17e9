"""A real Kubernetes control plane on loopback, for tests and the local run (test-only).

etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (fake nodes, node stages only).
No kubelet here: pods bound to the fake nodes get their status from `harness.pull_agent`. `harness.node` adds a
real node (kubelet + containerd) beside them, tainted so that only namespaces placed there land on it.

Every process runs in its own process group with its log under `workdir/logs/`; `stop()` (also run at
interpreter exit and, on Linux, by the kernel if this process dies: PR_SET_PDEATHSIG) SIGTERMs each group and
SIGKILLs what is left. PDEATHSIG fires when the *thread* that started a process exits: call start() from a
thread that outlives the control plane (the main thread, as pytest and `python -m harness up` do).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.certs import CA, Pair, rsa_keypair
from harness.ports import free_port

STAGES = Path(__file__).with_name("kwok-stages.yaml")
SERVICE_CIDR = "10.96.0.0/16"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_IP_ANNOTATION = "harness.wharf.dev/node-ip"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def terminate_groups(pgids: Sequence[int], timeout: float = 10.0) -> None:
    """SIGTERM each process group, wait up to `timeout`, then SIGKILL the survivors."""
    alive = []
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _group_alive(p)]
    for pgid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still "exists": reap it if it is our child
    with contextlib.suppress(ChildProcessError):
        pid, _ = os.waitpid(pgid, os.WNOHANG)
        if pid == pgid:
            return _group_alive(pgid)
    return True


_LIVE: set[ControlPlane] = set()


@atexit.register
def _stop_all() -> None:
    for cp in list(_LIVE):
        cp.stop()


def _kubeconfig(server: str, ca: Path, pair: Pair | None, user: str, token: str = "") -> dict[str, Any]:
    """A kubeconfig for `user`: a client certificate (`pair`) or a bearer token."""
    credentials = (
        {"token": token} if pair is None else {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
    )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "wharf-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "wharf-test", "context": {"cluster": "wharf-test", "user": user}}],
        "current-context": "wharf-test",
    }


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with `nodes` fake nodes."""

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path,
        *,
        nodes: int = 1,
        startup_timeout: float = 120.0,
        audit_users: Sequence[str] = (),
    ) -> None:
        """`audit_users`: the apiserver writes an audit record (level Metadata: who, verb, resource, code; no
        bodies) for every request of these users to `audit_log` (JSON lines), e.g. for counting a client's
        requests by verb in a benchmark. Empty: no audit log."""
        self.workdir = Path(workdir).resolve()
        self.audit_users = tuple(audit_users)
        self.audit_log = self.workdir / "logs" / "audit.log"
        self.bin_dir = Path(bin_dir).resolve()
        self.node_names = [f"fake-node-{i}" for i in range(nodes)]
        self.startup_timeout = startup_timeout
        self.procs: list[Proc] = []
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self._admin: Pair | None = None
        self._ca: CA | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __hash__(self) -> int:
        return id(self)

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def pgids(self) -> list[int]:
        return [p.popen.pid for p in self.procs]

    def start(self) -> ControlPlane:
        _LIVE.add(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _LIVE.discard(self)
        # clients first, then the apiserver, then etcd: an apiserver whose etcd is gone shuts down slowly
        for p in reversed(self.procs):
            terminate_groups([p.popen.pid])
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=5)
        self.procs.clear()

    # -- pieces ----------------------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str]) -> Proc:
        """Start `args` in its own process group, logging to workdir/logs/NAME.log; stop() ends it."""
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait(self, what: str, ok: Callable[[], bool], proc: Proc | None = None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if not p.alive():
                    raise ControlPlaneError(f"{p.name} exited ({p.popen.returncode}) waiting for {what}:\n{p.tail()}")
            try:
                if ok():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        tail = proc.tail() if proc else ""
        raise ControlPlaneError(f"timed out after {self.startup_timeout}s waiting for {what}\n{tail}")

    def _start(self) -> None:
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"):
            if not (self.bin_dir / name).is_file():
                raise ControlPlaneError(f"missing binary {self.bin_dir / name} (run tests/cluster/build-binaries.sh)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.workdir / "pki"
        ca = self._ca = CA(pki, name="wharf-test-cluster-ca")
        serving = ca.issue(
            "kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        self._admin = ca.issue("admin", organization="system:masters", client=True)
        kcm = ca.issue("system:kube-controller-manager", client=True)
        sched = ca.issue("system:kube-scheduler", client=True)
        kwok = ca.issue("kwok", organization="system:masters", client=True)
        sa = rsa_keypair(pki, "service-account")
        kubelet_client = ca.issue("kube-apiserver-kubelet-client", organization="system:masters", client=True)

        # etcd
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self.spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=wharf-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=wharf-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--listen-metrics-urls=",
            ],
        )
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), etcd)

        # kube-apiserver
        api_port = free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        apiserver = self.spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=Node,RBAC",
                # Added to the default-enabled plugins, as OpenShift runs it: setting an owner reference's
                # blockOwnerDeletion needs `update` on the owner's finalizers (the chart's RBAC must grant it).
                # PodNodeSelector + PodTolerationRestriction: a namespace annotated by harness.node.place_namespace
                # gets the real node's node selector and toleration on every pod, as a cluster admin dedicates
                # nodes to a tenant; without the annotations they change nothing.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement,PodNodeSelector,"
                "PodTolerationRestriction",
                # logs, exec and port-forward reach the real node's kubelet at its InternalIP, with a client cert
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self._audit_args(),
            ],
        )
        for name, pair in (
            ("admin", self._admin),
            ("kube-controller-manager", kcm),
            ("kube-scheduler", sched),
            ("kwok", kwok),
        ):
            path = self.kubeconfig if name == "admin" else self.workdir / f"{name}.kubeconfig"
            path.write_text(json.dumps(_kubeconfig(self.server, ca.cert, pair, name), indent=2))
            path.chmod(0o600)
        self._wait("kube-apiserver /readyz", lambda: self._get("/readyz") == "ok", apiserver)

        # controllers, scheduler, kwok
        kcm_conf = self.workdir / "kube-controller-manager.kubeconfig"
        self.spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm_conf}",
                f"--authentication-kubeconfig={kcm_conf}",
                f"--authorization-kubeconfig={kcm_conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={pki / 'kcm'}",
                "--leader-elect=false",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                f"--cluster-signing-cert-file={ca.cert}",
                f"--cluster-signing-key-file={ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ],
        )
        sched_conf = self.workdir / "kube-scheduler.kubeconfig"
        self.spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={sched_conf}",
                f"--authentication-kubeconfig={sched_conf}",
                f"--authorization-kubeconfig={sched_conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={pki / 'scheduler'}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        self.spawn(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={STAGES}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--node-ip=10.250.0.1",
                "--cidr=10.244.0.0/16",
            ],
        )

        for i, name in enumerate(self.node_names):
            self.create_node(name, f"10.250.0.{i + 1}")
        sa_path = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait("ServiceAccount default/default", lambda: self._get(sa_path) is not None)
        self._wait("fake nodes Ready and untainted", self._nodes_ready)

    def _audit_args(self) -> list[str]:
        if not self.audit_users:
            return []
        policy = self.workdir / "audit-policy.json"
        rules = [
            {"level": "Metadata", "users": list(self.audit_users)},
            {"level": "None"},
        ]
        policy.write_text(
            json.dumps(
                {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": rules}
            )
        )
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # one file however large: a reader follows it by offset
            "--audit-log-mode=batch",  # requests do not wait on the log
            "--audit-log-batch-max-wait=1s",
        ]

    def restart(self, name: str = "kube-apiserver") -> None:
        """SIGKILL one control-plane process (`name`, as in logs/) and start it again with the same flags; for the
        apiserver, return once it is ready again. A fault test's crash, not a graceful stop."""
        proc = next(p for p in self.procs if p.name == name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=30)
        self.procs.remove(proc)
        args = proc.popen.args
        assert isinstance(args, list), args
        started = self.spawn(name, [str(a) for a in args])
        if name == "kube-apiserver":
            self._wait("kube-apiserver /readyz after a restart", lambda: self._get("/readyz") == "ok", started)

    def token_kubeconfig(self, namespace: str, service_account: str) -> Path:
        """A kubeconfig that acts as the ServiceAccount `namespace/service_account` (a token from TokenRequest), as
        a GitOps controller in the cluster would."""
        token = self.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").stdout.strip()
        path = self.workdir / f"sa-{namespace}-{service_account}.kubeconfig"
        path.write_text(json.dumps(_kubeconfig(self.server, self.ca_file, None, service_account, token), indent=2))
        path.chmod(0o600)
        return path

    def create_node(self, name: str, ip: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {FAKE_NODE_ANNOTATION: "fake", NODE_IP_ANNOTATION: ip},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(node))

    def client_kubeconfig(self, user: str, organization: str | None = None) -> Path:
        """A kubeconfig for a client-certificate user `user` (group `organization`) of this cluster."""
        assert self._ca is not None, "start() first"
        pair = self._ca.issue(user, organization=organization, client=True)  # CN = user (colons and all)
        path = self.workdir / f"{user.replace(':', '-')}.kubeconfig"
        path.write_text(json.dumps(_kubeconfig(self.server, self.ca_file, pair, user), indent=2))
        path.chmod(0o600)
        return path

    # -- access ----------------------------------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as the admin, or as the user of `kubeconfig` (client_kubeconfig, token_kubeconfig). A
        `--timeout=` given to kubectl (delete, wait) gets 30 s more here, so kubectl reports its own timeout (a
        non-zero exit, for `check`) instead of being killed at the same moment."""
        for arg in args:
            if (own := re.fullmatch(r"--timeout=(\d+)(s|m)", arg)) is not None:
                timeout = max(timeout, int(own[1]) * (60 if own[2] == "m" else 1) + 30)
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def _ssl(self) -> ssl.SSLContext:
        assert self._admin is not None
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        return ctx

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=5) as r:
                return r.read().decode()  # type: ignore[no-any-return]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def _nodes_ready(self) -> bool:
        body = self._get("/api/v1/nodes")
        items = json.loads(body or "{}").get("items", [])
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
            and not any(t.get("effect") == "NoSchedule" for t in n.get("spec", {}).get("taints", []))
        }
        return set(self.node_names) <= ready


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200  # type: ignore[no-any-return]
