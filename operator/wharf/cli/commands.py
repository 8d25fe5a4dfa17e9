"""The `wharf` commands for CF users (click), `cf` habits on Kubernetes: push, convert, apps, app, logs, scale,
start, stop, restart, restage, env, delete. Working against the kubeconfig context like kubectl (--kubeconfig or
KUBECONFIG, --context, -n). Data commands take `-o json|yaml`. On a terminal, progress shows a spinner (rich);
otherwise plain lines."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console

from wharf.api.app import AppSpec
from wharf.cli import views
from wharf.cli.kube import Kube, KubeError
from wharf.cli.manifests import (
    CLI_FIELD_MANAGER,
    ManifestError,
    Overrides,
    PlannedApp,
    load_vars,
    password_secret_name,
    plan,
    read_manifest,
    select,
    to_yaml,
    validation_text,
)
from wharf.cli.push import apply_app, check_names, describe_conflict, interrupts_deferred, wait_until_ready
from wharf.render.names import APP_LABEL, PROCESS_LABEL, app_resource_name

F = TypeVar("F", bound=Callable[..., Any])
OUTPUT = click.Choice(["json", "yaml"])
DEFAULT_MANIFEST = "manifest.yml"
INTERRUPTED = 130


class Session:
    """The global options, and the apiserver client made from them on first use."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        self.kubeconfig, self.context, self.namespace = kubeconfig, context, namespace
        self.out = Console(highlight=False, markup=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
        self._kube: Kube | None = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.kubeconfig, self.context, self.namespace)
        return self._kube

    def fail(self, message: str, code: int = 1) -> None:
        self.err.print(f"FAILED\n{message}")
        raise SystemExit(code)


def _session() -> Session:
    return click.get_current_context().find_object(Session)  # type: ignore[return-value]


def _cf_errors(function: F) -> F:
    """Errors as cf shows them (FAILED and a sentence), never a traceback; Ctrl-C exits 130."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = _session()
        try:
            return function(*args, **kwargs)
        except ManifestError as error:
            session.fail(str(error))
        except KubeError as error:
            session.fail(describe_conflict(error))
        except KeyboardInterrupt:
            session.err.print("Interrupted.")
            raise SystemExit(INTERRUPTED) from None
        return None

    return wrapper  # type: ignore[return-value]


def _emit(data: Any, output: str | None, text: Callable[[Any], str]) -> None:
    session = _session()
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif output == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=True, default_flow_style=False), nl=False)
    else:
        session.out.print(text(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kubeconfig", envvar="KUBECONFIG", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
)
@click.option("--context", default=None, help="kubeconfig context (default: the current one)")
@click.option("-n", "--namespace", default=None, help="namespace, CF's space (default: the context's)")
@click.version_option(package_name="wharf", prog_name="wharf")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Cloud Foundry-style image apps on Kubernetes: cf push habits, App resources underneath."""
    if kubeconfig and os.pathsep in kubeconfig:
        kubeconfig = kubeconfig.split(os.pathsep)[0]  # the kubernetes package reads one file
    ctx.obj = Session(kubeconfig, context, namespace)
    ctx.call_on_close(lambda: ctx.obj._kube.close() if ctx.obj._kube else None)


# --- push and convert ------------------------------------------------------------------------------------------
def _manifest_options(function: F) -> F:
    options = [
        click.argument("app_name", metavar="[APP_NAME]", required=False),
        click.option(
            "-f",
            "--manifest",
            "manifest_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="manifest file (default: ./manifest.yml if present)",
        ),
        click.option("--no-manifest", is_flag=True, help="ignore ./manifest.yml"),
        click.option(
            "--docker-username", default=None, help="registry user; the password comes from CF_DOCKER_PASSWORD"
        ),
        click.option(
            "--var", "variables", multiple=True, metavar="NAME=VALUE", help="fill ((NAME)) in the manifest (repeatable)"
        ),
        click.option(
            "--vars-file",
            "vars_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML file of ((var)) values (repeatable)",
        ),
        click.option("-i", "--instances", type=click.IntRange(0, 1000), default=None, help="number of instances"),
        click.option("-m", "--memory", default=None, help="memory limit, e.g. 256M, 1024M, 1G"),
        click.option("-k", "--disk", "disk_quota", default=None, help="disk limit, e.g. 256M, 1024M, 1G"),
        click.option("-c", "--start-command", "command", default=None, help="start command, run as sh -c COMMAND"),
        click.option(
            "-u",
            "--health-check-type",
            type=click.Choice(["port", "process", "http", "none"]),
            default=None,
            help="health check type",
        ),
        click.option(
            "-t",
            "--app-start-timeout",
            "timeout",
            type=click.IntRange(1, 180),
            default=None,
            help="seconds the app may take to start",
        ),
        click.option("--no-route", is_flag=True, help="no routes for the app"),
        click.option("--random-route", is_flag=True, help="as cf; wharf does not invent host names (reported)"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _plan(
    app_name: str | None,
    manifest_path: Path | None,
    no_manifest: bool,
    variables: tuple[str, ...],
    vars_files: tuple[Path, ...],
    overrides: Overrides,
    namespace: str | None,
    with_password: bool,
) -> tuple[list[PlannedApp], list[str]]:
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    path = manifest_path or (None if no_manifest or not Path(DEFAULT_MANIFEST).is_file() else Path(DEFAULT_MANIFEST))
    if path is not None:
        try:
            text = path.read_text()
        except OSError as error:
            raise ManifestError(f"cannot read manifest {path}: {error.strerror}") from None
        entries, warnings = read_manifest(text, load_vars(vars_files, variables), str(path))
    elif variables or vars_files:
        raise ManifestError("--var and --vars-file fill a manifest: give one with -f")
    chosen = select(entries, app_name, overrides)
    return plan(chosen, namespace, with_password=with_password), warnings


@cli.command()
@_manifest_options
@click.option("-o", "--docker-image", default=None, help="image to run, e.g. registry.example.com/team/app:1.0")
@click.option("--no-start", is_flag=True, help="apply, but do not start the app")
@click.option("--no-wait", is_flag=True, help="do not wait for the app to start")
@_cf_errors
def push(
    app_name: str | None,
    manifest_path: Path | None,
    no_manifest: bool,
    docker_image: str | None,
    docker_username: str | None,
    variables: tuple[str, ...],
    vars_files: tuple[Path, ...],
    no_start: bool,
    no_wait: bool,
    **flags: Any,
) -> None:
    """Push apps from a manifest or the flags (cf push --docker-image)."""
    session = _session()
    overrides = Overrides(docker_image=docker_image, docker_username=docker_username, no_start=no_start, **flags)
    password = os.environ.get("CF_DOCKER_PASSWORD")
    planned, warnings = _plan(
        app_name, manifest_path, no_manifest, variables, vars_files, overrides, None, password is not None
    )
    kube = session.kube
    for warning in warnings:
        session.err.print(f"Warning: {warning}")
    check_names(kube, planned)
    failed = False
    for app in planned:
        session.out.print(f"Pushing app {app.cf_name} to namespace {kube.namespace} (context {kube.target.context})...")
        if app.name != app.cf_name:
            session.out.print(f"   Kubernetes name: app/{app.name}")
        with interrupts_deferred():
            apply_app(kube, app, password, started=not no_start)
        if no_start:
            session.out.print(f"App {app.cf_name} is applied and stopped (wharf start {app.cf_name} starts it).")
            continue
        if no_wait:
            session.out.print(f"App {app.cf_name} is applied; not waiting for it to start.")
            continue
        session.out.print(f"Waiting for app {app.cf_name} to start...")
        timeout = float(os.environ.get("CF_STARTUP_TIMEOUT", "5")) * 60  # minutes, as the cf CLI reads it
        if session.out.is_terminal:
            with session.out.status(f"Starting {app.cf_name}..."):
                ok, message = wait_until_ready(kube, app.name, session.out.print, timeout)
        else:
            ok, message = wait_until_ready(kube, app.name, session.out.print, timeout)
        if not ok:
            session.err.print(message)
            failed = True
            continue
        session.out.print("")
        _show_app(kube, app.name, None)
        session.out.print("")
    if failed:
        session.fail("Start unsuccessful")


@cli.command()
@_manifest_options
@click.option("--docker-image", default=None, help="image to run")
@_cf_errors
def convert(
    app_name: str | None,
    manifest_path: Path | None,
    no_manifest: bool,
    docker_image: str | None,
    docker_username: str | None,
    variables: tuple[str, ...],
    vars_files: tuple[Path, ...],
    **flags: Any,
) -> None:
    """Print the App resources a push would apply, as YAML for git (no cluster needed)."""
    session = _session()
    overrides = Overrides(docker_image=docker_image, docker_username=docker_username, **flags)
    planned, warnings = _plan(
        app_name, manifest_path, no_manifest, variables, vars_files, overrides, session.namespace, True
    )
    for warning in warnings:
        session.err.print(f"Warning: {warning}")
    for app in planned:
        if app.password_secret:
            session.err.print(
                f"Note: {app.cf_name} reads its registry password from Secret {app.password_secret}: create it with "
                f'kubectl create secret generic {app.password_secret} --from-literal=password="$CF_DOCKER_PASSWORD"'
            )
    click.echo(to_yaml(planned), nl=False)


# --- reading ---------------------------------------------------------------------------------------------------
def find_app(kube: Kube, name: str) -> dict[str, Any]:
    """The App called `name`: by its CF name (the manifest's), or by its Kubernetes name."""
    direct = kube.get(kube.app_path(app_resource_name(name)))
    if direct is not None and views.cf_name(direct) == name:
        return direct
    for app in kube.items(kube.app_path()):
        if views.cf_name(app) == name or app["metadata"]["name"] == name:
            return app
    raise ManifestError(f"App '{name}' not found in namespace {kube.namespace}.")


def _show_app(kube: Kube, name: str, output: str | None) -> None:
    app = kube.get(kube.app_path(name))
    if app is None:
        raise ManifestError(f"App '{name}' not found in namespace {kube.namespace}.")
    pods = kube.items(kube.core_path("pods"), f"{APP_LABEL}={name}")
    _emit(views.summary(app, pods), output, views.summary_text)


@cli.command()
@click.option("-o", "--output", type=OUTPUT, default=None)
@_cf_errors
def apps(output: str | None) -> None:
    """List the apps in the namespace (cf apps)."""
    session = _session()
    kube = session.kube
    rows = views.apps_rows(kube.items(kube.app_path()))

    def text(data: list[dict[str, Any]]) -> str:
        lines = [f"Getting apps in namespace {kube.namespace} (context {kube.target.context})...", ""]
        if not data:
            return "\n".join([*lines, "No apps found"])
        width = max(len("name"), *(len(r["name"]) for r in data)) + 3
        lines.append(f"{'name':<{width}}{'requested state':<18}{'processes':<30}routes")
        lines += [f"{r['name']:<{width}}{r['requestedState']:<18}{r['processes']:<30}{r['routes']}" for r in data]
        return "\n".join(lines)

    _emit(rows, output, text)


@cli.command()
@click.argument("name")
@click.option("-o", "--output", type=OUTPUT, default=None)
@_cf_errors
def app(name: str, output: str | None) -> None:
    """Show an app: state, routes, image, instances (cf app)."""
    kube = _session().kube
    _show_app(kube, find_app(kube, name)["metadata"]["name"], output)


@cli.command()
@click.argument("name")
@click.option("-o", "--output", type=OUTPUT, default=None)
@_cf_errors
def env(name: str, output: str | None) -> None:
    """Show an app's environment (cf env)."""
    kube = _session().kube
    found = find_app(kube, name)
    deployment = kube.get(kube.apps_v1_path("deployments", f"{found['metadata']['name']}-{views.WEB}"))
    _emit(views.env_data(found, deployment), output, views.env_text)


def log_prefix(process_type: str, index: int) -> str:
    """cf's source tag: [APP/PROC/WEB/0]."""
    return f"[APP/PROC/{process_type.upper()}/{index}]"


def log_line(raw: str, prefix: str) -> tuple[str, str]:
    """(timestamp, line as cf logs prints it) from a kubelet line with timestamps=true."""
    stamp, _, text = raw.partition(" ")
    return stamp, f"{stamp} {prefix} OUT {text}"


def _numbered_pods(kube: Kube, name: str) -> list[tuple[str, int, dict[str, Any]]]:
    pods = kube.items(kube.core_path("pods"), f"{APP_LABEL}={name}")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_type.setdefault((pod["metadata"].get("labels") or {}).get(PROCESS_LABEL, views.WEB), []).append(pod)
    numbered = []
    for process_type, group in sorted(by_type.items()):
        for row, pod in zip(
            views.instances(group),
            sorted(group, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])),
            strict=True,
        ):
            numbered.append((process_type, row["index"], pod))
    return numbered


@cli.command()
@click.argument("name")
@click.option("--recent", is_flag=True, help="show recent lines and exit (default: follow)")
@_cf_errors
def logs(name: str, recent: bool) -> None:
    """Show an app's logs, each line tagged with its instance (cf logs)."""
    session = _session()
    kube = session.kube
    resource = find_app(kube, name)["metadata"]["name"]
    numbered = _numbered_pods(kube, resource)
    if not numbered:
        raise ManifestError(f"App '{name}' has no running instances to show logs of.")
    if recent:
        lines: list[tuple[str, str]] = []
        problems = 0
        for process_type, index, pod in numbered:
            prefix = log_prefix(process_type, index)
            try:
                text = kube.text(
                    kube.core_path("pods", pod["metadata"]["name"]) + "/log",
                    {"container": "app", "timestamps": "true", "tailLines": "1000"},
                )
            except KubeError as error:
                problems += 1
                session.err.print(f"{prefix} logs unavailable: {error}")
                continue
            lines += [log_line(raw, prefix) for raw in text.splitlines() if raw]
        for _, line in sorted(lines):
            session.out.print(line)
        if problems == len(numbered):
            raise SystemExit(1)
        return
    session.out.print(f"Retrieving logs for app {name} in namespace {kube.namespace}...")
    _follow(kube, numbered, session.out.print)


def _follow(kube: Kube, numbered: list[tuple[str, int, dict[str, Any]]], say: Callable[[str], None]) -> None:
    lock = threading.Lock()

    def stream(prefix: str, pod: str) -> None:
        try:
            for raw in kube.stream_lines(
                kube.core_path("pods", pod) + "/log",
                {"container": "app", "timestamps": "true", "follow": "true", "tailLines": "10"},
            ):
                with lock:
                    say(log_line(raw, prefix)[1])
        except KubeError as error:
            with lock:
                say(f"{prefix} logs unavailable: {error}")

    for process_type, index, pod in numbered:
        threading.Thread(
            target=stream, args=(log_prefix(process_type, index), pod["metadata"]["name"]), daemon=True
        ).start()
    while True:
        time.sleep(1)


# --- changing --------------------------------------------------------------------------------------------------
def _patch_spec(kube: Kube, resource: str, spec: dict[str, Any]) -> None:
    with interrupts_deferred():
        kube.merge_patch(kube.app_path(resource), {"spec": spec}, CLI_FIELD_MANAGER)


def _wait_and_show(kube: Kube, cf: str, resource: str, wait: bool) -> None:
    session = _session()
    if not wait:
        session.out.print("OK")
        return
    session.out.print(f"Waiting for app {cf} to start...")
    ok, message = wait_until_ready(
        kube, resource, session.out.print, float(os.environ.get("CF_STARTUP_TIMEOUT", "5")) * 60
    )
    if not ok:
        session.fail(message)
    session.out.print("")
    _show_app(kube, resource, None)


@cli.command()
@click.argument("name")
@click.option("-i", "--instances", type=click.IntRange(0, 1000), default=None, help="number of instances")
@click.option("-m", "--memory", default=None, help="memory limit, e.g. 256M, 1G")
@click.option("-k", "--disk", "disk_quota", default=None, help="disk limit, e.g. 512M, 1G")
@click.option("--no-wait", is_flag=True, help="do not wait for the instances")
@_cf_errors
def scale(name: str, instances: int | None, memory: str | None, disk_quota: str | None, no_wait: bool) -> None:
    """Change an app's instances, memory or disk (cf scale)."""
    session = _session()
    kube = session.kube
    found = find_app(kube, name)
    changes = {"instances": instances, "memory": memory, "disk_quota": disk_quota}
    manifest = {key: value for key, value in changes.items() if value is not None}
    if not manifest:
        raise ManifestError("Incorrect Usage: give -i INSTANCES, -m MEMORY or -k DISK")
    candidate = {**found, "spec": {**found["spec"], "manifest": {**(found["spec"].get("manifest") or {}), **manifest}}}
    plan_check(candidate)
    session.out.print(f"Scaling app {name} in namespace {kube.namespace}...")
    _patch_spec(kube, found["metadata"]["name"], {"manifest": manifest})
    _wait_and_show(
        kube, name, found["metadata"]["name"], not no_wait and found["spec"].get("state", "STARTED") == "STARTED"
    )


def plan_check(resource: dict[str, Any]) -> None:
    """Refuse a change the App would refuse, with the same words (sizes in CF units)."""
    try:
        AppSpec.model_validate(resource["spec"])
    except ValidationError as error:
        raise ManifestError(validation_text(error)) from None


def _state_command(verb: str, spec: Callable[[], dict[str, Any]], waits: bool, doc: str) -> None:
    @cli.command(name=verb, help=doc)
    @click.argument("name")
    @click.option("--no-wait", is_flag=True, help="do not wait for the app")
    @_cf_errors
    def command(name: str, no_wait: bool) -> None:
        session = _session()
        kube = session.kube
        found = find_app(kube, name)
        session.out.print(f"{verb.capitalize().rstrip('e')}ing app {name} in namespace {kube.namespace}...")
        _patch_spec(kube, found["metadata"]["name"], spec())
        _wait_and_show(kube, name, found["metadata"]["name"], waits and not no_wait)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_state_command("start", lambda: {"state": "STARTED"}, True, "Start an app (cf start).")
_state_command("stop", lambda: {"state": "STOPPED"}, False, "Stop an app: its instances go, the rest stays (cf stop).")
_state_command(
    "restart",
    lambda: {"state": "STARTED", "restartedAt": _now()},
    True,
    "Restart an app's instances with the same image (cf restart).",
)
_state_command(
    "restage",
    lambda: {"state": "STARTED", "restage": _now()},
    True,
    "Re-read the image from the registry, then roll the instances (cf restage).",
)


@cli.command()
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="do not ask for confirmation")
@_cf_errors
def delete(name: str, force: bool) -> None:
    """Delete an app and everything it created (cf delete)."""
    session = _session()
    kube = session.kube
    try:
        found = find_app(kube, name)
    except ManifestError:
        session.out.print(f"App '{name}' does not exist.\nOK")
        return
    if not force:
        if not sys.stdin.isatty():
            raise ManifestError(f"Really delete the app {name}? Not on a terminal: give -f to delete without asking")
        if not click.confirm(f"Really delete the app {name}?", default=False):
            session.out.print("Delete cancelled")
            return
    resource = found["metadata"]["name"]
    session.out.print(f"Deleting app {name} in namespace {kube.namespace}...")
    with interrupts_deferred():
        kube.delete(kube.app_path(resource))
        # The password Secret is owned by the App (deleted with it); an older push's may not be.
        secret = kube.get(kube.core_path("secrets", password_secret_name(resource)))
        if secret and (secret["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == CLI_FIELD_MANAGER:
            kube.delete(kube.core_path("secrets", password_secret_name(resource)))
    session.out.print("OK")
