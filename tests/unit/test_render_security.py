"""S7 (non-privileged, always; who the container runs as) and S8 (only emptyDir volumes), and the `restricted`
checker itself."""

from __future__ import annotations

from typing import Any

import pytest
from render_support import (
    assert_restricted,
    deployment,
    make_app,
    make_facts,
    pod_specs,
    render_ok,
    restricted_violations,
)

from wharf.api.conditions import Reason
from wharf.config import RootUserPolicy, Settings
from wharf.render import RenderError, render
from wharf.render.security import UNPRIVILEGED_PORT_SYSCTL

EVERYTHING = {
    "command": "./web",
    "disk_quota": "2G",
    "services": ["db"],
    "sidecars": [{"name": "agent", "process_types": ["web", "worker"], "command": "agent", "memory": "64M"}],
    "processes": [{"type": "worker", "instances": 2, "command": "./work"}],
    "routes": [{"route": "shop.example.com"}],
}


def _pod(user: str, policy: RootUserPolicy = RootUserPolicy.RUN_AS_NON_ROOT, ports: tuple[int, ...] = ()) -> Any:
    rendered = render_ok(make_app(), make_facts(ports, user=user), Settings(root_user_policy=policy))
    assert_restricted(rendered)
    return deployment(rendered)["spec"]["template"]["spec"], rendered


@pytest.mark.parametrize(
    "settings",
    [Settings(), Settings(root_user_policy=RootUserPolicy.USER_NAMESPACE)],
)
@pytest.mark.parametrize("user", ["1000", "", "root", "0", "nginx", "65534:65534"])
@pytest.mark.parametrize("ports", [(), (80,), (22, 8080)])
def test_every_rendered_pod_is_restricted_compliant(settings: Settings, user: str, ports: tuple[int, ...]) -> None:
    # S7
    rendered = render_ok(
        make_app(EVERYTHING, dockerUsername="bob", dockerPasswordSecretRef={"name": "registry-password"}),
        make_facts(ports, user=user),
        settings,
        registry_password="pw",
    )
    assert_restricted(rendered)
    assert len(list(pod_specs(rendered))) == 2


def test_security_contexts_are_the_restricted_ones() -> None:
    # S7
    pod, _ = _pod("1000")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["runAsNonRoot"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize(
    ("user", "uid", "gid"), [("1000", 1000, None), ("1000:3000", 1000, 3000), ("65534", 65534, None)]
)
def test_numeric_non_root_user_is_kept(user: str, uid: int, gid: int | None) -> None:
    # S7
    pod, rendered = _pod(user)
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"].get("runAsGroup") == gid
    assert rendered.run_as.uid == uid
    assert "hostUsers" not in pod


@pytest.mark.parametrize("user", ["", "root", "0", "0:0", "root:root", "nginx", "www-data:www-data"])
def test_root_and_non_numeric_users_run_as_the_default_uid(user: str) -> None:
    # S7: run-as-non-root policy (the default)
    pod, rendered = _pod(user)
    assert pod["securityContext"]["runAsUser"] == 2000
    assert pod["securityContext"]["runAsGroup"] == 2000
    assert rendered.run_as.uid == 2000
    assert "uid 2000" in rendered.run_as.note


def test_default_uid_comes_from_the_settings() -> None:
    # S7
    rendered = render_ok(make_app(), make_facts(user="root"), Settings(default_uid=4242))
    assert deployment(rendered)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 4242


@pytest.mark.parametrize("user", ["", "root", "0", "nginx"])
def test_refuse_policy_refuses_root_and_non_numeric_users(user: str) -> None:
    # S7
    with pytest.raises(RenderError) as raised:
        render(make_app(), make_facts(user=user), Settings(root_user_policy=RootUserPolicy.REFUSE))
    assert raised.value.reason is Reason.ROOT_USER_REFUSED
    assert "USER" in raised.value.message


def test_refuse_policy_runs_numeric_non_root_users() -> None:
    # S7
    rendered = render_ok(make_app(), make_facts(user="1001"), Settings(root_user_policy=RootUserPolicy.REFUSE))
    assert deployment(rendered)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1001


def test_user_namespace_policy_sets_host_users_false() -> None:
    # S7
    pod, rendered = _pod("root", RootUserPolicy.USER_NAMESPACE)
    assert pod["hostUsers"] is False
    assert pod["securityContext"]["runAsUser"] == 2000
    assert rendered.run_as.user_namespace is True


@pytest.mark.parametrize(("ports", "sysctl"), [((80,), "80"), ((443, 8443), "443"), ((1023,), "1023")])
def test_low_ports_get_the_unprivileged_port_sysctl(ports: tuple[int, ...], sysctl: str) -> None:
    # S7: ports below 1024 with a non-root user
    pod, _ = _pod("1000", ports=ports)
    assert pod["securityContext"]["sysctls"] == [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": sysctl}]


@pytest.mark.parametrize("ports", [(1024,), (8080, 9090), ()])
def test_no_sysctl_for_high_ports(ports: tuple[int, ...]) -> None:
    # S7
    pod, _ = _pod("1000", ports=ports)
    assert "sysctls" not in pod["securityContext"]


def test_low_spec_port_gets_the_sysctl_too() -> None:
    # S6, S7
    rendered = render_ok(make_app(ports=[8080, 443]), make_facts((8080,)))
    sysctls = deployment(rendered)["spec"]["template"]["spec"]["securityContext"]["sysctls"]
    assert sysctls == [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": "443"}]


@pytest.mark.parametrize("user", ["1000", "root"])
def test_only_empty_dir_volumes_on_every_pod(user: str) -> None:
    # S8: no volume other than emptyDir, on every rendered pod spec
    rendered = render_ok(make_app(EVERYTHING), make_facts(user=user))
    for pod in pod_specs(rendered):
        for volume in pod.get("volumes", []):
            assert set(volume) == {"name", "emptyDir"}
        for container in pod["containers"]:
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.get("volumes", [])}
        assert "persistentVolumeClaim" not in repr(pod)
        assert "hostPath" not in repr(pod)


# The checker must catch what it claims to catch, or the tests above prove nothing.
_GOOD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
}


@pytest.mark.parametrize(
    "breakage",
    [
        {"hostNetwork": True},
        {"hostPID": True},
        {"hostIPC": True},
        {"volumes": [{"name": "v", "hostPath": {"path": "/"}}]},
        {"volumes": [{"name": "v", "nfs": {"server": "x", "path": "/"}}]},
        {"securityContext": {**_GOOD["securityContext"], "runAsUser": 0}},
        {"securityContext": {**_GOOD["securityContext"], "runAsNonRoot": False}},
        {"securityContext": {**_GOOD["securityContext"], "seccompProfile": {"type": "Unconfined"}}},
        {"securityContext": {**_GOOD["securityContext"], "sysctls": [{"name": "kernel.msgmax", "value": "1"}]}},
        {
            "containers": [
                {
                    "name": "c",
                    "securityContext": {
                        "privileged": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ]
        },
        {"containers": [{"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]},
        {"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False}}]},
        {
            "containers": [
                {
                    "name": "c",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                    },
                }
            ]
        },
        {
            "containers": [
                {
                    "name": "c",
                    "ports": [{"containerPort": 80, "hostPort": 80}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ]
        },
    ],
)
def test_the_restricted_checker_catches_violations(breakage: dict[str, Any]) -> None:
    # S7
    assert restricted_violations(_GOOD) == []
    assert restricted_violations({**_GOOD, **breakage}) != []


def test_the_restricted_checker_allows_net_bind_service_and_safe_sysctls() -> None:
    # S7
    pod = {
        **_GOOD,
        "securityContext": {**_GOOD["securityContext"], "sysctls": [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": "80"}]},
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
            }
        ],
    }
    assert restricted_violations(pod) == []
