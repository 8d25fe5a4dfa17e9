"""Service bindings as files, servicebinding.io style: `$SERVICE_BINDING_ROOT/<binding name>/<key>`.

S8 allows no volume but `emptyDir`, so the files are not a Secret volume: an init container, running the App's own
image with `sh -c`, copies the values from the App's derived services Secret (through `secretKeyRef` environment
variables, so no credential sits in the Deployment) into a memory-backed `emptyDir` that every container of the
pod mounts read-only. Like VCAP_SERVICES, the files are what the bound Secrets held when the pod started.

Each binding gets a `type` file (servicebinding.io requires one): the bound Secret's own `type` key when it has one,
else `user-provided`, the label VCAP_SERVICES gives it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wharf.api.app import App
from wharf.render import names
from wharf.render.expansion import literal

ROOT = "/bindings"  # the servicebinding.io reference runtimes' root
ROOT_ENV = "SERVICE_BINDING_ROOT"
VOLUME = "service-bindings"
INIT_CONTAINER = "service-bindings"
DEFAULT_TYPE = "user-provided"
VOLUME_PER_BINDING_MI = 1  # a Secret holds at most 1 MiB


@dataclass(frozen=True)
class BindingFiles:
    directory: str
    secret: str  # the bound Secret's name
    keys: tuple[str, ...]  # the bound Secret's keys, sorted: one file each


def plan(app: App, credentials: Mapping[str, Mapping[str, str]]) -> list[BindingFiles]:
    return [
        BindingFiles(binding.directory, binding.name, tuple(sorted(credentials.get(binding.name, {}))))
        for binding in app.spec.manifest.bindings()
    ]


def _secret_key(index: int, key: str) -> str:
    return f"binding.{index}.{key}"  # Secret keys allow [-._a-zA-Z0-9], which is all a Secret key can hold


def _variable(index: int, position: int) -> str:
    return f"WHARF_BINDING_{index}_{position}"


def secret_data(files: list[BindingFiles], credentials: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The file contents, as keys of the derived services Secret."""
    return {
        _secret_key(index, key): credentials[binding.secret][key]
        for index, binding in enumerate(files)
        for key in binding.keys
    }


def _script(files: list[BindingFiles]) -> str:
    lines = ["set -e", "umask 077", f'cd "${ROOT_ENV}"']
    for index, binding in enumerate(files):
        directory = shlex.quote(binding.directory)
        lines.append(f"mkdir -p -- {directory}")  # `--`: a binding name may start with `-` (`-x`, `--help`)
        lines += [
            f'printf %s "${_variable(index, position)}" > {directory}/{shlex.quote(key)}'
            for position, key in enumerate(binding.keys)
        ]
        if "type" not in binding.keys:
            lines.append(f"printf %s {DEFAULT_TYPE} > {directory}/type")
    return "\n".join(lines) + "\n"


def init_container(
    app: App, files: list[BindingFiles], image: str, resources: dict[str, Any], security: dict[str, Any]
) -> dict[str, Any]:
    secret = names.services_secret_name(app)
    env: list[dict[str, Any]] = [{"name": ROOT_ENV, "value": ROOT}]
    env += [
        {
            "name": _variable(index, position),
            "valueFrom": {"secretKeyRef": {"name": secret, "key": _secret_key(index, key)}},
        }
        for index, binding in enumerate(files)
        for position, key in enumerate(binding.keys)
    ]
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", literal(_script(files))],  # binding names are the user's: `$` and all
        "env": env,
        "resources": resources,
        "securityContext": security,
        "volumeMounts": [{"name": VOLUME, "mountPath": ROOT}],
    }


def volume(files: list[BindingFiles]) -> dict[str, Any]:
    # Memory-backed: credentials never reach the node's disk.
    return {"name": VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": f"{VOLUME_PER_BINDING_MI * len(files)}Mi"}}


def mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": ROOT, "readOnly": True}
