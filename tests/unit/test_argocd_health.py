"""The Argo CD health check for App (deploy/argocd/health.lua), run by two real Lua interpreters.

Argo CD hands the script the live object as the global `obj` (JSON decoded into Lua tables) and reads the
returned `{status, message}`. Every case runs twice and both must agree:
- lua5.4 (Debian), with a Lua table literal built from JSON;
- Argo CD's own interpreter, gopher-lua v1.1.2, as Argo CD v3.5.7 runs a health script (only the package, base and
  table libraries open, the object decoded as Argo CD decodes it, the result read through gopher-json):
  tests/cluster/argocd-health, built by tests/cluster/build-binaries.sh.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from render_support import make_app, render_ok

from harness.fixtures_cluster import locate_binaries
from wharf.api.app import AppStatus
from wharf.status.compute import Observation, ProcessObservation, compute

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "argocd" / "health.lua"
GITOPS_DOC = REPO / "docs" / "gitops.md"
LUA = shutil.which("lua5.4")  # Debian package lua5.4 (deploy/apt-packages.txt)

_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lua_literal(value: Any) -> str:
    """A Lua table literal for a JSON value, as Argo CD's JSON -> Lua conversion sees it (arrays 1-based,
    null -> nil)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"JSON has no {value}")
        return repr(value)
    if isinstance(value, str):
        # json.dumps escapes quotes, backslashes and control characters as \" \\ \n \uXXXX; Lua 5.4 reads all
        # of them except \uXXXX, which it spells \u{XXXX}.
        return re.sub(r"\\u([0-9a-fA-F]{4})", r"\\u{\1}", json.dumps(value))
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        fields = []
        for key, item in value.items():
            name = key if _LUA_NAME.match(key) else f"[{lua_literal(key)}]"
            fields.append(f"{name} = {lua_literal(item)}")
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


@functools.cache
def argocd_runner() -> Path:
    runner = locate_binaries() / "argocd-health"
    assert runner.exists(), f"{runner} is missing: run tests/cluster/build-binaries.sh"
    return runner


def argocd_health(obj: dict[str, Any], script: Path = SCRIPT) -> tuple[str, str]:
    """(status, message) as Argo CD's gopher-lua gives them for `obj`."""
    done = subprocess.run(
        [str(argocd_runner()), str(script)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result.get("status", ""), result.get("message", "")


def health(obj: dict[str, Any], script: Path = SCRIPT) -> tuple[str, str]:
    """(status, message) from lua5.4, which Argo CD's gopher-lua must give too."""
    lua54 = lua54_health(obj, script)
    gopher = argocd_health(obj, script)
    assert gopher == lua54, f"Argo CD's gopher-lua says {gopher}, lua5.4 says {lua54}"
    return lua54


def lua54_health(obj: dict[str, Any], script: Path = SCRIPT) -> tuple[str, str]:
    assert LUA is not None, "lua5.4 is not installed (apt-get install lua5.4)"
    harness = (
        f"obj = {lua_literal(obj)}\n"
        f"local check = assert(loadfile({lua_literal(str(script))}))\n"
        "local hs = check()\n"
        'io.write(tostring(hs.status), "\\n", tostring(hs.message))\n'
    )
    done = subprocess.run([LUA, "-"], input=harness, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    status, _, message = done.stdout.partition("\n")
    return status, message


def app(generation: int = 2, observed: int | None = 2, *conditions: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": "my-app", "namespace": "default", "generation": generation},
        "spec": {"dockerImage": "nginx"},
        "status": status,
    }


def cond(type_: str, status: str, reason: str, message: str = "", observed: int | None = 2) -> dict[str, Any]:
    c: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if observed is not None:
        c["observedGeneration"] = observed
    return c


def test_lua_literal_round_trips_through_lua() -> None:
    odd = 'quo"te\\ \n \u00e9 \u0001'
    value = {"a": [1, 2.5, True, None], "odd key": odd, "n": {}}
    done = subprocess.run(
        [LUA or "lua5.4", "-e", f"v = {lua_literal(value)}; io.write(v.a[2], '|', v['odd key'], '|', #v.a)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"2.5|{odd}|3"


def test_healthy_when_ready_for_the_current_generation() -> None:
    obj = app(
        2,
        2,
        cond("Ready", "True", "Running", "1/1 instances running"),
        cond("Reconciling", "False", "Running"),
        cond("Stalled", "False", "Running"),
    )
    assert health(obj) == ("Healthy", "1/1 instances running")


def test_progressing_when_the_generation_is_not_observed_yet() -> None:
    # Ready=True describes generation 1; the spec is at 2: the new spec's outcome is unknown.
    obj = app(2, 1, cond("Ready", "True", "Running", "1/1 instances running", observed=1))
    status, message = health(obj)
    assert status == "Progressing"
    assert "generation 2" in message


def test_progressing_while_reconciling() -> None:
    obj = app(
        3,
        3,
        cond("Ready", "False", "Starting", "0/2 instances running", observed=3),
        cond("Reconciling", "True", "Starting", "rolling out", observed=3),
    )
    assert health(obj) == ("Progressing", "0/2 instances running")


def test_progressing_before_any_status() -> None:
    obj = app(1, None)
    del obj["status"]
    assert health(obj)[0] == "Progressing"
    assert health(app(1, None))[0] == "Progressing"  # conditions list empty, nothing observed
    obj["status"] = {"observedGeneration": 0}  # the CRD's default status, before wharf writes one
    assert health(obj)[0] == "Progressing"


def test_progressing_when_the_registry_is_unavailable() -> None:
    # S14: a transient outage recovers on its own; it is not Degraded.
    obj = app(2, 2, cond("Ready", "False", "RegistryUnavailable", "registry.example:5000 is unreachable"))
    assert health(obj) == ("Progressing", "registry.example:5000 is unreachable")


def test_degraded_when_stalled() -> None:
    obj = app(
        4,
        4,
        cond("Ready", "False", "NoStartCommand", "No start command found or specified", observed=4),
        cond("Stalled", "True", "NoStartCommand", "nothing deployed", observed=4),
    )
    assert health(obj) == ("Degraded", "No start command found or specified")


def test_degraded_when_stalled_even_without_a_ready_message() -> None:
    obj = app(4, 4, cond("Stalled", "True", "RootUserRefused", "image runs as root", observed=4))
    assert health(obj) == ("Degraded", "image runs as root")


@pytest.mark.parametrize(
    "reason",
    [
        "ImagePullFailed",
        "ImageNotFound",
        "ImagePullUnauthorized",
        "CrashLoopBackOff",
        "InstancesForbidden",
        "ProgressDeadlineExceeded",
    ],
)
def test_degraded_when_ready_false_for_a_permanent_reason(reason: str) -> None:
    # S14: pull failures surface within seconds; the message carries the kubelet's cause.
    obj = app(
        2,
        2,
        cond("Ready", "False", reason, "Failed to create container: ErrImagePull"),
        cond("Reconciling", "True", "Starting"),
    )
    assert health(obj) == ("Degraded", "Failed to create container: ErrImagePull")


QUOTA = 'web instances cannot be created: pods "x" is forbidden: exceeded quota: no-pods (Deployment shop-web)'
NO_ROOM = "web instances cannot be scheduled: 0/3 nodes are available: 3 Insufficient memory. (pod shop-web-x)"


def test_degraded_when_a_quota_refuses_the_instances() -> None:
    obj = app(
        2,
        2,
        cond("Ready", "False", "InstancesForbidden", QUOTA),
        cond("Reconciling", "False", "None"),
        cond("Stalled", "True", "InstancesForbidden", QUOTA),
    )
    assert health(obj) == ("Degraded", QUOTA)


@pytest.mark.parametrize("reason", ["Unschedulable", "InstancesNotCreated"])
def test_progressing_while_instances_wait_for_room_or_a_retry(reason: str) -> None:
    # A cluster autoscaler may add a node; the ReplicaSet controller retries a refusal that clears by itself.
    obj = app(
        2,
        2,
        cond("Ready", "False", reason, NO_ROOM),
        cond("Reconciling", "True", reason, "waiting for a node with room for the instances"),
        cond("Stalled", "False", "None"),
    )
    assert health(obj) == ("Progressing", NO_ROOM)


def test_degraded_once_the_rollout_passes_its_progress_deadline() -> None:
    # Ready still names the cause; Stalled (ProgressDeadlineExceeded) makes it Degraded, with Ready's message.
    message = NO_ROOM + "; the progress deadline of Deployment shop-web has passed"
    obj = app(
        2,
        2,
        cond("Ready", "False", "Unschedulable", message),
        cond("Reconciling", "False", "None"),
        cond("Stalled", "True", "ProgressDeadlineExceeded", message),
    )
    assert health(obj) == ("Degraded", message)


def test_suspended_when_stopped() -> None:
    # S15: the status the operator writes for a STOPPED App that has scaled to zero (wharf.status.compute)
    stopped = make_app({"instances": 2}, generation=5, state="STOPPED")
    status = compute(
        stopped,
        AppStatus(),
        now="2026-01-01T00:00:00Z",
        resolution=None,
        rendered=render_ok(stopped),
        blocked=None,
        observation=Observation(
            processes=[ProcessObservation("web", desired=0, ready=0, available=0, updated=0, rolled_out=True)]
        ),
    )
    obj = app(5, 5)
    obj["status"] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert health(obj) == ("Suspended", "stopped: no instances run (state STOPPED)")


def test_status_observed_generation_is_the_fallback() -> None:
    obj = app(2, 2, cond("Ready", "True", "Running", "ok", observed=None))
    assert health(obj) == ("Healthy", "ok")
    obj = app(2, 1, cond("Ready", "True", "Running", "ok", observed=None))
    assert health(obj)[0] == "Progressing"


def test_argocd_opens_only_base_table_and_package(tmp_path: Path) -> None:
    # What the runner proves beyond lua5.4: Argo CD runs health scripts without the string, math or io libraries,
    # so a script calling string.format works under lua5.4 and fails in Argo CD.
    script = tmp_path / "uses-string.lua"
    script.write_text('return {status = "Healthy", message = string.format("%d", 1)}\n')
    assert lua54_health(app(), script) == ("Healthy", "1")
    done = subprocess.run([str(argocd_runner()), str(script)], input=json.dumps(app()), capture_output=True, text=True)
    assert done.returncode == 1
    assert "string" in done.stderr


def test_argocd_reads_an_invalid_status_as_unknown(tmp_path: Path) -> None:
    script = tmp_path / "bad-status.lua"
    script.write_text('return {status = "Fine", message = "x"}\n')
    assert argocd_health(app(), script) == ("Unknown", "Lua returned an invalid health status")


def test_gitops_doc_ships_the_same_script() -> None:
    # The argocd-cm snippet in docs/gitops.md is what users copy; it must be this file, line for line.
    doc = GITOPS_DOC.read_text()
    script_lines = SCRIPT.read_text().rstrip("\n").splitlines()
    block = re.search(r"resource\.customizations\.health\.wharf\.dev_App: \|\n(.*?)\n```", doc, re.S)
    assert block is not None, "docs/gitops.md lacks the argocd-cm snippet"
    embedded = [line[4:] if line.startswith("    ") else line.strip() for line in block.group(1).splitlines()]
    assert embedded == script_lines
