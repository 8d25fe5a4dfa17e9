"""A pod's container run for real from its image by runc, as a kubelet would start it (test-only).

kwok's fake nodes run nothing: the pull agent only marks a pod Running once the real registry serves its image. When
a trial must have the process of such a pod really run (the operator the wharf chart installs, harness.flux), this
module does the kubelet's part for one container of that pod, with harness.image_run: the pod's image unpacked
(`skopeo copy` + `umoci unpack`), its `command` + `args` and its `env` (`value`, and `valueFrom.fieldRef` on the
pod's name, namespace and uid), a token of the pod's ServiceAccount bound to the pod (TokenRequest, what the kubelet
mounts at /var/run/secrets/kubernetes.io/serviceaccount) with the cluster CA and the namespace beside it, and
KUBERNETES_SERVICE_HOST/PORT (the kubelet's pointer to the `kubernetes` Service) set to the apiserver itself.
image_run's restricted config gives what the chart's securityContext asks (the image's USER, read-only root, no
capabilities, a tmpfs /tmp). One difference a reader must know: runc shares the host's network here, so each of the
container's ports is moved to a free loopback port, in the args and env values that name it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import image_run
from harness.fixtures_cluster import Cluster
from harness.ports import free_port

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}


@dataclass
class RunningPod:
    pod: dict[str, Any]
    container: image_run.Container
    argv: list[str]  # the process started: the container's command + args, ports moved
    env: dict[str, str]  # what the pod spec sets over the image's environment, ports moved
    ports: dict[int, int]  # container port -> the loopback port it was moved to

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def environ(self) -> dict[str, str]:
        """The environment of the container's first process, as /proc shows it."""
        entries = self.container.proc("environ").split("\0")
        return dict(e.split("=", 1) for e in entries if "=" in e)

    def stop(self) -> None:
        self.container.stop()


def service_account_files(cluster: Cluster, pod: dict[str, Any], directory: Path) -> Path:
    """What the kubelet mounts at SERVICE_ACCOUNT_DIR for `pod`: a token of its ServiceAccount bound to the pod,
    the cluster CA and the namespace, readable by any uid (as the kubelet's projected volume is)."""
    meta = pod["metadata"]
    token = cluster.kubectl(
        "create",
        "token",
        pod["spec"].get("serviceAccountName") or "default",
        "-n",
        meta["namespace"],
        "--bound-object-kind=Pod",
        f"--bound-object-name={meta['name']}",
        f"--bound-object-uid={meta['uid']}",
        "--duration=1h",
    ).stdout.strip()
    if not token:
        raise AssertionError(f"TokenRequest for pod {meta['namespace']}/{meta['name']} returned no token")
    directory.mkdir(mode=0o755, parents=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(cluster.control_plane.ca_file.read_bytes())
    (directory / "namespace").write_text(meta["namespace"])
    for entry in directory.iterdir():
        entry.chmod(0o644)
    return directory


def _moved(text: str, ports: dict[int, int]) -> str:
    """`text` with each `:PORT` (in a URL or an address) of a moved container port replaced by its new port."""
    return re.sub(r":(\d+)\b", lambda m: f":{ports.get(int(m.group(1)), int(m.group(1)))}", text)


def container_process(
    apiserver: str, pod: dict[str, Any], container_name: str
) -> tuple[list[str], dict[str, str], dict[int, int]]:
    """The argv and environment the kubelet would start `container_name` of `pod` with (`apiserver`: the URL the
    in-cluster config is to reach), its ports moved to free loopback ports (returned as container port -> new
    port)."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container_name)
    ports = {p["containerPort"]: free_port() for p in spec.get("ports", [])}
    argv = [_moved(a, ports) for a in [*spec.get("command", []), *spec.get("args", [])]]
    env: dict[str, str] = {}
    for entry in spec.get("env", []):
        if "valueFrom" not in entry:  # an empty value is left out of the object
            value = str(entry.get("value", ""))
            env[entry["name"]] = str(ports[int(value)]) if value.isdigit() and int(value) in ports else value
            continue
        field_path = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field_path not in _FIELDS:
            raise AssertionError(f"env {entry['name']}: {entry.get('valueFrom')!r} is not one this harness resolves")
        env[entry["name"]] = str(pod["metadata"][_FIELDS[field_path]])
    host, port = apiserver.split("://", 1)[1].rsplit(":", 1)
    env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = host, port
    return argv, env, ports


def run_pod_container(
    cluster: Cluster, pod: dict[str, Any], container_name: str, bundle: Path, workdir: Path
) -> RunningPod:
    """Start `container_name` of `pod` from `bundle` (image_run.unpack of the pod's image), output in
    workdir/<pod>.log. The caller waits for it to be up (its ports are in the result)."""
    argv, env, ports = container_process(cluster.control_plane.server, pod, container_name)
    name = pod["metadata"]["name"]
    token_dir = service_account_files(cluster, pod, workdir / f"{name}-serviceaccount")
    container = image_run.run(
        bundle,
        workdir / f"{name}.log",
        args=argv,
        env=env,
        mounts=[image_run.Mount(token_dir, SERVICE_ACCOUNT_DIR)],
    )
    return RunningPod(json.loads(json.dumps(pod)), container, argv, env, ports)
