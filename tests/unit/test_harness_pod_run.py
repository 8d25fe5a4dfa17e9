"""harness.pod_run: the process the kubelet would start for the chart's operator pod (what the Flux trial runs by
runc), from the pod template `helm template` renders: the chart's command and args, its env values and the pod's
name for POD_ID, the container's ports moved to free loopback ports wherever the args and env name them."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.fixtures_cluster import locate_binaries
from harness.pod_run import container_process

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "wharf"
APISERVER = "https://127.0.0.1:6443"


def chart_pod() -> dict[str, Any]:
    """The chart's operator pod as the apiserver would hold it: its Deployment's template, named and placed."""
    out = subprocess.run(
        [str(locate_binaries() / "helm"), "template", "wharf", str(CHART), "--namespace", "wharf-system"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    template = deployment["spec"]["template"]
    metadata = {**template["metadata"], "name": "wharf-5d9c7f-abcde", "namespace": "wharf-system", "uid": "u-1"}
    return {"metadata": metadata, "spec": template["spec"]}


def test_the_chart_pod_runs_its_own_command_with_its_ports_moved() -> None:
    argv, env, ports = container_process(APISERVER, chart_pod(), "operator")
    assert set(ports) == {9090, 8080}  # metrics, health (values.yaml)
    assert all(port not in (9090, 8080) for port in ports.values())
    assert argv == [
        "wharf",
        "run",
        "--all-namespaces",
        "--standalone",
        f"--liveness=http://0.0.0.0:{ports[8080]}/healthz",
    ]
    assert env["WHARF_METRICS_PORT"] == str(ports[9090])
    assert env["POD_ID"] == "wharf-5d9c7f-abcde"  # valueFrom.fieldRef metadata.name
    assert env["WHARF_LOG_LEVEL"] == "INFO"
    assert env["WHARF_NAMESPACES"] == ""
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "6443")
    assert not any(re.search(r":(9090|8080)\b", a) for a in argv)


def test_an_empty_value_the_apiserver_left_out_is_empty() -> None:
    pod = chart_pod()
    for entry in pod["spec"]["containers"][0]["env"]:
        if entry.get("value") == "":
            del entry["value"]  # the apiserver drops `value: ""` from what it stores
    _, env, _ = container_process(APISERVER, pod, "operator")
    assert env["WHARF_NAMESPACES"] == ""


def test_a_value_source_it_cannot_resolve_fails_naming_it() -> None:
    pod = copy.deepcopy(chart_pod())
    pod["spec"]["containers"][0]["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    )
    with pytest.raises(AssertionError, match="env TOKEN"):
        container_process(APISERVER, pod, "operator")
