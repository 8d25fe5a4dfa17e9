"""What a CF user notices first, on the real node (harness.node): the App's containers really run there.

Every App here lives in a `real_ns` namespace, which the apiserver's PodNodeSelector and PodTolerationRestriction
admission place on the real node (kubelet + containerd + runc, CNI bridge, kube-proxy in iptables mode): wharf and
the App are unchanged. Images are `harness.images.RUNNABLE_IMAGES` (a busybox root filesystem: `sh`, `httpd`).
Services are reached through their ClusterIP (kube-proxy's rules) from the test process and from another pod.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness.apps import app_resource
from harness.certs import CA
from harness.fixtures_cluster import Cluster
from harness.fixtures_operator import Operator
from harness.images import RUNNABLE_IMAGES, push_image
from harness.node import NODE_LABEL, NODE_VALUE, TAINT, RealNode
from harness.polling import poll
from harness.registry import RegistryServer

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.real_node]
DEFAULT_UID = 2000  # Settings.default_uid: the session operator keeps the default


@pytest.fixture(scope="module")
def images(registry_plain: RegistryServer) -> dict[str, str]:
    """RUNNABLE_IMAGES on the plain registry: name -> image reference."""
    for name, spec in RUNNABLE_IMAGES.items():
        push_image(registry_plain, f"run/{name}", "1", spec)
    return {name: f"{registry_plain.host}/run/{name}:1" for name in RUNNABLE_IMAGES}


# -- helpers ---------------------------------------------------------------------------------------------------
def ready_condition(op: Operator, name: str, namespace: str) -> dict[str, Any]:
    return op.condition(name, namespace)


def wait_ready(op: Operator, name: str, namespace: str, node: RealNode, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        app = op.get("app", name, namespace)
        conds = {c["type"]: c for c in ((app or {}).get("status") or {}).get("conditions", [])}
        return app if conds.get("Ready", {}).get("status") == "True" else None

    try:
        app: dict[str, Any] = op.wait_for(f"App {name} Ready", ready, timeout=timeout)
    except AssertionError as e:
        pods = op.cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
        described = op.cluster.kubectl("describe", "pods", "-n", namespace, check=False).stdout[-3000:]
        raise AssertionError(f"{e}\n--- pods\n{pods}\n{described}\n--- node\n{node.logs(20)}") from None
    return app


def app_pods(cluster: Cluster, namespace: str, app: str, running: bool = True) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"wharf.dev/app={app}", "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return [p for p in live if p["status"].get("phase") == "Running"] if running else live


def exec_in(cluster: Cluster, namespace: str, pod: str, script: str, check: bool = True) -> str:
    """`sh -c script` inside the pod's app container (kubectl exec: apiserver -> kubelet -> containerd)."""
    out = cluster.kubectl("exec", "-n", namespace, pod, "-c", "app", "--", "sh", "-c", script, check=check)
    return out.stdout


def service_url(cluster: Cluster, namespace: str, name: str, path: str = "/") -> str:
    svc = json.loads(cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json").stdout)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}{path}"


def http_get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http_get(url)[0] == 200
        except OSError:
            return False

    return check


# -- the node itself -------------------------------------------------------------------------------------------
def test_real_node_is_ready_tainted_and_its_pods_answer_from_the_node_and_other_pods(
    cluster: Cluster, real_node: RealNode, real_ns: str, registry_plain: RegistryServer, images: dict[str, str]
) -> None:
    node = json.loads(cluster.kubectl("get", "node", real_node.name, "-o", "json").stdout)
    assert node["metadata"]["labels"][NODE_LABEL] == NODE_VALUE
    assert TAINT in [{k: t[k] for k in ("key", "value", "effect")} for t in node["spec"]["taints"]]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"

    # A plain pod in the placed namespace: admission gives it the node selector and the toleration.
    for name in ("server", "client"):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": real_ns, "labels": {"role": name}},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "app",
                        "image": images["web"],
                        "env": [{"name": "PORT", "value": "8080"}],
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }
                ],
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "-n", real_ns, "--for=condition=Ready", "pod/server", "pod/client", "--timeout=90s")
    server = json.loads(cluster.kubectl("get", "pod", "server", "-n", real_ns, "-o", "json").stdout)
    assert server["spec"]["nodeName"] == real_node.name
    assert server["spec"]["nodeSelector"] == {NODE_LABEL: NODE_VALUE}
    # the kubelet, not the pull agent, reported it: a real container id from containerd
    assert server["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    ip = server["status"]["podIP"]
    status, body = http_get(f"http://{ip}:8080/")  # the node reaches the pod
    assert (status, body) == (200, "hello from a wharf test image\n")
    seen = exec_in(cluster, real_ns, "client", f"wget -q -O - http://{ip}:8080/")  # pod to pod
    assert seen == "hello from a wharf test image\n"
    logs = cluster.kubectl("logs", "-n", real_ns, "server").stdout
    assert "serving as 1001 on 8080" in logs


# -- S6: the app answers HTTP on PORT through the Service --------------------------------------------------------
def test_app_answers_http_on_port_through_its_service(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    op.apply(app_resource("web", real_ns, images["web"], instances=2))
    app = wait_ready(op, "web", real_ns, real_node)
    assert app["status"]["port"] == 8080  # S6: the lowest EXPOSEd port
    url = service_url(op.cluster, real_ns, "web")
    assert url.endswith(":8080/")
    assert poll(answers(url), 20, 0.5), f"{url} never answered\n{real_node.logs(20)}"  # node -> ClusterIP
    assert http_get(url)[1] == "hello from a wharf test image\n"
    # from a pod of another App, through the Service's ClusterIP
    op.apply(app_resource("client", real_ns, images["shell"], **{"health-check-type": "process"}))
    wait_ready(op, "client", real_ns, real_node)
    (client,) = app_pods(op.cluster, real_ns, "client")
    assert exec_in(op.cluster, real_ns, client["metadata"]["name"], f"wget -q -O - {url}") == (
        "hello from a wharf test image\n"
    )
    for pod in app_pods(op.cluster, real_ns, "web"):
        assert pod["spec"]["nodeName"] == real_node.name
        assert "serving as 1001 on 8080" in op.cluster.kubectl("logs", "-n", real_ns, pod["metadata"]["name"]).stdout


# -- S5: a manifest command runs under `sh -c` ----------------------------------------------------------------
def test_command_expands_port_substitution_and_pid_as_sh_c_does(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    command = 'echo "port=$PORT sub=$(echo hi) pid=$$ kube=$(PORT)" > /tmp/start.txt; exec httpd -f -p "$PORT" -h /www'
    op.apply(app_resource("cmd", real_ns, images["web"], command=command))
    wait_ready(op, "cmd", real_ns, real_node)
    (pod,) = app_pods(op.cluster, real_ns, "cmd")
    seen = exec_in(op.cluster, real_ns, pod["metadata"]["name"], "cat /tmp/start.txt").strip()
    # $PORT is the platform's; $(...) is command substitution; $$ the shell's pid (1: sh is the container's
    # process); `$(PORT)` is not the kubelet's variable reference but sh's command substitution of a missing
    # command, which prints nothing (so the kubelet did not touch the command).
    assert seen == "port=8080 sub=hi pid=1 kube=", seen
    assert poll(answers(service_url(op.cluster, real_ns, "cmd")), 20, 0.5)


# -- S7: the uid the status says; port 80 for a non-root uid ------------------------------------------------------
@pytest.mark.parametrize("image", ["web-root", "web-named"])
def test_root_or_named_user_runs_as_the_uid_the_status_says(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str], image: str
) -> None:
    op = wharf_operator
    op.apply(app_resource("who", real_ns, images[image]))
    app = wait_ready(op, "who", real_ns, real_node)
    assert app["status"]["runAsUser"] == DEFAULT_UID
    (pod,) = app_pods(op.cluster, real_ns, "who")
    assert exec_in(op.cluster, real_ns, pod["metadata"]["name"], "id -u").strip() == str(DEFAULT_UID)
    assert poll(answers(service_url(op.cluster, real_ns, "who")), 20, 0.5)


def test_port_80_is_served_by_a_non_root_uid(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    op.apply(app_resource("low", real_ns, images["web-port-80"]))
    app = wait_ready(op, "low", real_ns, real_node)
    assert (app["status"]["port"], app["status"]["runAsUser"]) == (80, 1001)
    (pod,) = app_pods(op.cluster, real_ns, "low")
    assert exec_in(op.cluster, real_ns, pod["metadata"]["name"], "id -u").strip() == "1001"
    url = service_url(op.cluster, real_ns, "low")
    assert url.endswith(":80/")
    assert poll(answers(url), 20, 0.5)


# -- S8: ephemeral storage, emptyDir only ---------------------------------------------------------------------
def test_root_filesystem_is_not_writable_and_the_binding_emptydir_works_within_its_size(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    op.cluster.kubectl("create", "secret", "generic", "db", "-n", real_ns, "--from-literal=password=pw")
    op.apply(app_resource("disk", real_ns, images["web"], services=["db"]))
    wait_ready(op, "disk", real_ns, real_node)
    (pod,) = app_pods(op.cluster, real_ns, "disk")
    name = pod["metadata"]["name"]
    assert exec_in(op.cluster, real_ns, name, "touch /x 2>&1; echo rc=$?").strip().endswith("rc=1")
    assert exec_in(op.cluster, real_ns, name, "cat /bindings/db/password") == "pw"
    # the bindings emptyDir: memory-backed, its sizeLimit is the tmpfs size, read-only for the app
    df = exec_in(op.cluster, real_ns, name, "df -k /bindings | tail -n 1").split()
    assert df[:2] == ["tmpfs", "1024"], df
    assert "rc=1" in exec_in(op.cluster, real_ns, name, "touch /bindings/x 2>&1; echo rc=$?")
    volumes = pod["spec"]["volumes"]
    assert all(set(v) - {"name"} <= {"emptyDir"} for v in volumes if v["name"] != "kube-api-access"), volumes


# -- S9, S11: the environment and the binding files, read from inside ---------------------------------------------
def test_vcap_and_cf_instance_variables_and_binding_files_inside_the_container(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    op.cluster.kubectl(
        "create", "secret", "generic", "mydb", "-n", real_ns, "--from-literal=uri=postgres://u:p@db/x",
        "--from-literal=type=postgresql",
    )  # fmt: skip
    op.cluster.kubectl("create", "secret", "generic", "cache", "-n", real_ns, "--from-literal=host=redis")
    # a binding name starting with `-` and holding a space: a directory of that name, as written
    services = ["mydb", {"name": "cache", "binding_name": "-my cache"}]
    manifest = {"env": {"GREETING": "hello $USER"}, "services": services, "routes": [{"route": "env.example.com"}]}
    op.apply(app_resource("env", real_ns, images["web"], **manifest))
    wait_ready(op, "env", real_ns, real_node)
    (pod,) = app_pods(op.cluster, real_ns, "env")
    name = pod["metadata"]["name"]
    env = dict(
        line.split("=", 1)
        for line in exec_in(op.cluster, real_ns, name, "env -0 | tr '\\0' '\\n'").splitlines()
        if "=" in line
    )
    vcap = json.loads(env["VCAP_APPLICATION"])
    assert vcap["application_name"] == "env"
    assert vcap["space_name"] == real_ns
    assert vcap["port"] == 8080
    assert vcap["uris"] == ["env.example.com"]  # S11: the routes
    assert vcap["instance_id"] == pod["metadata"]["uid"]
    assert env["GREETING"] == "hello $USER"  # manifest env is literal
    assert env["PORT"] == "8080"
    assert env["CF_INSTANCE_GUID"] == pod["metadata"]["uid"]
    assert env["CF_INSTANCE_INTERNAL_IP"] == pod["status"]["podIP"]
    assert env["CF_INSTANCE_IP"] == pod["status"]["hostIP"] == real_node.ip
    assert env["CF_INSTANCE_ADDR"] == f"{pod['status']['podIP']}:8080"
    vcap_services = json.loads(env["VCAP_SERVICES"])
    bound = {s["name"]: s["credentials"] for entries in vcap_services.values() for s in entries}
    assert bound == {"mydb": {"uri": "postgres://u:p@db/x", "type": "postgresql"}, "-my cache": {"host": "redis"}}
    files = exec_in(
        op.cluster, real_ns, name, 'cd "$SERVICE_BINDING_ROOT" && for f in */*; do echo "$f=$(cat "./$f")"; done'
    ).splitlines()
    assert sorted(files) == [
        "-my cache/host=redis",
        "-my cache/type=user-provided",
        "mydb/type=postgresql",
        "mydb/uri=postgres://u:p@db/x",
    ]


# -- S10: health checks --------------------------------------------------------------------------------------------
def restarts(cluster: Cluster, namespace: str, app: str) -> int:
    return sum(
        s.get("restartCount", 0)
        for p in app_pods(cluster, namespace, app, running=False)
        for s in p["status"].get("containerStatuses", [])
    )


def test_health_checks_pass_for_healthy_apps(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    slow = 'sleep 6; exec httpd -f -p "$PORT" -h /www'  # listens after 6 s: within a 30 s allowance
    cases = {
        "port": app_resource("hc-port", real_ns, images["web"], **{"health-check-type": "port"}),
        "http": app_resource(
            "hc-http", real_ns, images["web"],
            **{"health-check-type": "http", "health-check-http-endpoint": "/index.html"},
        ),
        "process": app_resource("hc-process", real_ns, images["shell"], **{"health-check-type": "process"}),
        "slow": app_resource("hc-slow", real_ns, images["web"], command=slow, timeout=30),
    }  # fmt: skip
    for body in cases.values():
        op.apply(body)
    for body in cases.values():
        wait_ready(op, body["metadata"]["name"], real_ns, real_node)
    time.sleep(3)  # a liveness check after start would have restarted a failing one by now
    for body in cases.values():
        assert restarts(op.cluster, real_ns, body["metadata"]["name"]) == 0, body["metadata"]["name"]


@pytest.mark.parametrize(
    ("check", "manifest"),
    [
        # nothing listens on PORT: the TCP check fails
        ("port", {"command": "exec httpd -f -p 9999 -h /www", "timeout": 3}),
        # the endpoint answers 404
        ("http", {"health-check-type": "http", "health-check-http-endpoint": "/missing", "timeout": 3}),
        # the process exits
        ("process", {"health-check-type": "process", "command": "sleep 2; exit 3"}),
        # the healthy test's slow starter, with a start-up allowance shorter than its start: `timeout` is the allowance
        ("slow start", {"command": 'sleep 12; exec httpd -f -p "$PORT" -h /www', "timeout": 3}),
    ],
)
def test_a_broken_app_is_restarted_after_its_start_up_allowance(
    wharf_operator: Operator,
    real_node: RealNode,
    real_ns: str,
    images: dict[str, str],
    check: str,
    manifest: dict[str, Any],
) -> None:
    op = wharf_operator
    op.apply(app_resource("broken", real_ns, images["web"], **manifest))
    restarted = op.wait_for(
        f"a restart of the broken ({check}) app", lambda: restarts(op.cluster, real_ns, "broken") >= 1, timeout=60
    )
    assert restarted
    # and the App says it is not ready (the process type's restarted container runs a moment before it crashes)
    op.wait_for("the broken app Ready False", lambda: ready_condition(op, "broken", real_ns).get("status") == "False")


# -- S15: a rolling restart keeps the app answering --------------------------------------------------------------
def test_rolling_restart_keeps_the_app_answering(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, images: dict[str, str]
) -> None:
    op = wharf_operator
    op.apply(app_resource("roll", real_ns, images["web"], instances=2))
    wait_ready(op, "roll", real_ns, real_node)
    url = service_url(op.cluster, real_ns, "roll")
    assert poll(answers(url), 20, 0.5)
    before = {p["metadata"]["name"] for p in app_pods(op.cluster, real_ns, "roll")}
    failures: list[str] = []
    requests = 0
    stop = threading.Event()

    def hammer() -> None:  # a client asking every 20 ms through the Service while the pods are replaced
        nonlocal requests
        while not stop.is_set():
            requests += 1
            try:
                status, _ = http_get(url, timeout=2)
                if status != 200:
                    failures.append(f"HTTP {status}")
            except OSError as e:
                failures.append(str(e))
            time.sleep(0.02)

    client = threading.Thread(target=hammer, daemon=True)
    client.start()
    try:
        op.apply(
            app_resource("roll", real_ns, images["web"], spec={"restartedAt": "2026-01-01T00:00:00Z"}, instances=2)
        )

        def replaced() -> bool:
            now = {p["metadata"]["name"] for p in app_pods(op.cluster, real_ns, "roll", running=False)}
            return not (now & before) and len(app_pods(op.cluster, real_ns, "roll")) == 2

        op.wait_for("both instances replaced and the old ones gone", replaced, timeout=120)
        time.sleep(2)  # and a moment after the last old pod is gone
    finally:
        stop.set()
        client.join(timeout=10)
    assert requests > 100
    assert failures == [], f"{len(failures)} of {requests} requests failed during the restart: {failures[:5]}"


# -- S12: containerd pulls over TLS with the pods' credentials (Basic and Bearer tokens) -------------------------------
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_private_tls_registry_images_are_pulled_with_the_apps_credentials_and_run(
    wharf_operator: Operator,
    real_node: RealNode,
    real_ns: str,
    registry_basic: RegistryServer,
    registry_token: RegistryServer,
    mode: str,
) -> None:
    op = wharf_operator
    registry = registry_basic if mode == "basic" else registry_token
    push_image(registry, "run/private", "1", RUNNABLE_IMAGES["web"])
    password = base64.b64encode(str(registry.password).encode()).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": real_ns}}
    op.cluster.kubectl("apply", "-f", "-", input=json.dumps({**secret, "data": {"password": password}}))
    auth = {"dockerUsername": registry.username, "dockerPasswordSecretRef": {"name": "creds", "key": "password"}}
    op.apply(app_resource("private", real_ns, f"{registry.host}/run/private:1", spec=auth))
    wait_ready(op, "private", real_ns, real_node)
    (pod,) = app_pods(op.cluster, real_ns, "private")
    assert pod["spec"]["imagePullSecrets"], pod["spec"]  # containerd got the credentials from the kubelet
    assert poll(answers(service_url(op.cluster, real_ns, "private")), 20, 0.5)


# -- S14: the kubelet's own pull errors, within seconds -------------------------------------------------------------
def _scale_and_expect_pull_failure(
    op: Operator, namespace: str, image: str, reason: str, words: str, **spec: Any
) -> None:
    """The App resolved with no instance; the registry then stops serving it; a scale to one makes the real
    kubelet pull and fail, and the App says so within seconds."""
    op.apply(app_resource("pull", namespace, image, spec=spec, instances=1))
    started = time.monotonic()

    def failing() -> dict[str, Any] | None:
        ready = op.condition("pull", namespace)
        return ready if ready.get("reason") == reason else None

    ready = op.wait_for(f"Ready reason {reason}", failing, timeout=30)
    elapsed = time.monotonic() - started
    assert ready["status"] == "False"
    assert ready["message"].startswith("Failed to create container:"), ready
    assert "ErrImagePull" in ready["message"] or "ImagePullBackOff" in ready["message"], ready
    assert words in ready["message"].lower(), ready
    (pod,) = app_pods(op.cluster, namespace, "pull", running=False)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff"), waiting
    assert pod["spec"]["nodeName"]  # a real kubelet said it
    assert elapsed < 30


def test_missing_manifest_is_the_kubelets_not_found(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, registry_plain: RegistryServer
) -> None:
    op = wharf_operator
    repo = f"pull/missing-{uuid.uuid4().hex[:6]}"
    digest = push_image(registry_plain, repo, "1", RUNNABLE_IMAGES["web"])
    image = f"{registry_plain.host}/{repo}:1"
    op.apply(app_resource("pull", real_ns, image, instances=0))
    wait_ready(op, "pull", real_ns, real_node)
    httpx.delete(f"{registry_plain.url}/v2/{repo}/manifests/{digest}").raise_for_status()
    _scale_and_expect_pull_failure(op, real_ns, image, "ImageNotFound", "not found")


def test_wrong_password_is_the_kubelets_unauthorized(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, registry_ca: CA, tmp_path: Any
) -> None:
    op = wharf_operator
    with RegistryServer("basic", ca=registry_ca, workdir=tmp_path / "registry") as registry:
        op.cluster.trust_registry(registry)
        push_image(registry, "pull/private", "1", RUNNABLE_IMAGES["web"])
        image = f"{registry.host}/pull/private:1"
        password = base64.b64encode(str(registry.password).encode()).decode()
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": real_ns}}
        op.cluster.kubectl("apply", "-f", "-", input=json.dumps({**secret, "data": {"password": password}}))
        auth = {"dockerUsername": registry.username, "dockerPasswordSecretRef": {"name": "creds", "key": "password"}}
        op.apply(app_resource("pull", real_ns, image, spec=auth, instances=0))
        wait_ready(op, "pull", real_ns, real_node)
        registry.stop()
        registry.password = "another-Pa55word"  # the registry now refuses the App's (and the pull Secret's) password
        registry.start()
        _scale_and_expect_pull_failure(op, real_ns, image, "ImagePullUnauthorized", "401", **auth)


def test_stopped_registry_is_the_kubelets_connection_refused(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, outage_registry: RegistryServer
) -> None:
    op = wharf_operator
    push_image(outage_registry, "pull/outage", "1", RUNNABLE_IMAGES["web"])
    image = f"{outage_registry.host}/pull/outage:1"
    op.apply(app_resource("pull", real_ns, image, instances=0))
    wait_ready(op, "pull", real_ns, real_node)
    outage_registry.stop()
    _scale_and_expect_pull_failure(op, real_ns, image, "RegistryUnavailable", "connection refused")
