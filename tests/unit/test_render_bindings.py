"""Service bindings as files, servicebinding.io style, within S8 (emptyDir only).

The init container's script runs here under the shells images carry, as the kubelet would start it (its own
`$(VAR)` expansion, harness.kubelet): each `secretKeyRef` resolved from the rendered services Secret.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from render_support import (
    assert_restricted,
    deployment,
    env_of,
    main_container,
    make_app,
    of_kind,
    pod_specs,
    render_ok,
)

from harness.kubelet import Kubelet
from wharf.render.bindings import DEFAULT_TYPE, INIT_CONTAINER, ROOT, VOLUME

CREDENTIALS = {
    "db": {"uri": "postgres://u:p@db:5432/shop", "password": 'it\'s "quoted" $HOME `x`\n', "type": "postgresql"},
    "cache": {"host": "redis", "port": "6379", "tls.crt": "-----BEGIN CERTIFICATE-----\nMII\n-----END-----\n"},
}
SERVICES: list[Any] = ["db", {"name": "cache", "binding_name": "my cache"}]


def _rendered(**manifest: Any) -> Any:
    return render_ok(make_app({"services": SERVICES, **manifest}), service_credentials=CREDENTIALS)


def _services_secret(rendered: Any) -> dict[str, str]:
    (secret,) = [o for o in of_kind(rendered, "Secret") if o["metadata"]["name"] == "shop-vcap-services"]
    data: dict[str, str] = secret["stringData"]
    return data


def _init(rendered: Any, process_type: str = "web") -> dict[str, Any]:
    (init,) = deployment(rendered, process_type)["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == INIT_CONTAINER
    return dict(init)


def test_bindings_are_a_memory_emptydir_written_by_an_init_container_and_mounted_read_only() -> None:
    # S8: the only volume is an emptyDir; every container of the pod sees the files under SERVICE_BINDING_ROOT
    rendered = _rendered(sidecars=[{"name": "agent", "command": "agent", "process_types": ["web"]}])
    (spec,) = pod_specs(rendered)
    assert spec["volumes"] == [{"name": VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}]
    init = _init(rendered)
    assert init["image"] == main_container(rendered)["image"]
    assert init["command"][:2] == ["sh", "-c"]
    assert init["volumeMounts"] == [{"name": VOLUME, "mountPath": ROOT}]
    assert init["resources"] == main_container(rendered)["resources"]
    for container in spec["containers"]:
        assert container["volumeMounts"] == [{"name": VOLUME, "mountPath": ROOT, "readOnly": True}]
        assert env_of(container)["SERVICE_BINDING_ROOT"] == ROOT
    assert_restricted(rendered)


def test_no_credential_sits_in_the_deployment() -> None:
    rendered = _rendered()
    text = json.dumps(of_kind(rendered, "Deployment"))
    for values in CREDENTIALS.values():
        for value in values.values():
            assert json.dumps(value)[1:-1] not in text
    init = _init(rendered)
    refs = [e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e]
    assert {r["name"] for r in refs} == {"shop-vcap-services"}
    data = _services_secret(rendered)
    assert sorted(r["key"] for r in refs) == sorted(k for k in data if k != "VCAP_SERVICES")


def test_without_services_there_is_no_volume_init_container_or_binding_root() -> None:
    rendered = render_ok(make_app({"env": {"SERVICE_BINDING_ROOT": "/mine"}}))
    (spec,) = pod_specs(rendered)
    assert "volumes" not in spec
    assert "initContainers" not in spec
    assert "volumeMounts" not in main_container(rendered)
    # the platform does not set it here, so the manifest's value stands (S9)
    assert env_of(main_container(rendered))["SERVICE_BINDING_ROOT"] == "/mine"


def test_platform_binding_root_wins_over_the_manifest() -> None:
    # S9: platform values win
    rendered = _rendered(env={"SERVICE_BINDING_ROOT": "/mine"})
    assert [e for e in main_container(rendered)["env"] if e["name"] == "SERVICE_BINDING_ROOT"] == [
        {"name": "SERVICE_BINDING_ROOT", "value": ROOT}
    ]


def test_every_process_type_gets_the_bindings() -> None:
    rendered = _rendered(processes=[{"type": "worker", "instances": 1}])
    assert _init(rendered, "worker")["command"] == _init(rendered)["command"]


@pytest.mark.parametrize("bad", ["a/b", ".", "..", ""])
def test_a_binding_name_that_cannot_be_a_directory_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="names the binding's directory"):
        make_app({"services": [{"name": "db", "binding_name": bad}]})


@pytest.mark.parametrize(
    "services",
    [["db", "db"], ["db", {"name": "db", "binding_name": "other"}], ["db", {"name": "cache", "binding_name": "db"}]],
)
def test_each_service_is_bound_once_under_its_own_name(services: list[Any]) -> None:
    # CF binds an instance to an app once; two bindings sharing a name would share a directory
    with pytest.raises(ValidationError, match="must be unique"):
        make_app({"services": services})


def _run_init(kubelet: Kubelet, shell: list[str], rendered: Any, root: Path) -> subprocess.CompletedProcess[str]:
    """The init container as the kubelet runs it: env resolved (secretKeyRef from the Secret), command expanded, the
    mount at `root`."""
    init, data = _init(rendered), _services_secret(rendered)
    secret_refs = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in init["env"] if "valueFrom" in v}
    (started,) = kubelet.start([init], {name: data[key] for name, key in secret_refs.items()})
    env = {**started.env, "PATH": os.environ["PATH"], "SERVICE_BINDING_ROOT": str(root)}
    return subprocess.run([*shell, *started.command[1:]], env=env, capture_output=True, text=True, timeout=10)


def _tree(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): path.read_text() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_init_script_writes_each_binding_as_files(kubelet: Kubelet, shell: list[str], tmp_path: Path) -> None:
    result = _run_init(kubelet, shell, _rendered(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path) == {
        "db/uri": CREDENTIALS["db"]["uri"],
        "db/password": CREDENTIALS["db"]["password"],  # byte for byte: quotes, `$`, backquotes, trailing newline
        "db/type": "postgresql",  # the Secret's own type
        "my cache/host": "redis",
        "my cache/port": "6379",
        "my cache/tls.crt": CREDENTIALS["cache"]["tls.crt"],
        "my cache/type": DEFAULT_TYPE,  # servicebinding.io requires a type
    }
    assert stat.S_IMODE((tmp_path / "db" / "password").stat().st_mode) == 0o600
    # a restarted pod runs its init container again over the same emptyDir
    assert _run_init(kubelet, shell, _rendered(), tmp_path).returncode == 0
    assert (tmp_path / "db" / "uri").read_text() == CREDENTIALS["db"]["uri"]


def test_a_missing_secret_still_gets_its_directory_and_type(kubelet: Kubelet, shell: list[str], tmp_path: Path) -> None:
    rendered = render_ok(make_app({"services": ["gone"]}), service_credentials={})
    assert _run_init(kubelet, shell, rendered, tmp_path).returncode == 0
    assert _tree(tmp_path) == {"gone/type": DEFAULT_TYPE}


@pytest.mark.parametrize("name", ["db $$ $(PORT) $HOME `x`", "-x", "--help"])
def test_a_binding_name_is_the_directory_name_as_written(
    kubelet: Kubelet, shell: list[str], tmp_path: Path, name: str
) -> None:
    # `$` in a binding name reaches the shell as written: the kubelet's `$(VAR)` and `$$` are kept out; a name
    # starting with `-` is a directory, not an option of mkdir (the init container failed in every shell before)
    services = [{"name": "db", "binding_name": name}]
    rendered = render_ok(make_app({"services": services}), service_credentials={"db": {"uri": "postgres://x"}})
    result = _run_init(kubelet, shell, rendered, tmp_path)
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path) == {f"{name}/uri": "postgres://x", f"{name}/type": DEFAULT_TYPE}


def test_a_missing_bound_secret_is_a_warning_saying_what_to_create() -> None:
    rendered = render_ok(make_app({"services": ["db", "gone"]}), service_credentials={"db": {"uri": "x"}})
    assert [(w.reason, w.message) for w in rendered.warnings] == [
        (
            "ServiceSecretMissing",
            "service gone is bound but no Secret gone exists in namespace space: create it "
            "(until then the App sees no credentials for it)",
        )
    ]
    assert _rendered().warnings == []
