"""The test control plane is a real one: PodSecurity admission, controllers, garbage collection, scheduling on
kwok's fake node, and pod pulls that follow the real registry (via the test-only pull agent)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.fixtures_cluster import Cluster
from harness.images import ImageSpec
from harness.polling import poll
from harness.registry import RegistryServer

pytestmark = pytest.mark.cluster

APP_IMAGE = ImageSpec(exposed_ports=["8080/tcp"], user="1001", cmd=["/app/server"])
RESTRICTED_SC: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.3) -> Any:
    """Poll `probe` until it returns something truthy; fail with the last value seen."""
    last = poll(probe, timeout, interval)
    if last:
        return last
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def pod_manifest(name: str, image: str, pull_secrets: Sequence[str] = (), restricted: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if restricted:
        container["securityContext"] = RESTRICTED_SC
    spec: dict[str, Any] = {"containers": [container]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def pull_secret(name: str, host: str, username: str, password: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    blob = json.dumps({"auths": {host: {"username": username, "password": password, "auth": auth}}})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(blob.encode()).decode()},
    }


def waiting(core: client.CoreV1Api, ns: str, name: str) -> tuple[str, str] | None:
    pod = core.read_namespaced_pod(name, ns)
    for cs in pod.status.container_statuses or []:
        if cs.state and cs.state.waiting:
            return cs.state.waiting.reason, cs.state.waiting.message or ""
    return None


def running_ready(core: client.CoreV1Api, ns: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, ns)
    statuses = pod.status.container_statuses or []
    return pod.status.phase == "Running" and bool(statuses) and all(cs.ready and cs.state.running for cs in statuses)


def wait_reason(core: client.CoreV1Api, ns: str, name: str, reason: str, timeout: float = 30) -> str:
    """Wait until the container waits with `reason`; return its message."""
    got = wait_for(
        f"{name} waiting {reason}",
        lambda: (w := waiting(core, ns, name)) and w[0] == reason and w,
        timeout=timeout,
        interval=0.1,
    )
    return str(got[1])


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    with cluster.api_client() as api:
        yield client.CoreV1Api(api)


def test_podsecurity_restricted_namespace(cluster: Cluster, namespace: str, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, pod_manifest("root", "127.0.0.1:1/app:v1", restricted=False))
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "allowPrivilegeEscalation" in message
    assert "runAsNonRoot" in message

    created = core.create_namespaced_pod(namespace, pod_manifest("ok", "127.0.0.1:1/app:v1"))
    assert created.metadata.name == "ok"
    # the ServiceAccount admission plugin mounted the default ServiceAccount's token
    assert created.spec.service_account_name == "default"
    assert any(v.name.startswith("kube-api-access-") for v in created.spec.volumes)

    # a baseline namespace lets the same non-restricted pod in
    relaxed = cluster.create_namespace(f"relaxed-{uuid.uuid4().hex[:6]}", restricted=False)
    try:
        core.create_namespaced_pod(relaxed, pod_manifest("root", "127.0.0.1:1/app:v1", restricted=False))
    finally:
        cluster.delete_namespace(relaxed)


def test_deployment_becomes_ready_and_cascades(
    cluster: Cluster, namespace: str, registry_plain: RegistryServer, push_image: Callable[..., str]
) -> None:
    digest = push_image(registry_plain, "harness/app", "v1", APP_IMAGE)
    cluster.trust_registry(registry_plain)
    image = f"{registry_plain.host}/harness/app:v1"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "securityContext": RESTRICTED_SC,
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "1Gi"}},
                        }
                    ]
                },
            },
        },
    }
    with cluster.api_client() as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        apps.create_namespaced_deployment(namespace, deployment)
        wait_for(
            "2 ready replicas",
            lambda: (apps.read_namespaced_deployment(name="web", namespace=namespace).status.ready_replicas or 0) == 2,
        )
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        assert len(pods) == 2
        for pod in pods:
            assert pod.spec.node_name in cluster.node_names
            assert pod.status.phase == "Running"
            assert pod.status.pod_ip
            assert pod.status.host_ip
            assert pod.status.start_time
            conditions = {c.type: c.status for c in pod.status.conditions}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
                assert conditions[kind] == "True", conditions
            assert pod.status.container_statuses[0].image_id.endswith(digest)
        assert len({p.status.pod_ip for p in pods}) == 2

        # deleting the Deployment garbage-collects its ReplicaSet and Pods (the agent confirms pod deletion)
        apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
        wait_for("ReplicaSets collected", lambda: not apps.list_namespaced_replica_set(namespace).items)
        wait_for("Pods collected", lambda: not core.list_namespaced_pod(namespace).items)


def test_owner_deletion_garbage_collects(cluster: Cluster, namespace: str, core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                ],
            }
        },
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("child ConfigMap collected", child_gone)
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


def test_pull_follows_registry_outage(
    cluster: Cluster,
    namespace: str,
    core: client.CoreV1Api,
    stoppable_registry: RegistryServer,
    push_image: Callable[..., str],
) -> None:
    reg = stoppable_registry
    push_image(reg, "outage/app", "v1", APP_IMAGE)
    cluster.trust_registry(reg)
    image = f"{reg.host}/outage/app:v1"
    reg.stop()

    core.create_namespaced_pod(namespace, pod_manifest("p", image))
    message = wait_reason(core, namespace, "p", "ErrImagePull")
    assert f'failed to pull and unpack image "{image}"' in message
    assert "connection refused" in message
    backoff = wait_reason(core, namespace, "p", "ImagePullBackOff")
    assert backoff.startswith(f'Back-off pulling image "{image}"')
    assert core.read_namespaced_pod("p", namespace).status.phase == "Pending"

    reg.start()
    assert reg.host in image  # same port after restart
    wait_for("pod Running once the registry serves the image", lambda: running_ready(core, namespace, "p"))

    # a running pod keeps running when the registry goes away: the image is on the node
    reg.stop()
    time.sleep(3)
    assert running_ready(core, namespace, "p")

    # a missing tag is the registry's "manifest unknown"
    reg.start()
    core.create_namespaced_pod(namespace, pod_manifest("missing", f"{reg.host}/outage/app:nope"))
    assert "manifest unknown" in wait_reason(core, namespace, "missing", "ErrImagePull")


def test_unauthorized_pull_shows_registry_error(
    cluster: Cluster,
    namespace: str,
    core: client.CoreV1Api,
    registry_basic: RegistryServer,
    push_image: Callable[..., str],
) -> None:
    reg = registry_basic
    assert reg.username
    assert reg.password
    push_image(reg, "private/app", "v1", APP_IMAGE)
    cluster.trust_registry(reg)
    image = f"{reg.host}/private/app:v1"
    core.create_namespaced_secret(namespace, pull_secret("wrong", reg.host, reg.username, "not-the-password"))
    core.create_namespaced_secret(namespace, pull_secret("right", f"https://{reg.host}", reg.username, reg.password))

    core.create_namespaced_pod(namespace, pod_manifest("anon", image))
    core.create_namespaced_pod(namespace, pod_manifest("wrong", image, ["wrong"]))
    core.create_namespaced_pod(namespace, pod_manifest("right", image, ["missing-secret", "right"]))
    for name in ("anon", "wrong"):
        message = wait_reason(core, namespace, name, "ErrImagePull")
        assert f'failed to pull and unpack image "{image}"' in message
        assert "unauthorized" in message.lower(), message
    wait_for("pod with the right pull secret Running", lambda: running_ready(core, namespace, "right"))
    assert "unauthorized" in wait_reason(core, namespace, "wrong", "ImagePullBackOff").lower()


def test_token_registry_and_platform_and_invalid_name(
    cluster: Cluster,
    namespace: str,
    core: client.CoreV1Api,
    registry_token: RegistryServer,
    push_image: Callable[..., str],
) -> None:
    reg = registry_token
    assert reg.username
    assert reg.password
    push_image(reg, "tok/app", "v1", APP_IMAGE)
    push_image(reg, "tok/arm", "v1", APP_IMAGE, platforms=["linux/arm64"])
    cluster.trust_registry(reg)
    core.create_namespaced_secret(namespace, pull_secret("creds", reg.host, reg.username, reg.password))

    core.create_namespaced_pod(namespace, pod_manifest("tok", f"{reg.host}/tok/app:v1", ["creds"]))
    core.create_namespaced_pod(namespace, pod_manifest("arm", f"{reg.host}/tok/arm:v1", ["creds"]))
    core.create_namespaced_pod(namespace, pod_manifest("bad", f"{reg.host}/Tok/App:v1"))
    wait_for("token-auth pull Running", lambda: running_ready(core, namespace, "tok"))
    assert "no match for platform" in wait_reason(core, namespace, "arm", "ErrImagePull")
    assert "invalid reference format" in wait_reason(core, namespace, "bad", "InvalidImageName")
