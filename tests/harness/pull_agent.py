"""TEST-ONLY pod-status agent: plays the kubelet's part for pods bound to kwok's fake nodes.

kwok manages the fake nodes; nothing runs containers. This agent makes a pod's fate follow the REAL registry:
for every container image it asks the registry (`skopeo inspect --raw`) with the pod's imagePullSecrets.
- pullable: the pod goes Running, containers running+ready (probes are not run: a pod with a
  readinessProbe/startupProbe is marked ready as soon as it "starts"), podIP/hostIP/startTime set;
- not pullable: the container waits with ErrImagePull (message carries the registry's error), then
  ImagePullBackOff (`Back-off pulling image "IMAGE": ErrImagePull: ...`), retried with a short capped backoff;
- an invalid reference: InvalidImageName;
- a pod already Running stays Running when the registry goes away (the image is on the node);
- a pod being deleted is deleted with grace 0, as a kubelet confirms a stopped pod.
Polls the apiserver every `interval` seconds (test-scale clusters). Not a kubelet: no probes, no restarts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("harness.pull_agent")
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::\d+)?$")
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}


def normalize(image: str) -> tuple[str, str] | None:
    """`(host, full reference)` as containerd would resolve `image` (a digest wins over a tag), or None when
    the reference is invalid."""
    name, _, digest = image.partition("@")
    tag = ""
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
        if not tag:
            return None
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", name if "/" in name else f"library/{name}"
    if not (_HOST.match(host) and _PATH.match(path)) or (tag and not _TAG.match(tag)):
        return None
    if digest and not _DIGEST.match(digest):
        return None
    return host, f"{host}/{path}@{digest}" if digest else f"{host}/{path}:{tag or 'latest'}"


def _auth_host(key: str) -> str:
    host = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB else host


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _PodState:
    images: tuple[str, ...]
    next_at: float = 0.0
    failures: int = 0
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # container -> (reason, message)
    backoff_shown: bool = False


class PullAgent:
    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        ca_files: list[Path] | None = None,
        insecure: list[str] | None = None,
        interval: float = 0.5,
        backoff: float = 1.0,
        max_backoff: float = 4.0,
        skopeo: str = "skopeo",
        platform: str = "linux/amd64",
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.insecure: set[str] = set(insecure or [])
        self.interval, self.backoff, self.max_backoff, self.skopeo = interval, backoff, max_backoff, skopeo
        self._tmp = Path(tempfile.mkdtemp(prefix="pull-agent-"))
        self.cert_dir = self._tmp / "certs"
        self.cert_dir.mkdir()
        self.platform = platform
        (self._tmp / "registries.conf").write_text("")  # hermetic: no mirrors/aliases from /etc/containers
        self._env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(self._tmp / "registries.conf")}
        for ca in ca_files or []:
            self.trust_ca(ca)
        self._states: dict[str, _PodState] = {}
        self._ips = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=self.kubeconfig))  # type: ignore[no-untyped-call]

    # -- configuration ---------------------------------------------------------------------------------------
    def trust_ca(self, ca_file: Path | str) -> None:
        """Trust a CA (PEM) for every registry, as a node's containerd trusting the cluster's registry CA."""
        data = Path(ca_file).read_bytes()
        shutil.copyfile(ca_file, self.cert_dir / f"ca-{hashlib.sha256(data).hexdigest()[:12]}.crt")

    def add_insecure(self, host: str) -> None:
        """Reach `host` ("127.0.0.1:5000") over plain HTTP / unverified TLS."""
        self.insecure.add(host)

    def trust_registry(self, server: Any) -> None:
        """Duck-typed for harness.registry.RegistryServer: `.host`, `.tls`, `.ca_file`."""
        if getattr(server, "tls", False):
            self.trust_ca(server.ca_file)
        else:
            self.add_insecure(server.host)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> PullAgent:
        self._thread = threading.Thread(target=self.run, name="pull-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception:
                log.exception("pull agent sync failed")
            self._stop.wait(self.interval)

    # -- the kubelet's part ----------------------------------------------------------------------------------
    def sync_once(self) -> None:
        nodes: dict[str, str | None] = {}
        node: Any
        for node in self.core.list_node().items:
            if (node.metadata.annotations or {}).get(FAKE_NODE_ANNOTATION) == "fake":
                addresses = node.status.addresses or []
                nodes[node.metadata.name] = next((a.address for a in addresses if a.type == "InternalIP"), None)
        seen = set()
        pod: Any
        for pod in self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items:
            if pod.spec.node_name not in nodes:
                continue
            seen.add(pod.metadata.uid)
            try:
                self._sync_pod(pod, nodes[pod.spec.node_name])
            except ApiException as e:
                if e.status not in (404, 409):
                    log.warning("pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, e)
        for uid in set(self._states) - seen:
            del self._states[uid]

    def _sync_pod(self, pod: Any, host_ip: str | None) -> None:
        md, spec, status = pod.metadata, pod.spec, pod.status
        if md.deletion_timestamp:
            self.core.delete_namespaced_pod(
                md.name, md.namespace, grace_period_seconds=0, body=client.V1DeleteOptions(grace_period_seconds=0)
            )
            return
        if status.phase in ("Succeeded", "Failed"):
            return
        containers = list(spec.init_containers or []) + list(spec.containers)
        if (
            status.phase == "Running"
            and all(c.ready for c in status.container_statuses or [])
            and len(status.container_statuses or []) == len(spec.containers)
        ):
            return  # running: images are on the node; the registry no longer matters
        images = tuple(c.image for c in containers)
        st = self._states.get(md.uid)
        if st is None or st.images != images:
            st = self._states[md.uid] = _PodState(images)
        now = time.monotonic()
        if now < st.next_at:
            return
        if st.failed and not st.backoff_shown and all(r == "ErrImagePull" for r, _ in st.failed.values()):
            st.failed = {
                n: ("ImagePullBackOff", f'Back-off pulling image "{_image(containers, n)}": ErrImagePull: {m}')
                for n, (_, m) in st.failed.items()
            }
            st.backoff_shown = True
            st.next_at = now + min(self.backoff * 2 ** (st.failures - 1), self.max_backoff)
            self._patch(pod, host_ip, st.failed, {})
            return
        auths = self._auths(md.namespace, spec.image_pull_secrets or [])
        failed: dict[str, tuple[str, str]] = {}
        ids: dict[str, str] = {}
        for c in containers:
            norm = normalize(c.image)
            if norm is None:
                failed[c.name] = (
                    "InvalidImageName",
                    f'Failed to apply default image tag "{c.image}": couldn\'t parse image name '
                    f'"{c.image}": invalid reference format',
                )
                continue
            ok, detail = self._pull(norm[0], norm[1], auths.get(norm[0], []))
            if ok:
                ids[c.name] = detail
            else:
                code = "NotFound" if "manifest unknown" in detail else "Unknown"
                failed[c.name] = (
                    "ErrImagePull",
                    f'rpc error: code = {code} desc = failed to pull and unpack image "{norm[1]}": {detail}',
                )
        st.failed, st.backoff_shown = failed, False
        if failed:
            st.failures += 1
            st.next_at = now + (self.backoff if "ErrImagePull" in {r for r, _ in failed.values()} else self.max_backoff)
            self._event(pod, "Warning", "Failed", "; ".join(m for _, m in failed.values()))
        self._patch(pod, host_ip, failed, ids)

    def _auths(self, namespace: str, refs: list[Any]) -> dict[str, list[str]]:
        """host -> base64 "user:pass" values from the pod's dockerconfigjson / dockercfg pull secrets."""
        out: dict[str, list[str]] = {}
        for ref in refs:
            try:
                secret = self.core.read_namespaced_secret(ref.name, namespace)
            except ApiException:
                continue  # a missing pull secret is skipped, as the kubelet does
            data = secret.data or {}
            if secret.type == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" in data:
                entries = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths", {})
            elif secret.type == "kubernetes.io/dockercfg" and ".dockercfg" in data:
                entries = json.loads(base64.b64decode(data[".dockercfg"]))
            else:
                continue
            for key, entry in entries.items():
                auth = (
                    entry.get("auth")
                    or base64.b64encode(f"{entry.get('username', '')}:{entry.get('password', '')}".encode()).decode()
                )
                out.setdefault(_auth_host(key), []).append(auth)
        return out

    def _pull(self, host: str, ref: str, auths: list[str]) -> tuple[bool, str]:
        """(True, imageID) or (False, the registry's error). Tries each credential, then fails with the last."""
        detail = ""
        for auth in auths or [""]:
            authfile = self._tmp / f"auth-{uuid.uuid4().hex}.json"
            authfile.write_text(json.dumps({"auths": {host: {"auth": auth}} if auth else {}}))
            tls = ["--tls-verify=false"] if host in self.insecure else [f"--cert-dir={self.cert_dir}"]
            try:
                out = subprocess.run(
                    [
                        self.skopeo,
                        "--command-timeout=15s",
                        "inspect",
                        "--raw",
                        f"--authfile={authfile}",
                        *tls,
                        f"docker://{ref}",
                    ],
                    capture_output=True,
                    timeout=20,
                    env=self._env,
                )
            except subprocess.TimeoutExpired:
                return False, f"pulling {ref}: timed out"
            finally:
                authfile.unlink(missing_ok=True)
            if out.returncode == 0:
                if not _has_platform(out.stdout, self.platform):
                    return False, f"no match for platform in manifest: not found (node platform {self.platform})"
                return True, f"{_repository(ref)}@sha256:{hashlib.sha256(out.stdout).hexdigest()}"
            detail = _skopeo_error(out.stderr.decode(errors="replace"))
        return False, detail

    def _patch(self, pod: Any, host_ip: str | None, failed: dict[str, tuple[str, str]], ids: dict[str, str]) -> None:
        now, spec = _now(), pod.spec
        init_failed = any(c.name in failed for c in spec.init_containers or [])

        def cstatus(c: Any, init: bool) -> dict[str, Any]:
            s: dict[str, Any] = {
                "name": c.name,
                "image": c.image,
                "imageID": ids.get(c.name, ""),
                "restartCount": 0,
                "ready": False,
                "started": False,
            }
            if c.name in failed:
                s["state"] = {"waiting": {"reason": failed[c.name][0], "message": failed[c.name][1]}}
            elif init:
                s["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
                s["ready"] = True
            elif init_failed:
                s["state"] = {"waiting": {"reason": "PodInitializing"}}
            else:
                s["state"] = {"running": {"startedAt": now}}
                s.update(ready=True, started=True, containerID=f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}")
            return s

        statuses = [cstatus(c, False) for c in spec.containers]
        unready = [s["name"] for s in statuses if not s["ready"]]
        ready = not unready

        def cond(t: str, ok: bool, reason: str | None = None, msg: str | None = None) -> dict[str, Any]:
            return {
                "type": t,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
                "reason": reason,
                "message": msg,
            }

        msg = f"containers with unready status: [{' '.join(unready)}]"
        body: dict[str, Any] = {
            "status": {
                "phase": "Running" if any("running" in s["state"] for s in statuses) else "Pending",
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}] if host_ip else None,
                "startTime": pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else now,
                "initContainerStatuses": [cstatus(c, True) for c in spec.init_containers or []] or None,
                "containerStatuses": statuses,
                "conditions": [
                    cond("PodReadyToStartContainers", True),
                    cond(
                        "Initialized",
                        not init_failed,
                        None if not init_failed else "ContainersNotInitialized",
                        None if not init_failed else "containers with incomplete status",
                    ),
                    cond("Ready", ready, None if ready else "ContainersNotReady", None if ready else msg),
                    cond("ContainersReady", ready, None if ready else "ContainersNotReady", None if ready else msg),
                    cond("PodScheduled", True),
                ],
            }
        }
        if not pod.status.pod_ip and not init_failed:
            self._ips += 1
            ip = f"10.244.{self._ips // 250}.{self._ips % 250 + 2}"
            body["status"].update(podIP=ip, podIPs=[{"ip": ip}])
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, body, _content_type="application/merge-patch+json"
        )

    def _event(self, pod: Any, type_: str, reason: str, message: str) -> None:
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_event(
                pod.metadata.namespace,
                client.CoreV1Event(
                    metadata=client.V1ObjectMeta(generate_name=f"{pod.metadata.name}."),
                    involved_object=client.V1ObjectReference(
                        kind="Pod",
                        name=pod.metadata.name,
                        api_version="v1",
                        namespace=pod.metadata.namespace,
                        uid=pod.metadata.uid,
                    ),
                    type=type_,
                    reason=reason,
                    message=message[:1000],
                    source=client.V1EventSource(component="kubelet", host=pod.spec.node_name),
                    first_timestamp=dt.datetime.now(dt.UTC),
                    last_timestamp=dt.datetime.now(dt.UTC),
                    count=1,
                ),
            )


def _has_platform(raw: bytes, platform: str) -> bool:
    """A single manifest is taken as is; an index / manifest list must list the node's os/arch."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return True
    if "manifests" not in doc:
        return True
    os_, arch = platform.split("/")[:2]
    return any(
        (m.get("platform") or {}).get("os") == os_ and (m.get("platform") or {}).get("architecture") == arch
        for m in doc["manifests"]
    )


def _repository(ref: str) -> str:
    name = ref.split("@", 1)[0]
    return name.rpartition(":")[0] if name.rfind(":") > name.rfind("/") else name


def _image(containers: list[Any], name: str) -> str:
    return str(next(c.image for c in containers if c.name == name))


def _skopeo_error(stderr: str) -> str:
    """skopeo's `time=... level=fatal msg="..."` line -> the message."""
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    text = json.loads(f'"{m.group(1)}"') if m else stderr.strip()
    return re.sub(r"^Error parsing image name \"[^\"]*\": ", "", text) or "unknown error"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.pull_agent", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--ca-file", action="append", default=[], type=Path, help="trust this registry CA (repeat)")
    p.add_argument("--insecure", action="append", default=[], help="host:port reached over plain HTTP (repeat)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = PullAgent(a.kubeconfig, ca_files=a.ca_file, insecure=a.insecure)
    try:
        agent.run()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


if __name__ == "__main__":
    main()
