"""The `wharf` command line for CF users against the real control plane and the real registry (S20; S1, S12, S14,
S15). Every command runs as its own process, as a user runs it; the operator is the session's `wharf run`."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from harness.cli import cli_env, interrupt_when, run_wharf, wharf_command
from harness.fixtures_operator import Operator, SoloOperator
from harness.images import RUNNABLE_IMAGES, STANDARD_IMAGES, push_image
from harness.node import RealNode
from harness.registry import TEST_PASSWORD, TEST_USERNAME, RegistryServer
from wharf.cli.commands import cli

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

CORPUS = Path(__file__).resolve().parents[1] / "data" / "cf-manifests"
MANIFEST = """---
version: 1
defaults: &defaults
  memory: 64M
  disk_quota: 128M
applications:
- name: fortune_teller
  <<: *defaults
  instances: ((instances))
  docker:
    image: ((registry))/cli/private:v1
    username: ((user))
  env:
    GREETING: hello ((who))
- name: MyApp
  <<: *defaults
  docker:
    image: ((registry))/cli/private:v1
    username: ((user))
"""


def _cond(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def _ready(op: Operator, name: str, ns: str) -> dict[str, Any] | None:
    obj = op.get("app", name, ns)
    cond = _cond(obj)
    current = obj is not None and cond.get("observedGeneration") == obj["metadata"]["generation"]
    return obj if current and cond.get("status") == "True" else None


def _deployments(op: Operator, ns: str) -> dict[str, dict[str, Any]]:
    out = op.cluster.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout
    return {d["metadata"]["name"]: d for d in json.loads(out)["items"]}


# -- push: a whole manifest, vars, a private registry, progress, the summary ------------------------------------
def test_push_a_whole_manifest_with_vars_and_a_private_registry(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str, tmp_path: Path
) -> None:
    # S20, S1: several applications, anchors, ((vars)), CF names Kubernetes cannot carry; CF_DOCKER_PASSWORD
    op = wharf_operator
    digest = push_image(registry_basic, "cli/private", "v1", STANDARD_IMAGES["single-port"])
    (tmp_path / "manifest.yml").write_text(MANIFEST)
    (tmp_path / "vars.yml").write_text(f"registry: {registry_basic.host}\nuser: {TEST_USERNAME}\ninstances: 1\n")
    done = run_wharf(
        op.cluster.kubeconfig,
        *("-n", app_ns, "push", "--vars-file", "vars.yml", "--var", "instances=2", "--var", "who=world"),
        env={"CF_DOCKER_PASSWORD": TEST_PASSWORD},
        cwd=tmp_path,  # ./manifest.yml is found as cf push finds it
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert TEST_PASSWORD not in out + done.stderr  # never printed
    # Progress as cf push shows it, in order, then a cf app-like summary per app.
    for expected in (
        f"Pushing app fortune_teller to namespace {app_ns}",
        "Kubernetes name: app/fortune-teller-159b35c9",
        "Waiting for app fortune_teller to start...",
        f"Image resolved: {registry_basic.host}/cli/private:v1@{digest}, port 8080",
        "instance #0: running",
        "instance #1: running",
        "name:              fortune_teller",
        "requested state:   started",
        "#0   running",
        "Pushing app MyApp",
        "name:              MyApp",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    assert out.index("Pushing app fortune_teller") < out.index("Image resolved") < out.index("\nname:")

    # One App per entry, applied server-side under the CLI's own field manager; the CF name kept.
    app = op.get("app", "fortune-teller-159b35c9", app_ns)
    assert app is not None
    assert app["spec"]["manifest"]["name"] == "fortune_teller"
    assert app["spec"]["manifest"]["instances"] == 2
    assert app["spec"]["manifest"]["env"] == {"GREETING": "hello world"}
    managed = op.cluster.kubectl(
        "get", "app", "fortune-teller-159b35c9", "-n", app_ns, "-o", "json", "--show-managed-fields"
    ).stdout
    fields = json.loads(managed)["metadata"]["managedFields"]
    assert {m["manager"] for m in fields if m["operation"] == "Apply"} == {"wharf-cli"}
    assert TEST_PASSWORD not in json.dumps(app)
    # The password in a Secret the App owns (deleted with it), referenced by the App.
    ref = app["spec"]["dockerPasswordSecretRef"]
    secret = op.get("secret", ref["name"], app_ns)
    assert secret is not None
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [app["metadata"]["uid"]]
    assert op.get("app", "myapp-4de339ce", app_ns) is not None

    # A CF name that is itself the derived name of another app in the namespace is refused (collision-checked).
    clash = run_wharf(
        op.cluster.kubeconfig, "-n", app_ns, "push", "fortune-teller-159b35c9", "--no-manifest", "-o", "nginx"
    )
    assert clash.returncode == 1
    assert "already used by app 'fortune_teller'" in clash.stderr, clash.stderr

    # apps / app show the CF names; -o json|yaml give data.
    listed = run_wharf(op.cluster.kubeconfig, "-n", app_ns, "apps")
    assert listed.returncode == 0, listed.stderr
    assert "fortune_teller" in listed.stdout
    assert "MyApp" in listed.stdout
    assert "web:2/2" in listed.stdout
    rows = json.loads(run_wharf(op.cluster.kubeconfig, "-n", app_ns, "apps", "-o", "json").stdout)
    assert sorted(r["name"] for r in rows) == ["MyApp", "fortune_teller"]
    shown = yaml.safe_load(run_wharf(op.cluster.kubeconfig, "-n", app_ns, "app", "fortune_teller", "-o", "yaml").stdout)
    assert shown["name"] == "fortune_teller"
    assert shown["resource"] == "fortune-teller-159b35c9"
    assert [i["state"] for i in shown["instances"]] == ["running", "running"]
    assert shown["digest"] == digest


def test_push_flags_scale_stop_start_restart_restage_env_logs_delete(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str, tmp_path: Path
) -> None:
    # S20, S15: every lifecycle command against the real control plane
    op = wharf_operator
    kubeconfig = op.cluster.kubeconfig
    push_image(registry_plain, "cli/plain", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/cli/plain:v1"

    def wharf(*args: str) -> subprocess.CompletedProcess[str]:
        return run_wharf(kubeconfig, "-n", app_ns, *args, cwd=tmp_path)

    pushed = wharf("push", "hello", "-o", image, "-m", "64M", "-k", "128M", "-i", "1", "--var", "x=1", "-f", "/none")
    assert pushed.returncode == 1  # a missing manifest is an error, as in cf
    assert "cannot read manifest /none" in pushed.stderr
    pushed = wharf("push", "hello", "-o", image, "-m", "64M", "-k", "128M", "-i", "1", "-c", "/app/server --port $PORT")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    web = _deployments(op, app_ns)["hello-web"]
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": "64Mi", "ephemeral-storage": "128Mi"}
    assert container["command"] == ["sh", "-c", "/app/server --port $PORT"]

    # A size without a unit is refused in the CF API's words, before anything changes.
    refused = wharf("scale", "hello", "-m", "1024")
    assert refused.returncode == 1
    assert "'1024' must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB" in refused.stderr
    scaled = wharf("scale", "hello", "-i", "2", "-m", "96M")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert "instances:      2/2" in scaled.stdout
    assert _deployments(op, app_ns)["hello-web"]["spec"]["replicas"] == 2

    stopped = wharf("stop", "hello")
    assert stopped.returncode == 0, stopped.stderr
    assert f"Stopping app hello in namespace {app_ns}..." in stopped.stdout
    assert _deployments(op, app_ns)["hello-web"]["spec"]["replicas"] == 0
    assert (op.get("app", "hello", app_ns) or {})["spec"]["state"] == "STOPPED"
    started = wharf("start", "hello")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "#1   running" in started.stdout

    before = (op.get("app", "hello", app_ns) or {})["status"]["image"]
    restarted = wharf("restart", "hello")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    template = _deployments(op, app_ns)["hello-web"]["spec"]["template"]["metadata"]
    assert "wharf.dev/restartedAt" in template.get("annotations", {})
    restaged = wharf("restage", "hello")
    assert restaged.returncode == 0, restaged.stdout + restaged.stderr
    after = (op.get("app", "hello", app_ns) or {})["status"]["image"]
    assert after["restage"] != before.get("restage")  # S13: restage re-read the registry
    assert after["resolvedAt"] >= before["resolvedAt"]

    env = wharf("env", "hello", "-o", "json")
    assert env.returncode == 0, env.stderr
    data = json.loads(env.stdout)
    assert data["system"]["VCAP_APPLICATION"]["application_name"] == "hello"
    assert data["system"]["PORT"] == "8080"
    assert "User-Provided:" in wharf("env", "hello").stdout

    # Logs: every instance is asked, and each line (or the kubelet's answer) carries its instance tag. kwok's
    # fake nodes run no containers and serve no logs, so the apiserver's answer is what each tag shows here.
    logs = wharf("logs", "hello", "--recent")
    assert "[APP/PROC/WEB/0]" in logs.stdout + logs.stderr
    assert "[APP/PROC/WEB/1]" in logs.stdout + logs.stderr

    # kubectl explain describes the manifest in CF's words (S20), from the apiserver's published schema.
    explained = op.cluster.kubectl("explain", "apps.wharf.dev.spec.manifest.memory").stdout
    assert "A number without a unit is refused, as the CF API refuses it" in " ".join(explained.split())
    # kubectl sees the same Apps by their full resource name (Argo CD's `app`/`apps` short names may clash).
    listed = op.cluster.kubectl("get", "apps.wharf.dev", "-n", app_ns, "-o", "name").stdout
    assert listed.split() == ["app.wharf.dev/hello"]

    asked = wharf("delete", "hello")  # not a terminal: cf would prompt; wharf asks for -f
    assert asked.returncode == 1
    assert "give -f" in asked.stderr
    deleted = wharf("delete", "hello", "-f")
    assert deleted.returncode == 0, deleted.stderr
    op.wait_for("App deleted", lambda: op.get("app", "hello", app_ns) is None, timeout=30)
    gone = wharf("app", "hello")
    assert gone.returncode == 1
    assert f"App 'hello' not found in namespace {app_ns}." in gone.stderr


# -- failures: shown at once, non-zero ----------------------------------------------------------------------------
def test_pull_failure_is_shown_at_once_and_push_exits_non_zero(
    wharf_operator: Operator, outage_registry: RegistryServer, app_ns: str
) -> None:
    # S14, S20: `Failed to create container: ...`, within seconds
    op = wharf_operator
    push_image(outage_registry, "cli/outage", "v1", STANDARD_IMAGES["single-port"])
    args = ("-n", app_ns, "push", "pull", "-o", f"{outage_registry.host}/cli/outage:v1", "-m", "64M")
    staged = run_wharf(op.cluster.kubeconfig, *args, "--no-start")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    op.wait_for("image resolved", lambda: _cond(op.get("app", "pull", app_ns), "ImageResolved").get("status") == "True")
    outage_registry.stop()  # the instances cannot pull now
    started = time.monotonic()
    failed = run_wharf(op.cluster.kubeconfig, *args)
    elapsed = time.monotonic() - started
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed to create container:" in failed.stderr
    assert "FAILED" in failed.stderr
    assert elapsed < 60, f"the pull failure took {elapsed:.0f}s to show"


def test_wrong_password_fails_the_push_without_printing_it(
    wharf_operator: Operator, registry_basic: RegistryServer, app_ns: str
) -> None:
    # S12, S20
    op = wharf_operator
    push_image(registry_basic, "cli/wrong", "v1", STANDARD_IMAGES["single-port"])
    wrong = f"wrong-{uuid.uuid4().hex[:6]}"
    done = run_wharf(
        op.cluster.kubeconfig,
        *("-n", app_ns, "push", "locked", "-o", f"{registry_basic.host}/cli/wrong:v1"),
        *("--docker-username", TEST_USERNAME, "-m", "64M"),
        env={"CF_DOCKER_PASSWORD": wrong},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed to resolve image:" in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert wrong not in json.dumps(op.get("app", "locked", app_ns))


def test_ctrl_c_while_waiting_leaves_the_app_and_its_secret_whole(
    wharf_operator: Operator, outage_registry: RegistryServer, app_ns: str
) -> None:
    # S20: Ctrl-C exits 130; what was applied is complete (App and password Secret, owned), and the operator goes on
    op = wharf_operator
    push_image(outage_registry, "cli/ctrlc", "v1", STANDARD_IMAGES["single-port"])
    outage_registry.stop()  # the push waits for the registry: Ctrl-C comes while it waits
    stopped = interrupt_when(
        wharf_command("-n", app_ns, "push", "interrupted", "-o", f"{outage_registry.host}/cli/ctrlc:v1", "-m", "64M"),
        cli_env(op.cluster.kubeconfig, {"CF_DOCKER_PASSWORD": "pw", "CF_STARTUP_TIMEOUT": "5"}),
        lambda seen: "Waiting for app interrupted" in seen,
        timeout=60,
        exit_timeout=30,
    )
    assert "Waiting for app interrupted" in stopped.seen, stopped.seen
    assert stopped.returncode == 130, stopped.out + stopped.err
    assert "Interrupted." in stopped.err
    app = op.get("app", "interrupted", app_ns)
    assert app is not None
    assert app["spec"]["state"] == "STARTED"
    outage_registry.start()
    op.wait_for("the operator finishes what the push began", lambda: _ready(op, "interrupted", app_ns), timeout=90)


def test_a_push_interrupted_while_applying_applies_each_app_whole_or_not_at_all(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str, tmp_path: Path
) -> None:
    # S20: Ctrl-C at any moment of a multi-app push: every App is either absent or applied with its Secret
    op = wharf_operator
    push_image(registry_plain, "cli/many", "v1", STANDARD_IMAGES["single-port"])
    entries = [
        {"name": f"a{i}", "memory": "64M", "docker": {"image": f"{registry_plain.host}/cli/many:v1", "username": "u"}}
        for i in range(16)
    ]
    (tmp_path / "manifest.yml").write_text(yaml.safe_dump({"applications": entries}))
    interrupted_midway = False
    namespaces = [app_ns, op.cluster.create_namespace(f"cli-{uuid.uuid4().hex[:8]}")]
    for delay, ns in zip((0.0, 0.2), namespaces, strict=True):
        process = subprocess.Popen(
            wharf_command("-n", ns, "push", "--no-wait"),
            env=cli_env(op.cluster.kubeconfig, {"CF_DOCKER_PASSWORD": "pw"}),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        assert "Pushing app a0" in process.stdout.readline()  # the applying has begun
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        # 130: interrupted (said so); 0 or -2: the push had finished (-2: the signal came while Python exited).
        assert process.returncode in (0, 130, -2), err
        applied = 0
        found = json.loads(op.cluster.kubectl("get", "apps.wharf.dev,secrets", "-n", ns, "-o", "json").stdout)
        by_name = {(o["kind"], o["metadata"]["name"]): o for o in found["items"]}
        for entry in entries:
            app = by_name.get(("App", str(entry["name"])))
            secret = by_name.get(("Secret", f"{entry['name']}-docker-password"))
            if app is not None:
                applied += 1
                assert secret is not None, f"{entry['name']}: App without its Secret"
                assert [o["uid"] for o in secret["metadata"].get("ownerReferences", [])] == [app["metadata"]["uid"]]
            else:
                assert secret is None, f"{entry['name']}: Secret without its App"
        if process.returncode == 130:
            assert "Interrupted." in err
            interrupted_midway = interrupted_midway or 0 < applied < len(entries)
    for ns in namespaces[1:]:
        op.cluster.delete_namespace(ns)
    assert interrupted_midway, "no Ctrl-C landed while the Apps were being applied"


def test_progress_on_a_terminal_uses_a_spinner_and_plain_lines_otherwise(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S20: on a TTY, rich's live status (control sequences); captured output above has none
    op = wharf_operator
    push_image(registry_plain, "cli/tty", "v1", STANDARD_IMAGES["single-port"])
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        wharf_command("-n", app_ns, "push", "tty", "-o", f"{registry_plain.host}/cli/tty:v1", "-m", "64M"),
        env={**cli_env(op.cluster.kubeconfig), "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 90)
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        process.wait(timeout=30)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "\x1b[" in text  # the terminal's live status
    assert "instance #0: running" in text
    assert "name:              tty" in text
    plain = run_wharf(op.cluster.kubeconfig, "-n", app_ns, "app", "tty")
    assert "\x1b[" not in plain.stdout


# -- convert round-trips --------------------------------------------------------------------------------------
def test_convert_then_kubectl_apply_makes_the_same_deployments_as_push(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str, tmp_path: Path
) -> None:
    # S20: convert is what push applies
    op = wharf_operator
    push_image(registry_plain, "cli/round", "v1", STANDARD_IMAGES["multi-port"])
    manifest = {
        "applications": [
            {
                "name": "Round.Trip",
                "memory": "64M",
                "instances": 2,
                "docker": {"image": f"{registry_plain.host}/cli/round:v1"},
                "health-check-type": "http",
                "env": {"MODE": "test"},
                "processes": [{"type": "worker", "instances": 1, "command": "./work", "memory": "32M"}],
            }
        ]
    }
    (tmp_path / "manifest.yml").write_text(yaml.safe_dump(manifest))
    other = op.cluster.create_namespace(f"cli-{uuid.uuid4().hex[:8]}")
    try:
        converted = run_wharf(op.cluster.kubeconfig, "-n", other, "convert", cwd=tmp_path)
        assert converted.returncode == 0, converted.stderr
        op.cluster.kubectl("apply", "-f", "-", input=converted.stdout)
        pushed = run_wharf(op.cluster.kubeconfig, "-n", app_ns, "push", cwd=tmp_path)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        name = "round-trip-" + converted.stdout.split("name: round-trip-")[1].split()[0]
        op.wait_for("converted App Ready", lambda: _ready(op, name, other), timeout=90)

        def workload(ns: str) -> dict[str, Any]:
            found = {}
            for key, d in _deployments(op, ns).items():
                spec = d["spec"]["template"]["spec"]
                containers = [
                    {k: v for k, v in c.items() if k != "env"} | {"env": sorted(e["name"] for e in c.get("env", []))}
                    for c in spec["containers"]
                ]
                found[key] = {"replicas": d["spec"]["replicas"], "containers": containers}
            return found

        assert workload(other) == workload(app_ns)
        assert set(workload(app_ns)) == {f"{name}-web", f"{name}-worker"}
    finally:
        op.cluster.delete_namespace(other)


# -- v6 route keys with and without a default domain ------------------------------------------------------------
def test_v6_host_routes_on_the_default_domain_with_a_warning_and_is_refused_without_one(
    wharf_operator: Operator, solo_operator: SoloOperator, registry_plain: RegistryServer, app_ns: str, tmp_path: Path
) -> None:
    # S20
    op = wharf_operator
    push_image(registry_plain, "cli/v6", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/cli/v6:v1"
    (tmp_path / "manifest.yml").write_text("applications:\n- name: blog\n  memory: 64M\n  host: wordpress-on\n")
    refused = run_wharf(op.cluster.kubeconfig, "-n", app_ns, "push", "-o", image, cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "host need a domain, and this cluster has no default domain: write routes instead" in refused.stderr
    assert "routes: [{route: wordpress-on.example.com}]" in refused.stderr

    solo, namespace = solo_operator({"WHARF_DEFAULT_DOMAIN": "apps.example.com"})
    pushed = run_wharf(solo.cluster.kubeconfig, "-n", namespace, "push", "-o", image, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert (
        "Warning: host are cf CLI v6 route keys (deprecated): write routes: [{route: wordpress-on.apps.example.com}]"
        in pushed.stdout
    )
    assert "routes:            wordpress-on.apps.example.com" in pushed.stdout


# -- a corpus of real manifests -------------------------------------------------------------------------------
_SOURCES = json.loads((CORPUS / "SOURCES.json").read_text())
# Words that only a Python or Kubernetes developer reads: a refusal must not need them.
_NOT_CF_WORDS = ("Input should be", "type=", "pydantic", "Traceback", "should match", "^[", "strict decoding error")


def _entries(path: Path) -> list[str]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return [""]
    names = [str(a.get("name", "")) for a in document.get("applications", []) if isinstance(a, dict)]
    return names or [""]


def test_the_corpus_names_its_sources() -> None:
    # S20: at least 25 real manifests, each with the repository, path and commit it came from
    files = sorted(p.name for p in CORPUS.glob("*.yml"))
    assert len(files) >= 25
    assert sorted(s["file"] for s in _SOURCES) == files
    assert all(s["url"].startswith(f"https://github.com/{s['repo']}/blob/{s['commit']}/") for s in _SOURCES)


def test_real_manifests_are_accepted_and_reconciled_or_refused_in_cf_terms(
    wharf_operator: Operator, registry_plain: RegistryServer, app_ns: str
) -> None:
    # S20: each real manifest.yml, converted (with the image, as `cf push APP --docker-image` gives it) and applied.
    # `wharf convert` needs no cluster: it runs in this process (click's runner), so 30-odd conversions cost no
    # interpreter start-ups; the Apps go to the real apiserver and the session operator.
    op = wharf_operator
    push_image(registry_plain, "cli/corpus", "v1", STANDARD_IMAGES["single-port"])
    image = f"{registry_plain.host}/cli/corpus:v1"
    runner = CliRunner()
    applied: dict[str, str] = {}
    refused: dict[str, str] = {}
    for source in _SOURCES:
        path = CORPUS / source["file"]
        for name in _entries(path):
            label = f"{source['repo']}:{source['path']}:{name}"
            args = ["-n", app_ns, "convert", *([name] if name else []), "-f", str(path), "--docker-image", image]
            converted = runner.invoke(cli, args)
            if converted.exit_code != 0:
                assert converted.exit_code == 1, f"{label}: {converted.output}"
                refused[label] = converted.stderr
                continue
            done = op.cluster.kubectl("apply", "-f", "-", input=converted.stdout, check=False)
            if done.returncode != 0:
                refused[label] = done.stderr
                continue
            applied[label] = yaml.safe_load(converted.stdout)["metadata"]["name"]
    for label, message in refused.items():
        assert message.strip(), label
        assert not any(word in message for word in _NOT_CF_WORDS), f"{label}: {message}"

    def settled() -> dict[str, dict[str, Any]] | None:
        listed = json.loads(op.cluster.kubectl("get", "apps.wharf.dev", "-n", app_ns, "-o", "json").stdout)
        found = {}
        for obj in listed["items"]:
            ready, stalled = _cond(obj), _cond(obj, "Stalled")
            current = ready.get("observedGeneration") == obj["metadata"]["generation"]
            if current and (ready.get("status") == "True" or stalled.get("status") == "True"):
                found[obj["metadata"]["name"]] = obj
        return found if set(applied.values()) <= set(found) else None

    apps = op.wait_for("every applied App Ready or Stalled", settled, timeout=180, interval=2)
    outcomes = {}
    for label, name in applied.items():
        ready = _cond(apps[name])
        if ready["status"] != "True":
            assert not any(word in ready["message"] for word in _NOT_CF_WORDS), f"{label}: {ready['message']}"
            assert "routes" in ready["message"], f"{label}: {ready['message']}"  # the v6 keys without a domain
        outcomes[label] = ready["status"]
    # Most real manifests run as they are; the rest are refused saying what to write.
    assert len(applied) + len(refused) >= 25
    assert sum(1 for s in outcomes.values() if s == "True") >= 15, outcomes


# -- logs from containers that really run -------------------------------------------------------------------------
@pytest.mark.real_node
def test_logs_tag_each_line_with_its_instance_from_a_real_node(
    wharf_operator: Operator, real_node: RealNode, real_ns: str, registry_plain: RegistryServer
) -> None:
    # S20: `cf logs --recent` and following `cf logs`, from the kubelet of a real node
    op = wharf_operator
    push_image(registry_plain, "cli/web", "1", RUNNABLE_IMAGES["web"])
    image = f"{registry_plain.host}/cli/web:1"
    pushed = run_wharf(op.cluster.kubeconfig, "-n", real_ns, "push", "talker", "-o", image, "-i", "2", "-m", "64M")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr + real_node.logs(20)
    recent = run_wharf(op.cluster.kubeconfig, "-n", real_ns, "logs", "talker", "--recent")
    assert recent.returncode == 0, recent.stderr
    for index in (0, 1):
        assert any(
            f" [APP/PROC/WEB/{index}] OUT serving as 1001 on 8080" in line for line in recent.stdout.splitlines()
        ), recent.stdout
    stopped = interrupt_when(
        wharf_command("-n", real_ns, "logs", "talker"),
        cli_env(op.cluster.kubeconfig),
        lambda seen: "[APP/PROC/WEB/0]" in seen and "[APP/PROC/WEB/1]" in seen,
        timeout=30,
        exit_timeout=20,
    )
    assert "Retrieving logs for app talker" in stopped.seen
    assert "[APP/PROC/WEB/0] OUT serving as 1001 on 8080" in stopped.seen, stopped.seen
    assert "[APP/PROC/WEB/1] OUT serving as 1001 on 8080" in stopped.seen, stopped.seen
    assert stopped.returncode == 130
