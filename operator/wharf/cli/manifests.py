"""A whole CF `manifest.yml` as the cf CLI reads it, turned into App resources (S20). Pure: no cluster.

- `applications:` with any number of entries, `version: 1`, YAML anchors and merge keys (`<<: *defaults`);
- `((vars))` filled from `--vars-file` and `--var` (later wins; an unfilled var is an error naming it, as in cf);
- cf v6's top-level keys, inherited by every entry, with a warning saying what to write instead;
- `cf push APP`: with one entry, APP overrides its name; with several, only the entry named APP is pushed;
- the flags of `cf push` (`--docker-image`, `-i`, `-m`, `-k`, `-c`, `--no-route`, ...) override the entry, with
  one entry only, as in cf;
- a CF name Kubernetes cannot carry (`fortune_teller`, `MyApp`, dots, long names) gets a derived resource name
  (wharf.render.names.app_resource_name); the CF name stays in `manifest.name`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wharf.api.app import API_VERSION, KIND, AppSpec
from wharf.api.manifest import Manifest
from wharf.render.names import app_resource_name

CLI_FIELD_MANAGER = "wharf-cli"  # its own field manager, so GitOps and the CLI can tell their fields apart
PASSWORD_KEY = "password"
_VAR = re.compile(r"\(\(([-/.\w!]+)\)\)")
_TOP_LEVEL = {"applications", "version"}


class ManifestError(ValueError):
    """A manifest or flags the cf CLI would refuse too; the message says what to change."""


@dataclass(frozen=True)
class Overrides:
    """The `cf push` flags that change one application entry."""

    docker_image: str | None = None
    docker_username: str | None = None
    instances: int | None = None
    memory: str | None = None
    disk_quota: str | None = None
    command: str | None = None
    health_check_type: str | None = None
    timeout: int | None = None
    no_route: bool = False
    random_route: bool = False
    no_start: bool = False

    def given(self) -> bool:
        return any(value not in (None, False) for key, value in vars(self).items() if key not in ("no_start",))


@dataclass(frozen=True)
class PlannedApp:
    """One App to apply: its resource, the CF name it is called by, and the password Secret it needs."""

    cf_name: str
    resource: dict[str, Any]
    password_secret: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.resource["metadata"]["name"])


def password_secret_name(resource_name: str) -> str:
    """The Secret `wharf push` keeps CF_DOCKER_PASSWORD in (S1: never inline in the App)."""
    return f"{resource_name}-docker-password"


# --- ((vars)) ----------------------------------------------------------------------------------------------------
class CommandLineVar(str):
    """A `--var` value, kept as typed: spliced into a string as it is (`tag=1.10` stays 1.10), and read as YAML
    when it is a whole value (`instances: ((n))` with `--var n=3` is the number 3)."""

    __slots__ = ()


def parse_var(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ManifestError(f"--var {text}: write --var NAME=VALUE")
    return key, CommandLineVar(value)


def _as_value(value: Any) -> Any:
    if isinstance(value, CommandLineVar):
        try:
            return yaml.safe_load(str(value)) if value else ""
        except yaml.YAMLError:
            return str(value)
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def load_vars(files: Sequence[Path], pairs: Sequence[str]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ManifestError(f"--vars-file {path}: {error}") from None
        if not isinstance(loaded, dict):
            raise ManifestError(f"--vars-file {path}: expected a YAML map of NAME: VALUE")
        variables.update(loaded)
    variables.update(parse_var(pair) for pair in pairs)
    return variables


def _lookup(variables: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    if name in variables:
        return True, variables[name]
    value: Any = variables
    for part in name.split("."):  # bosh-style paths: ((db.host))
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def interpolate(node: Any, variables: Mapping[str, Any], missing: set[str]) -> Any:
    """((name)) filled in keys and values. A value that is only `((name))` takes the var's type (cf's way)."""
    if isinstance(node, dict):
        return {interpolate(k, variables, missing): interpolate(v, variables, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, variables, missing) for item in node]
    if not isinstance(node, str):
        return node
    whole = _VAR.fullmatch(node)
    if whole:
        found, value = _lookup(variables, whole.group(1))
        if not found:
            missing.add(whole.group(1))
            return node
        return _as_value(value)

    def fill(match: re.Match[str]) -> str:
        found, value = _lookup(variables, match.group(1))
        if not found:
            missing.add(match.group(1))
            return match.group(0)
        return _as_text(value)

    return _VAR.sub(fill, node)


# --- the manifest --------------------------------------------------------------------------------------------
def read_manifest(
    text: str, variables: Mapping[str, Any], source: str = "manifest"
) -> tuple[list[dict[str, Any]], list[str]]:
    """The application entries of a manifest, vars filled, and warnings. Raises ManifestError."""
    try:
        document = yaml.safe_load(text)  # anchors, aliases and `<<` merge keys as YAML 1.1 has them
    except yaml.YAMLError as error:
        hint = " (YAML takes spaces, not tabs: replace the tab)" if "'\\t'" in str(error) else ""
        raise ManifestError(f"{source} is not valid YAML{hint}: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: a manifest is a YAML map with an applications: list")
    missing: set[str] = set()
    document = interpolate(document, variables, missing)
    if missing:
        # The cf CLI's words.
        raise ManifestError(f"Expected to find variables: {', '.join(sorted(missing))}")
    version = document.get("version", 1)
    if version != 1:
        raise ManifestError(f"{source}: version {version} is not supported: the cf CLI reads manifest version 1")
    entries = document.get("applications", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError(f"{source}: applications must be a list of maps (- name: my-app ...)")
    warnings: list[str] = []
    if "inherit" in document:
        raise ManifestError(f"{source}: inherit is not supported (removed in cf CLI v7): copy the inherited keys in")
    app_keys = {field.alias or name for name, field in Manifest.model_fields.items()}
    other = sorted(str(k) for k in document if k not in _TOP_LEVEL and k not in app_keys)
    if other:
        # Often a home for YAML anchors (`defaults: &defaults`); the cf CLI ignores them too.
        warnings.append(f"{source}: top-level {', '.join(other)} ignored: not a manifest key")
    shared = {k: v for k, v in document.items() if k in app_keys}
    if shared:
        # cf v6 applied top-level keys to every application (deprecated; v7 ignores them).
        warnings.append(
            f"{source}: top-level {', '.join(sorted(shared))} apply to every application as in cf CLI v6 "
            "(deprecated): move them into each application entry"
        )
        entries = [{**shared, **entry} for entry in entries]
    return [dict(entry) for entry in entries], warnings


def select(entries: list[dict[str, Any]], app_name: str | None, overrides: Overrides) -> list[dict[str, Any]]:
    """`cf push [APP]`'s choice of entries, and the flags applied to the one chosen."""
    if not entries:
        if not app_name:
            raise ManifestError("Incorrect Usage: give an app name (wharf push APP --docker-image IMAGE) or a manifest")
        entries = [{"name": app_name}]
    elif app_name and len(entries) > 1:
        chosen = [e for e in entries if e.get("name") == app_name]
        if not chosen:
            raise ManifestError(f"Could not find app named '{app_name}' in manifest")
        entries = chosen
    elif app_name:
        entries = [{**entries[0], "name": app_name}]
    unnamed = [i for i, e in enumerate(entries) if not e.get("name")]
    if unnamed:
        raise ManifestError(f"applications[{unnamed[0]}] has no name: every application needs name:")
    if overrides.given() and len(entries) > 1:
        raise ManifestError(
            "Incorrect Usage: Command line flags (except -f, --var, --vars-file) cannot be applied when pushing "
            "multiple apps from a manifest file: name one app (wharf push APP ...)"
        )
    return [_override(e, overrides) for e in entries]


def _override(entry: dict[str, Any], flags: Overrides) -> dict[str, Any]:
    entry = dict(entry)
    simple = {
        "instances": flags.instances,
        "memory": flags.memory,
        "disk_quota": flags.disk_quota,
        "command": flags.command,
        "health-check-type": flags.health_check_type,
        "timeout": flags.timeout,
    }
    entry.update({key: value for key, value in simple.items() if value is not None})
    if flags.no_route:
        entry["no-route"] = True
        for key in ("routes", "random-route", "host", "hosts", "domain", "domains", "no-hostname"):
            entry.pop(key, None)
    if flags.random_route:
        entry["random-route"] = True
    if flags.docker_image or flags.docker_username:
        docker = dict(entry.get("docker") or {})
        if flags.docker_image:
            docker["image"] = flags.docker_image
        if flags.docker_username:
            docker["username"] = flags.docker_username
        entry["docker"] = docker
    return entry


def validation_text(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("function-", "str", "int")))
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where and not message.startswith(where) else message)
    return "; ".join(dict.fromkeys(lines))


def plan(
    entries: list[dict[str, Any]],
    namespace: str | None,
    *,
    with_password: bool = False,
) -> list[PlannedApp]:
    """One App per entry, checked as the apiserver and the operator will check it, before anything is applied.
    `with_password`: the registry user's password will be stored in a Secret (CF_DOCKER_PASSWORD)."""
    planned: list[PlannedApp] = []
    seen: dict[str, str] = {}
    for entry in entries:
        cf_name = str(entry["name"])
        entry = {**entry, "name": cf_name}
        name = app_resource_name(cf_name)
        if name in seen:
            raise ManifestError(f"applications {seen[name]!r} and {cf_name!r} would both be the App {name}: rename one")
        seen[name] = cf_name
        docker = dict(entry.pop("docker", None) or {})
        spec: dict[str, Any] = {}
        if docker.get("image"):
            spec["dockerImage"] = docker.pop("image")
        if docker.get("username"):
            spec["dockerUsername"] = docker.pop("username")
        if docker:
            entry["docker"] = docker
        secret = None
        if "dockerUsername" in spec:
            if not with_password:
                raise ManifestError(
                    f"{cf_name}: docker username {spec['dockerUsername']} needs its password: set CF_DOCKER_PASSWORD"
                )
            secret = password_secret_name(name)
            spec["dockerPasswordSecretRef"] = {"name": secret, "key": PASSWORD_KEY}
        if "dockerImage" not in spec:
            raise ManifestError(
                f"{cf_name}: no image: give --docker-image IMAGE or docker: {{image: IMAGE}} in the manifest "
                "(wharf runs images; it does not build from source)"
            )
        spec["manifest"] = entry
        try:
            AppSpec.model_validate(spec)
        except ValidationError as error:
            raise ManifestError(f"{cf_name}: {validation_text(error)}") from None
        metadata: dict[str, Any] = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        resource = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        planned.append(PlannedApp(cf_name=cf_name, resource=resource, password_secret=secret))
    return planned


def to_yaml(planned: Sequence[PlannedApp]) -> str:
    """The Apps as a YAML stream for git: stable key order, one document per App, the same bytes every time."""
    return yaml.safe_dump_all(
        [p.resource for p in planned], sort_keys=True, default_flow_style=False, explicit_start=True, width=120
    )
