"""Property tests of the renderers (S4-S11, S13): for any valid App and any image, rendering either succeeds with
objects the Kubernetes schema accepts and PodSecurity `restricted` admits, or fails with a reason."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_support import make_facts, restricted_violations, schema_problems

from wharf.api.app import App, AppSpec
from wharf.api.conditions import Reason
from wharf.api.image import ImageFacts
from wharf.config import RootUserPolicy, Routing, Settings
from wharf.render import Rendered, RenderError, render
from wharf.render.security import ROOT_NAMES

QUANTITIES = st.one_of(
    st.sampled_from(["256M", "512M", "1G", "1.5G", "2048K", "64MB", "2g", "128M", "1024mb", "0.5G"]),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 8192), st.sampled_from(["M", "MB", "m", "mb"])),
)
TYPES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(lambda t: t != "web")
SECONDS = st.integers(1, 180)
LABEL = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9]{0,6}[A-Za-z0-9])?", fullmatch=True)
HOSTS = st.builds(lambda labels: ".".join(labels), st.lists(LABEL, min_size=2, max_size=4))
ROUTES = st.builds(
    lambda host, port, path: {"route": host + (f":{port}" if port else "") + (f"/{path}" if path else "")},
    st.one_of(HOSTS, HOSTS.map(lambda h: "*." + h)),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,6}(/[a-z0-9]{1,6})?", fullmatch=True)),
)
ENV_KEYS = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda k: not k.startswith(("VCAP_", "VMC_")) and k != "PORT"
)
ENV = st.dictionaries(ENV_KEYS, st.one_of(st.text(max_size=20), st.integers(-(2**31), 2**31)), max_size=5)


@st.composite
def process_settings(draw: st.DrawFn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    optional = {
        "instances": st.integers(0, 1000),
        "memory": QUANTITIES,
        "disk_quota": QUANTITIES,
        "command": st.text(min_size=1, max_size=40).filter(lambda c: "\x00" not in c),
        "timeout": SECONDS,
        "health-check-invocation-timeout": SECONDS,
        "health-check-interval": st.integers(1, 3600),
        "readiness-health-check-invocation-timeout": SECONDS,
        "readiness-health-check-interval": st.integers(1, 3600),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            values[key] = draw(strategy)
    kind = draw(st.sampled_from([None, "port", "process", "none", "http"]))
    if kind:
        values["health-check-type"] = kind
        if kind == "http" and draw(st.booleans()):
            values["health-check-http-endpoint"] = "/" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
    readiness = draw(st.sampled_from([None, "port", "process", "http"]))
    if readiness:
        values["readiness-health-check-type"] = readiness
        if readiness == "http" and draw(st.booleans()):
            values["readiness-health-check-http-endpoint"] = "/ready"
    return values


@st.composite
def apps(draw: st.DrawFn) -> App:
    manifest = draw(process_settings())
    types = draw(st.lists(TYPES, unique=True, max_size=3))
    processes = [{"type": t, **draw(process_settings())} for t in types]
    if draw(st.booleans()):
        processes.append({"type": "web", **draw(process_settings())})
    manifest["processes"] = processes
    manifest["env"] = draw(ENV)
    if draw(st.booleans()):
        manifest["no-route"] = True
    else:
        manifest["routes"] = draw(st.lists(ROUTES, max_size=3))
    if draw(st.booleans()):
        manifest["name"] = draw(st.text(min_size=1, max_size=30))
    if draw(st.booleans()):
        manifest["sidecars"] = [
            {"name": "agent", "process_types": ["web"], "command": "agent", "memory": draw(QUANTITIES)}
        ]
    if draw(st.booleans()):
        manifest["services"] = draw(st.lists(st.sampled_from(["db", "cache", "queue"]), unique=True, max_size=2))
    spec: dict[str, Any] = {
        "dockerImage": "registry.example.com:5000/team/shop:1.0",
        "manifest": manifest,
        "state": draw(st.sampled_from(["STARTED", "STOPPED"])),
    }
    if draw(st.booleans()):
        spec["ports"] = draw(st.lists(st.integers(1, 65535), min_size=1, max_size=4))
    if draw(st.booleans()):
        spec["restartedAt"] = "2024-05-01T10:00:00Z"
    if draw(st.booleans()):
        spec["dockerUsername"] = "bob"
        spec["dockerPasswordSecretRef"] = {"name": "registry-password"}
    return App(name="shop", namespace="space", uid="u-1", generation=1, spec=AppSpec.model_validate(spec))


USERS = st.one_of(
    st.sampled_from(["", "root", "0", "0:0", "nginx", "www-data:www-data", "1000", "1000:1000", "65534"]),
    st.integers(1, 2**31 - 1).map(str),
)


@st.composite
def image_facts(draw: st.DrawFn) -> ImageFacts:
    ports = draw(
        st.lists(
            st.builds(lambda p, proto: f"{p}/{proto}", st.integers(1, 65535), st.sampled_from(["tcp", "udp"])),
            max_size=5,
        )
    )
    argv = st.one_of(
        st.none(), st.just(()), st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3).map(tuple)
    )
    return make_facts(
        tuple(ports),
        user=draw(USERS),
        entrypoint=draw(argv),
        cmd=draw(argv),
        workdir=draw(st.sampled_from(["", "/app", "/srv/www"])),
        env=draw(st.sampled_from([(), ("PORT=80",), ("PATH=/bin", "PORT=1")])),
    )


SETTINGS = st.builds(
    Settings,
    root_user_policy=st.sampled_from(list(RootUserPolicy)),
    routing=st.sampled_from(list(Routing)),
    default_uid=st.integers(1, 2**31 - 1),
    default_memory_mb=st.integers(64, 4096),
    default_disk_mb=st.integers(64, 4096),
    gateway_name=st.just("edge"),
)


def _expected_routed(app: App, facts: ImageFacts) -> int:
    if app.spec.ports:
        return app.spec.ports[0]
    tcp = [p.port for p in facts.exposed_ports if p.protocol == "tcp"]
    return min(tcp) if tcp else 8080


def _root_like(user: str) -> bool:
    name = user.partition(":")[0]
    return name in ROOT_NAMES or not name.isdigit() or int(name) == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(app=apps(), facts=image_facts(), cluster=SETTINGS)
def test_render_is_valid_or_fails_with_a_reason(app: App, facts: ImageFacts, cluster: Settings) -> None:
    # S4, S5, S6, S7, S8, S9, S10, S11, S13
    failure: RenderError | None = None
    try:
        rendered = render(app, facts, cluster, registry_password="pw", service_credentials={"db": {"u": "x"}})
    except RenderError as raised:
        failure = raised
    if failure is not None:
        _check_failure(failure, facts, cluster)
        return
    _check_rendered(app, facts, cluster, rendered)


def _check_failure(error: RenderError, facts: ImageFacts, cluster: Settings) -> None:
    assert error.reason in {Reason.NO_START_COMMAND, Reason.ROOT_USER_REFUSED, Reason.INVALID_SPEC}
    assert error.message
    if error.reason is Reason.ROOT_USER_REFUSED:
        assert cluster.root_user_policy is RootUserPolicy.REFUSE
        assert _root_like(facts.user)
    if error.reason is Reason.NO_START_COMMAND:
        assert not facts.entrypoint
        assert not facts.cmd


def _check_rendered(app: App, facts: ImageFacts, cluster: Settings, rendered: Rendered) -> None:
    # It rendered: it must not have rendered what the rules forbid.
    assert not (cluster.root_user_policy is RootUserPolicy.REFUSE and _root_like(facts.user))
    for obj in rendered.objects:
        assert schema_problems(obj) == [], obj["kind"]
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    deployments = [o for o in rendered.objects if o["kind"] == "Deployment"]
    assert len(deployments) == 1 + len([p for p in app.spec.manifest.processes if p.type != "web"])
    routed = _expected_routed(app, facts)
    services = [o for o in rendered.objects if o["kind"] == "Service"]
    (service,) = [o for o in services if o["metadata"]["name"] == app.name]
    assert all(s["spec"]["ports"][0]["port"] == routed for s in services)
    # S19: each route Service selects the route label the App's web instances carry, on the routed port by name.
    (web,) = [o for o in deployments if o["metadata"]["name"] == f"{app.name}-web"]
    template = web["spec"]["template"]
    for route_service in [s for s in services if s is not service]:
        assert route_service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        target = route_service["spec"]["ports"][0]["targetPort"]
        main_ports = template["spec"]["containers"][0]["ports"]
        assert {"name": target, "containerPort": routed, "protocol": "TCP"} in main_ports
    for obj in deployments:
        pod = obj["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        assert all(set(v) == {"name", "emptyDir"} for v in pod.get("volumes", []))  # S8
        assert pod["securityContext"]["runAsUser"] != 0
        main = pod["containers"][0]
        assert main["image"] == facts.pinned  # S13
        assert {"name": "PORT", "value": str(routed)} in main["env"]
        if app.spec.state.value == "STOPPED":
            assert obj["spec"]["replicas"] == 0
    if app.spec.manifest.no_route or cluster.routing is Routing.NONE or not app.spec.manifest.routes:
        assert not [o for o in rendered.objects if o["kind"] in ("Ingress", "HTTPRoute")]


@settings(max_examples=100, deadline=None)
@given(facts=image_facts())
def test_ports_are_the_tcp_exposed_ones_ascending_or_8080(facts: ImageFacts) -> None:
    # S6
    from render_support import make_app

    app = make_app({"command": "run"})
    rendered = render(app, facts, Settings())
    tcp = sorted({p.port for p in facts.exposed_ports if p.protocol == "tcp"})
    assert list(rendered.ports.listed) == (tcp or [8080])
    assert rendered.ports.routed == (tcp[0] if tcp else 8080)
