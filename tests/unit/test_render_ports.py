"""S6: the image's EXPOSEd TCP ports, the routed (lowest) port, spec.ports, PORT."""

from __future__ import annotations

import pytest
from render_support import env_of, main_container, make_app, make_facts, of_kind, render_ok

from wharf.render.ports import DEFAULT_PORT


def _service_port(rendered: object) -> int:
    (service,) = of_kind(rendered, "Service")  # type: ignore[arg-type]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == port["port"]
    return int(port["port"])


@pytest.mark.parametrize(
    ("exposed", "routed", "listed"),
    [
        ((8080,), 8080, [8080]),
        ((9000, 3000, 5000), 3000, [3000, 5000, 9000]),
        (("53/udp", 8080), 8080, [8080]),
        (("1000/udp", "7000/tcp", 7001), 7000, [7000, 7001]),
        ((), DEFAULT_PORT, [DEFAULT_PORT]),
        (("5353/udp",), DEFAULT_PORT, [DEFAULT_PORT]),
    ],
)
def test_lowest_exposed_tcp_port_is_routed_and_all_are_declared(
    exposed: tuple[int | str, ...], routed: int, listed: list[int]
) -> None:
    # S6
    rendered = render_ok(make_app(), make_facts(exposed))
    assert _service_port(rendered) == routed
    container = main_container(rendered)
    assert env_of(container)["PORT"] == str(routed)
    assert [p["containerPort"] for p in container["ports"]] == listed
    assert all(p["protocol"] == "TCP" for p in container["ports"])
    assert rendered.ports.routed == routed
    assert list(rendered.ports.listed) == listed


def test_default_port_is_8080() -> None:
    # S6
    assert DEFAULT_PORT == 8080
    assert _service_port(render_ok(make_app(), make_facts(()))) == 8080


def test_spec_ports_override_the_image_and_the_first_is_routed() -> None:
    # S6: consul exposes 8300 before its HTTP 8500
    rendered = render_ok(make_app(ports=[8500, 8300]), make_facts((8300, 8301, 8500)))
    assert _service_port(rendered) == 8500
    container = main_container(rendered)
    assert env_of(container)["PORT"] == "8500"
    assert [p["containerPort"] for p in container["ports"]] == [8300, 8500]
    assert rendered.ports.source == "spec"


def test_port_env_overrides_the_image_env_port() -> None:
    # S6, S9: PORT from the image's ENV is overridden by the routed port (the container env wins over image ENV)
    container = main_container(render_ok(make_app(), make_facts((3000,), env=("PORT=80", "PATH=/usr/bin"))))
    ports = [e for e in container["env"] if e["name"] == "PORT"]
    assert ports == [{"name": "PORT", "value": "3000"}]


def test_every_process_gets_the_same_ports_and_port_env() -> None:
    # S6
    rendered = render_ok(make_app({"processes": [{"type": "worker", "instances": 1}]}), make_facts((4000, 4001)))
    for process in ("web", "worker"):
        container = main_container(rendered, process)
        assert env_of(container)["PORT"] == "4000"
        assert [p["containerPort"] for p in container["ports"]] == [4000, 4001]


def test_port_names_are_unique_and_valid() -> None:
    # S6: every listed port is declared, with a name the apiserver accepts (<= 15 chars, unique)
    container = main_container(render_ok(make_app(), make_facts((1, 80, 65535))))
    names = [p["name"] for p in container["ports"]]
    assert len(set(names)) == len(names) == 3
    assert all(len(n) <= 15 for n in names)
