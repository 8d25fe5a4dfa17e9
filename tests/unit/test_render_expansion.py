"""S5, S9: what the user wrote reaches the shell and the App as written, through the kubelet's `$(VAR)` expansion.

The kubelet rewrites `command`, `args`, env `value`s and exec probe commands (`$(VAR)` -> the value, `$$` -> `$`);
Cloud Foundry does not. The rendered pods go through the kubelet's own code here (harness.kubelet), with the
downward API and service variables a pod would have.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_support import UID, deployment, make_app, make_facts, render_ok

from harness.kubelet import Kubelet, Started
from wharf.render import Rendered
from wharf.render.expansion import literal
from wharf.render.probes import listening_check

POD_UID = "5d3c0f2e-0000-4000-8000-0000000000aa"
DOWNWARD = {"CF_INSTANCE_GUID": POD_UID, "CF_INSTANCE_IP": "192.0.2.10", "CF_INSTANCE_INTERNAL_IP": "10.244.0.7"}
# The kubelet gives every pod the API server's service variables (enableServiceLinks only adds the namespace's).
SERVICE_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

# What people write in CF manifests, and what the kubelet would have rewritten.
COMMANDS = [
    "echo $$ > /tmp/pid && exec ./server",  # the shell's PID
    "./server --port $(PORT)",  # a command substitution of a program named PORT, to the shell
    "exec $HOME/bin/server -p $PORT",
    "./server --listen ${PORT:-8080} --workers $((2 * 4))",
    "echo `date` $(whoami) $(CF_INSTANCE_GUID) $(KUBERNETES_SERVICE_HOST)",  # the last two: the kubelet's names
    "price='$$$5' && echo $price $",  # runs of `$`, a trailing `$`
    "echo $(unclosed",
]
ENV_VALUES = {
    "PID_FILE": "x$$y",
    "TEMPLATE": "$(PORT)",
    "SELF": "$(PID_FILE)",  # a variable declared before it
    "HOST": "$(KUBERNETES_SERVICE_HOST)",
    "HOME_DIR": "$HOME/app",
    "TICKS": "`date`",
    "MONEY": "$$$",
    "LONE": "$",
}


def _pod(kubelet: Kubelet, rendered: Rendered, process_type: str = "web") -> dict[str, Started]:
    spec: dict[str, Any] = deployment(rendered, process_type)["spec"]["template"]["spec"]
    return kubelet.start_pod(spec, DOWNWARD, SERVICE_ENV)


def test_literal_escapes_only_the_dollars_the_kubelet_would_read() -> None:
    # `$$` and `$(` are the kubelet's; `$b`, `${X}` and a trailing `$` pass through it unchanged, so stay readable
    assert literal("a$b$$c$(D)$") == "a$b$$$c$$(D)$"
    assert literal("${HOME} $PORT") == "${HOME} $PORT"
    assert literal("no dollar") == "no dollar"


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_reach_the_shell_as_written(kubelet: Kubelet, command: str) -> None:
    # S5: `sh -c COMMAND` for each process type and each sidecar, COMMAND as the user wrote it
    manifest = {
        "command": command,
        "processes": [{"type": "worker", "instances": 1, "command": command}],
        "sidecars": [{"name": "proxy", "process_types": ["web"], "command": command}],
    }
    rendered = render_ok(make_app(manifest), make_facts((8080,)))
    web = _pod(kubelet, rendered)
    assert web["app"].command == ["sh", "-c", command]
    assert web["sidecar-proxy"].command == ["sh", "-c", command]
    assert _pod(kubelet, rendered, "worker")["app"].command == ["sh", "-c", command]


def test_env_values_reach_the_app_as_written(kubelet: Kubelet) -> None:
    # S9: CF sets manifest values as they are, in the app's and the sidecars' environment
    manifest = {"env": ENV_VALUES, "sidecars": [{"name": "proxy", "process_types": ["web"], "command": "./proxy"}]}
    pod = _pod(kubelet, render_ok(make_app(manifest), make_facts((8080,))))
    for name in ("app", "sidecar-proxy"):
        env = pod[name].env
        assert {key: env[key] for key in ENV_VALUES} == ENV_VALUES


def test_the_platform_references_are_filled_in_by_the_kubelet(kubelet: Kubelet) -> None:
    # S9: CF_INSTANCE_ADDR and VCAP_APPLICATION's instance_id come from the pod, through `$(VAR)`
    rendered = render_ok(make_app({"env": {"X": "$(CF_INSTANCE_GUID)"}}), make_facts((8080,)))
    env = _pod(kubelet, rendered)["app"].env
    assert env["CF_INSTANCE_ADDR"] == "10.244.0.7:8080"
    assert env["CF_INSTANCE_GUID"] == POD_UID
    vcap = json.loads(env["VCAP_APPLICATION"])
    assert vcap["instance_id"] == POD_UID
    assert vcap["application_id"] == UID
    assert env["X"] == "$(CF_INSTANCE_GUID)"  # the user's text is not a reference
    assert env["PORT"] == env["CF_INSTANCE_PORT"] == "8080"
    assert env["MEMORY_LIMIT"] == "1024m"
    assert json.loads(env["CF_INSTANCE_PORTS"]) == [{"internal": 8080, "external": 8080}]


def test_vcap_application_carries_the_name_and_routes_as_written(kubelet: Kubelet) -> None:
    # S9: the CF name and the routes are the user's text
    name, route = "shop $$ $(PORT)", "shop.example.com/a$$b/$(PORT)/$HOME"
    rendered = render_ok(make_app({"name": name, "routes": [{"route": route}]}), make_facts((8080,)))
    vcap = json.loads(_pod(kubelet, rendered)["app"].env["VCAP_APPLICATION"])
    assert vcap["application_name"] == vcap["name"] == name
    assert vcap["uris"] == vcap["application_uris"] == [route]
    assert vcap["instance_id"] == POD_UID


def test_the_several_port_check_runs_as_written(kubelet: Kubelet) -> None:
    # S10: the exec probe's script is the one the shells run in test_port_check_script.py
    manifest = {"readiness-health-check-type": "port"}
    pod = _pod(kubelet, render_ok(make_app(manifest), make_facts((8080, 8443, 9000))))
    check = ["sh", "-c", listening_check((8080, 8443, 9000))]
    assert pod["app"].probes == {"startupProbe": check, "livenessProbe": check, "readinessProbe": check}


# Any text at all, rich in what the kubelet reads (`$`, parentheses, declared names): what the kubelet hands the
# shell and the App is what was written.
TEXT = st.text(
    st.one_of(st.sampled_from("$()PORTV0"), st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=TEXT.filter(bool), values=st.lists(TEXT, min_size=1, max_size=4))
def test_any_command_and_env_value_pass_the_kubelet_unchanged(
    kubelet: Kubelet, command: str, values: list[str]
) -> None:
    # S5, S9
    env = {f"V{index}": value for index, value in enumerate(values)}
    sidecars = [{"name": "side", "process_types": ["web"], "command": command}]
    pod = _pod(kubelet, render_ok(make_app({"command": command, "env": env, "sidecars": sidecars})))
    for name in ("app", "sidecar-side"):
        assert pod[name].command == ["sh", "-c", command]
        assert {key: pod[name].env[key] for key in env} == env
