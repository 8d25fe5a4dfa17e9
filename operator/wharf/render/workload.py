"""App + image facts + admin settings -> every object the App owns (S4-S11). Pure: no I/O, no globals."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wharf.api.app import App
from wharf.api.conditions import Reason
from wharf.api.image import ImageFacts
from wharf.api.manifest import Route
from wharf.api.routes import CfRoutes, RouteKeysError, cf_routes
from wharf.api.units import to_megabytes
from wharf.config import Routing, Settings
from wharf.render import bindings, names
from wharf.render.bindings import BindingFiles
from wharf.render.env import container_env
from wharf.render.errors import RenderError
from wharf.render.expansion import literal
from wharf.render.ports import Ports, choose
from wharf.render.probes import probes
from wharf.render.processes import WEB, ProcessPlan, plan
from wharf.render.security import RunAs, container_security_context, decide_user, pod_security_context

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"  # the key docker and the kubelet use for Docker Hub
REVISION_HISTORY = 3
MAIN_CONTAINER = "app"
STOP_GRACE_SECONDS = 10  # CF's graceful stop: SIGTERM, then SIGKILL 10 seconds later
# S15: a web instance that is being replaced keeps serving while the Service's endpoints, kube-proxy and any ingress
# stop sending it traffic (they learn of the deletion at the same moment as the kubelet): the kubelet sleeps this
# long (preStop `sleep`, no binary needed in the image) before SIGTERM. Without it, an app that exits at once on
# SIGTERM refused connections during every rolling restart (seen on the harness's real node).
DRAIN_SECONDS = 5


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]  # in apply order: secrets, deployments, services (the App's, its routes'), routing
    ports: Ports
    run_as: RunAs
    processes: list[ProcessPlan]
    routes: list[str]
    warnings: list[ManifestWarning] = field(default_factory=list)
    route_conflict: str | None = None  # S19: why nothing is routed to the App (another namespace owns a route)


@dataclass(frozen=True)
class ManifestWarning:
    """Something in the manifest that runs, but not as the user may think: the ManifestWarnings condition."""

    reason: Reason  # the condition's and the Event's reason
    message: str


def _meta(
    app: App, name: str, process_type: str | None = None, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`annotations`: None for the manifest's own; routing objects pass the cluster admin's instead (S19)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": app.namespace,
        "labels": names.labels(app, process_type),
        "ownerReferences": [names.owner_reference(app)],
    }
    chosen = names.user_annotations(app) if annotations is None else dict(annotations)
    if chosen:
        meta["annotations"] = chosen
    return meta


def _start_command(process: ProcessPlan, facts: ImageFacts) -> dict[str, Any]:
    """S5: `sh -c COMMAND` replaces ENTRYPOINT and CMD; no command runs the image's own. The shell gets COMMAND as
    written, `$` and all, as on CF (the kubelet's `$(VAR)` expansion is kept out)."""
    if process.command:
        return {"command": ["sh", "-c", literal(process.command)]}
    if not facts.entrypoint and not facts.cmd:
        raise RenderError(
            Reason.NO_START_COMMAND,
            f"No start command found or specified for process {process.type}: the image has neither ENTRYPOINT "
            "nor CMD; set `command` in the manifest",
        )
    return {}


def _resources(memory_mb: int, disk_mb: int | None) -> dict[str, Any]:
    amounts = {"memory": f"{memory_mb}Mi"}
    if disk_mb is not None:
        amounts["ephemeral-storage"] = f"{disk_mb}Mi"
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _port_name(port: int, ports: Ports, routed: bool) -> str:
    """A web instance of an App with routes names its routed port ROUTED_PORT_NAME: the route Services of every App
    on a route reach it by that name, whichever port each App listens on (S19). Other ports keep `p<number>` (and an
    App without routes keeps its pod template as it was)."""
    return names.ROUTED_PORT_NAME if routed and port == ports.routed else f"p{port}"


def _containers(
    app: App,
    facts: ImageFacts,
    process: ProcessPlan,
    ports: Ports,
    uris: list[str],
    files: list[BindingFiles],
    routed: bool = False,
) -> list[dict[str, Any]]:
    """The main container and the sidecars; with bound services, the init container that writes their files.
    `routed`: the process is the web process of an App with routes (see _port_name)."""
    sidecar_memory = sum(to_megabytes(s.memory) for s in process.sidecars if s.memory)
    if sidecar_memory >= process.memory_mb:
        raise RenderError(
            Reason.INVALID_SPEC,
            f"sidecars of process {process.type} ask for {sidecar_memory}M, which leaves nothing of the process's "
            f"{process.memory_mb}M: raise the process memory or lower the sidecars'",
        )
    main: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": facts.pinned,
        "imagePullPolicy": "IfNotPresent",  # a digest never changes
        **_start_command(process, facts),
        "workingDir": facts.workdir or "/",
        "ports": [
            {"name": _port_name(port, ports, routed), "containerPort": port, "protocol": "TCP"} for port in ports.listed
        ],
        "env": container_env(app, facts, process, ports.routed, ports.listed, uris, has_services=bool(files)),
        "resources": _resources(process.memory_mb - sidecar_memory, process.disk_mb),
        "securityContext": container_security_context(),
        **probes(process, ports),
        **({"lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}} if process.type == WEB else {}),
        **({"volumeMounts": [bindings.mount()]} if files else {}),
    }
    sidecars = [
        {
            "name": f"sidecar-{sidecar.name}",
            "image": facts.pinned,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", literal(sidecar.command)],
            "workingDir": facts.workdir or "/",
            "env": list(main["env"]),  # sidecars see the app's environment, as in CF
            "securityContext": container_security_context(),
            **({"resources": _resources(to_megabytes(sidecar.memory), None)} if sidecar.memory else {}),
            **({"volumeMounts": [bindings.mount()]} if files else {}),
        }
        for sidecar in process.sidecars
    ]
    return [main, *sidecars]


def deployment(
    app: App,
    facts: ImageFacts,
    process: ProcessPlan,
    ports: Ports,
    run_as: RunAs,
    uris: list[str],
    pull_secrets: list[str],
    files: list[BindingFiles],
    restaged: str | None = None,
    routes: tuple[Route, ...] = (),
) -> dict[str, Any]:
    """`routes`: what the App routes (routed_routes); its web instances carry each route's label (S19)."""
    # The manifest's annotations go on the pods (S19), under wharf's own: ours win.
    template_annotations = {**names.user_annotations(app), names.DIGEST_ANNOTATION: facts.digest}
    if app.spec.restarted_at:
        # S15 restart: a new value rolls the pods; the digest stays the same.
        template_annotations[names.RESTARTED_AT_ANNOTATION] = app.spec.restarted_at
    if restaged:
        # S15 restage: once the registry answered the restage, the pods roll even when the digest did not move.
        template_annotations[names.RESTAGED_ANNOTATION] = restaged
    web_routes = routes if process.type == WEB else ()
    containers = _containers(app, facts, process, ports, uris, files, routed=bool(web_routes))
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # CF apps get no docker-link variables
        "securityContext": pod_security_context(run_as, min(ports.listed)),
        "containers": containers,
        # CF's graceful stop: 10 seconds between TERM and KILL (after the web instance's drain).
        "terminationGracePeriodSeconds": STOP_GRACE_SECONDS + (DRAIN_SECONDS if process.type == WEB else 0),
    }
    if files:
        main = containers[0]
        pod_spec["initContainers"] = [
            bindings.init_container(app, files, facts.pinned, main["resources"], container_security_context())
        ]
        pod_spec["volumes"] = [bindings.volume(files)]
    if run_as.user_namespace:
        pod_spec["hostUsers"] = False
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(app, names.deployment_name(app, process.type), process.type),
        "spec": {
            "replicas": process.replicas,
            "revisionHistoryLimit": REVISION_HISTORY,
            "selector": {"matchLabels": names.selector(app, process.type)},
            # S15: new instances come up healthy before old ones go, one at a time (CF's max_in_flight 1).
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": {
                        **names.labels(app, process.type),
                        **{names.route_label(r.host, r.path): "true" for r in web_routes},
                    },
                    "annotations": template_annotations,
                },
                "spec": pod_spec,
            },
        },
    }


def service(app: App, ports: Ports) -> dict[str, Any]:
    """S6: the web Service's port is the routed port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(app, names.service_name(app), WEB),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector(app, WEB),
            "ports": [{"name": "http", "port": ports.routed, "targetPort": ports.routed, "protocol": "TCP"}],
        },
    }


def route_service(app: App, route: Route, ports: Ports) -> dict[str, Any]:
    """S19 blue-green: the App's Service for one route selects the web instances of every App in the namespace that
    routes it (their route label), on their routed port by name. The App owns it alone (S17); the Services of the
    other Apps on the route select the same instances, so whichever App's Ingress or HTTPRoute the ingress
    controller or gateway honours, the traffic spreads over all of them, as CF spreads a route's traffic over every
    app mapped to it."""
    annotations = {names.ROUTE_ANNOTATION: f"{route.host}{route.path}"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(app, names.route_service_name(app, route.host, route.path), WEB, annotations),
        "spec": {
            "type": "ClusterIP",
            "selector": {names.route_label(route.host, route.path): "true"},
            "ports": [{"name": "http", "port": ports.routed, "targetPort": names.ROUTED_PORT_NAME, "protocol": "TCP"}],
        },
    }


def registry_host(reference: str) -> str:
    """The registry part of a normalized reference (`docker.io/library/nginx:1` -> `docker.io`)."""
    return reference.split("/", 1)[0]


def pull_secret(app: App, facts: ImageFacts, username: str, password: str) -> dict[str, Any]:
    """The App's registry credentials as the kubelet reads them (kubernetes.io/dockerconfigjson)."""
    host = registry_host(facts.reference)
    key = DOCKER_HUB_AUTH_KEY if host == "docker.io" else host
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {key: {"username": username, "password": password, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(app, names.pull_secret_name(app)),
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps(config)},
    }


def services_secret(
    app: App, credentials: Mapping[str, Mapping[str, str]], files: list[BindingFiles]
) -> dict[str, Any]:
    """What the App's containers see of the Secrets it binds: VCAP_SERVICES, grouped as CF does (user-provided
    services), and the binding files' contents."""
    entries: list[dict[str, Any]] = [
        {
            "name": bound.directory,
            "instance_name": bound.name,
            "binding_name": bound.binding_name,
            "label": bindings.DEFAULT_TYPE,
            "tags": [],
            "credentials": dict(credentials.get(bound.name, {})),
        }
        for bound in app.spec.manifest.bindings()
    ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(app, names.services_secret_name(app)),
        "type": "Opaque",
        "stringData": {
            "VCAP_SERVICES": json.dumps({bindings.DEFAULT_TYPE: entries}),
            **bindings.secret_data(files, credentials),
        },
    }


def app_routes(app: App, settings: Settings) -> CfRoutes:
    """The App's routes, v6 route keys translated (S20). Raises RenderError when they cannot become routes."""
    try:
        return cf_routes(app.spec.manifest, app.app_name, settings.default_domain)
    except RouteKeysError as error:
        raise RenderError(Reason.INVALID_SPEC, str(error)) from None


def routed_routes(cf: CfRoutes, settings: Settings) -> tuple[Route, ...]:
    """The App's routes (app_routes) that become routing objects: none when the admin enabled no routing; one per
    host and path (a route listed twice, or with another port or case, is routed once)."""
    if settings.routing is Routing.NONE:
        return ()
    unique: dict[tuple[str, str], Route] = {}
    for route in cf.routes:
        unique.setdefault((route.host, route.path), route)
    return tuple(unique.values())


def routing(app: App, routes: tuple[Route, ...], ports: Ports, settings: Settings) -> list[dict[str, Any]]:
    """S11: routes to the App's route Services (route_service), as the admin enabled (Ingress or Gateway API
    HTTPRoute): one Service per route. Routing objects carry the cluster admin's annotations only: annotations
    configure the ingress controller or gateway (snippets, auth URLs), which is the admin's to do, never an App
    author's (S19). `routes`: routed_routes."""
    if not routes:
        return []

    def backend(route: Route) -> str:
        return names.route_service_name(app, route.host, route.path)

    if settings.routing is Routing.INGRESS:
        spec: dict[str, Any] = {
            "rules": [
                {
                    "host": route.host,
                    "http": {
                        "paths": [
                            {
                                "path": route.path,
                                "pathType": "Prefix",
                                "backend": {"service": {"name": backend(route), "port": {"number": ports.routed}}},
                            }
                        ]
                    },
                }
                for route in routes
            ]
        }
        if settings.ingress_class:
            spec["ingressClassName"] = settings.ingress_class
        return [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": _meta(app, app.name, annotations=settings.routing_annotations),
                "spec": spec,
            }
        ]
    parent: dict[str, Any] = {"name": settings.gateway_name}
    if settings.gateway_namespace:
        parent["namespace"] = settings.gateway_namespace
    # An HTTPRoute's rules apply to all its hostnames, so one route per hostname: routes `a.example.com/api` and
    # `b.example.com` must not also claim `a.example.com/` and `b.example.com/api` from other Apps.
    hosts = sorted({route.host for route in routes})
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": _meta(app, names.route_name(app, host), annotations=settings.routing_annotations),
            "spec": {
                "parentRefs": [parent],
                "hostnames": [host],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                        "backendRefs": [{"name": backend(route), "port": ports.routed}],
                    }
                    for route in routes
                    if route.host == host
                ],
            },
        }
        for host in hosts
    ]


def owned_kinds(settings: Settings) -> list[tuple[str, str]]:
    """(apiVersion, kind) of every listable object kind `render` may create with these settings: what a reconcile
    prunes when the App stops asking for an object. The derived Secrets are found by name instead (see
    names.derived_secret_names): the operator never lists Secrets."""
    kinds = [("apps/v1", "Deployment"), ("v1", "Service")]
    if settings.routing is Routing.INGRESS:
        kinds.append(("networking.k8s.io/v1", "Ingress"))
    elif settings.routing is Routing.GATEWAY:
        kinds.append(("gateway.networking.k8s.io/v1", "HTTPRoute"))
    return kinds


def _image_age(facts: ImageFacts, settings: Settings, now: datetime | None) -> list[ManifestWarning]:
    """S16: the root filesystem is the user's; an image built long ago likely carries an unpatched base."""
    limit = settings.image_age_warning_days
    if not limit or now is None or facts.created is None:
        return []
    created = facts.created if facts.created.tzinfo else facts.created.replace(tzinfo=UTC)
    age = (now - created).days
    if age <= limit:
        return []
    return [
        ManifestWarning(
            Reason.OLD_IMAGE,
            # No day count in the text: it would change the status (and post an Event) every day.
            f"the image was built {created:%Y-%m-%d}, more than {limit} days ago: rebuild it on a current base image "
            "(its root filesystem is yours to patch)",
        )
    ]


def manifest_warnings(
    app: App,
    facts: ImageFacts,
    settings: Settings,
    credentials: Mapping[str, Mapping[str, str]],
    routes: CfRoutes,
    now: datetime | None = None,
) -> list[ManifestWarning]:
    """In a stable order: ignored keys (S2) first, as most pasted CF manifests have them. `routes`: app_routes."""
    manifest = app.spec.manifest
    warnings = [
        ManifestWarning(Reason.IGNORED_KEYS, f"{key} is ignored for image apps") for key in manifest.ignored_keys()
    ]
    warnings += [
        ManifestWarning(Reason.NOT_ENFORCED, f"{key} is accepted but not enforced on Kubernetes")
        for key in manifest.unenforced_keys()
    ]
    web_entry = next((p for p in manifest.processes if p.type == WEB), None)
    if web_entry and web_entry.instances is not None and manifest.instances not in (None, web_entry.instances):
        # What `kubectl scale app` writes (the scale subresource's path) must not be lost silently.
        warnings.append(
            ManifestWarning(
                Reason.INSTANCES_OVERRIDDEN,
                f"instances: {manifest.instances} is overridden by the processes web entry's instances: "
                f"{web_entry.instances} (kubectl scale sets the top-level value): scale by editing the web entry, "
                "or remove its instances",
            )
        )
    warnings += [
        ManifestWarning(
            Reason.SERVICE_SECRET_MISSING,
            f"service {b.name} is bound but no Secret {b.name} exists in namespace {app.namespace}: create it "
            "(until then the App sees no credentials for it)",
        )
        for b in manifest.bindings()
        if b.name not in credentials
    ]
    warnings += [ManifestWarning(Reason.NOT_ENFORCED, text) for text in routes.warnings]
    if routes.routes and settings.routing is Routing.NONE:
        warnings.append(
            ManifestWarning(
                Reason.ROUTES_NOT_ROUTED,
                "routes are not routed: the cluster admin has not enabled Ingress or Gateway routing",
            )
        )
    return warnings + _image_age(facts, settings, now)


def render(
    app: App,
    facts: ImageFacts,
    settings: Settings,
    *,
    registry_password: str | None = None,
    service_credentials: Mapping[str, Mapping[str, str]] | None = None,
    restaged: str | None = None,
    now: datetime | None = None,
    route_conflict: str | None = None,
) -> Rendered:
    """Everything the App owns. Raises RenderError when the App cannot run (no start command, refused user).

    `service_credentials` maps each bound Secret that exists to its data.
    `now` dates the image's age (S16); without it, no age warning.
    `restaged` is the restage token the image resolution answered (not the one asked for: a restage still waiting
    for the registry must not roll the pods onto an image it could not re-read).
    `route_conflict` (S19, status.routes.route_conflict) says why no routing object is rendered."""
    ports = choose(app, facts)
    run_as = decide_user(facts, settings)
    processes = plan(app, settings)
    cf = app_routes(app, settings)  # parsed once: the env's URIs, the routing objects and the warnings read it
    uris = [route.route for route in cf.routes]
    routes = routed_routes(cf, settings)
    objects: list[dict[str, Any]] = []
    pull_secrets = [ref.name for ref in app.spec.image_pull_secrets]
    if app.spec.username and registry_password is not None:
        objects.append(pull_secret(app, facts, app.spec.username, registry_password))
        pull_secrets.insert(0, names.pull_secret_name(app))
    credentials = service_credentials or {}
    files = bindings.plan(app, credentials)
    if files:
        objects.append(services_secret(app, credentials, files))
    objects.extend(
        deployment(app, facts, process, ports, run_as, uris, pull_secrets, files, restaged, routes)
        for process in processes
    )
    objects.append(service(app, ports))
    if route_conflict is None:
        # The pods keep their route labels under a conflict (no restart when the owner goes); nothing routes to them.
        objects.extend(route_service(app, route, ports) for route in routes)
        objects.extend(routing(app, routes, ports, settings))
    warnings = manifest_warnings(app, facts, settings, credentials, cf, now)
    return Rendered(
        objects=objects,
        ports=ports,
        run_as=run_as,
        processes=processes,
        routes=uris,
        warnings=warnings,
        route_conflict=route_conflict,
    )
