"""Names and labels of the objects an App owns. One place, so renderers, handlers and tests agree."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from wharf.api.app import App
from wharf.config import SHARD_LABEL

MANAGED_BY = "wharf"
APP_LABEL = "wharf.dev/app"
PROCESS_LABEL = "wharf.dev/process-type"
RESTARTED_AT_ANNOTATION = "wharf.dev/restartedAt"
RESTAGED_ANNOTATION = "wharf.dev/restage"
DIGEST_ANNOTATION = "wharf.dev/image-digest"
FIELD_MANAGER = "wharf"
# S19 blue-green: a web pod of an App that routes a route carries `ROUTE_LABEL_PREFIX<route key>: "true"`, and
# the route's Services (one per App that routes it) select that label: whichever App's Ingress or HTTPRoute the
# ingress controller or gateway picks, its Service reaches the instances of every App of the namespace on the route.
ROUTE_LABEL_PREFIX = "route.wharf.dev/"
ROUTE_ANNOTATION = "wharf.dev/route"  # on a route Service: the route it serves, for people (the label is a hash)
ROUTED_PORT_NAME = "http"  # the routed container port of an App with routes: a route Service's targetPort
MAX_SERVICE_NAME = 63  # a Service's name is a DNS label
# The hash of what wharf last applied to an object (render/ownership.py): equal to what it renders now, nothing is
# applied again.
APPLIED_HASH_ANNOTATION = "wharf.dev/applied-hash"


def deployment_name(app: App, process_type: str) -> str:
    return f"{app.name}-{process_type}"


def service_name(app: App) -> str:
    return app.name


def pull_secret_name(app: App) -> str:
    return f"{app.name}-registry"


def services_secret_name(app: App) -> str:
    return f"{app.name}-vcap-services"


def derived_secret_names(app: App) -> tuple[str, ...]:
    """The Secrets wharf derives for an App (registry pull secret, service bindings)."""
    return pull_secret_name(app), services_secret_name(app)


def route_name(app: App, host: str) -> str:
    """An HTTPRoute per hostname: `<app>-<hash of the host>`, stable whatever other routes come and go."""
    return f"{app.name}-{hashlib.sha256(host.encode()).hexdigest()[:10]}"


def route_key(host: str, path: str) -> str:
    """A route's key (S19): the same in every App and namespace that routes `host` + `path`."""
    return hashlib.sha256(f"{host}{path}".encode()).hexdigest()[:10]


def route_label(host: str, path: str) -> str:
    return f"{ROUTE_LABEL_PREFIX}{route_key(host, path)}"


def route_service_name(app: App, host: str, path: str) -> str:
    """The App's Service for one route: `<app>-r<route key>`, within a DNS label's 63 characters (a long App name
    is cut and gets a hash of the whole name, so two long names that start alike still differ)."""
    suffix = f"-r{route_key(host, path)}"
    if len(app.name) + len(suffix) <= MAX_SERVICE_NAME:
        return f"{app.name}{suffix}"
    digest = hashlib.sha256(app.name.encode()).hexdigest()[:6]
    cut = app.name[: MAX_SERVICE_NAME - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{cut}-{digest}{suffix}"


def selector(app: App, process_type: str) -> dict[str, str]:
    """The immutable Deployment selector: stable across every App change."""
    return {APP_LABEL: app.name, PROCESS_LABEL: process_type}


def selector_text(labels: Mapping[str, str]) -> str:
    """Labels as a label-selector string (`k=v,k=v`), the form the API takes and reports."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def label_selector(app: App, process_type: str) -> str:
    """`selector` as a label-selector string, the form a scale subresource reports: a HorizontalPodAutoscaler
    targeting the App reads it to find the pods whose metrics it averages."""
    return selector_text(selector(app, process_type))


def label_value(text: str) -> str:
    """`text` as a label value (63 letters, digits, '-', '_', '.', alphanumeric at both ends): a CF app name may
    hold spaces and other characters (`My Shop!`), which become '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")


def labels(app: App, process_type: str | None = None) -> dict[str, str]:
    user = dict(app.spec.manifest.metadata.labels) if app.spec.manifest.metadata else {}
    user.pop(SHARD_LABEL, None)  # the App's own shard, never the manifest's: a shard watches what it labels
    ours = {
        "app.kubernetes.io/name": label_value(app.app_name),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        APP_LABEL: app.name,
    }
    if process_type is not None:
        ours[PROCESS_LABEL] = process_type
    if app.shard:
        ours[SHARD_LABEL] = app.shard
    # No `app.kubernetes.io/instance`: it is Argo CD's default tracking label, so an Argo CD Application named like
    # the App would count these objects as its own, show them OutOfSync and prune them.
    return {**user, **ours}  # ours win: selectors and ownership must not be overridden by manifest metadata


def user_annotations(app: App) -> dict[str, str]:
    return dict(app.spec.manifest.metadata.annotations) if app.spec.manifest.metadata else {}


def owner_reference(app: App) -> dict[str, object]:
    """Deleting the App deletes everything it created (S15), by the garbage collector."""
    return {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "App",
        "name": app.name,
        "uid": app.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


APP_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # the CRD's rule for an App's name (a Service's)
MAX_APP_NAME = 63


def app_resource_name(cf_name: str) -> str:
    """The App resource's name for a CF app name (S20). A name Kubernetes can carry is kept; any other
    (`fortune_teller`, `MyApp`, `my.app`, more than 63 characters) becomes a readable part plus a hash of the whole
    CF name: the same every time, and two CF names that read alike (`my_app`, `my.app`) still differ."""
    if len(cf_name) <= MAX_APP_NAME and APP_NAME_PATTERN.fullmatch(cf_name):
        return cf_name
    digest = hashlib.sha256(cf_name.encode()).hexdigest()[:8]
    readable = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", cf_name.lower())).strip("-")
    if not readable or not readable[0].isalpha():
        readable = f"app-{readable}".rstrip("-")
    readable = readable[: MAX_APP_NAME - len(digest) - 1].rstrip("-")
    return f"{readable}-{digest}"
