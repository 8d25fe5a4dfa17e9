"""S10: health checks as probes, with CF's timing meaning."""

from __future__ import annotations

import pytest
from render_support import main_container, make_app, make_facts, render_ok

from wharf.render.expansion import literal
from wharf.render.probes import STARTUP_PERIOD, listening_check

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def test_web_defaults_to_a_tcp_port_check_when_one_port_is_listed() -> None:
    # S10: `port` is the default for web; one listed port is the kubelet's own TCP check
    container = main_container(render_ok(make_app(), make_facts((3000,))))
    assert container["startupProbe"]["tcpSocket"] == {"port": 3000}
    assert container["livenessProbe"]["tcpSocket"] == {"port": 3000}
    assert "readinessProbe" not in container
    assert container["livenessProbe"]["timeoutSeconds"] == 1
    assert container["livenessProbe"]["periodSeconds"] == 30


def test_port_check_covers_every_listed_port() -> None:
    # S10: `port` = TCP check on every listed port; several ports are one exec probe running listening_check (made
    # literal: the kubelet hands the shell the script as written, test_render_expansion.py)
    container = main_container(render_ok(make_app(), make_facts((5000, 3000, 9100))))
    for probe in ("startupProbe", "livenessProbe"):
        assert "tcpSocket" not in container[probe]
        assert container[probe]["exec"] == {"command": ["sh", "-c", literal(listening_check((3000, 5000, 9100)))]}
    script = container["livenessProbe"]["exec"]["command"][2]
    assert "for want in 3000:0BB8 5000:1388 9100:238C; do" in script
    assert container["livenessProbe"]["timeoutSeconds"] == 1


def test_readiness_port_check_covers_every_listed_port() -> None:
    # S10: readiness-health-check-type port, like health-check-type port
    app = make_app({"health-check-type": "process", "readiness-health-check-type": "port"})
    container = main_container(render_ok(app, make_facts((8080, 8443))))
    assert "livenessProbe" not in container
    assert container["readinessProbe"]["exec"] == {"command": ["sh", "-c", literal(listening_check((8080, 8443)))]}


def test_other_types_default_to_process_no_probe() -> None:
    # S10: `process` is the default for other types
    rendered = render_ok(make_app({"processes": [{"type": "worker", "instances": 1}]}))
    worker = main_container(rendered, "worker")
    assert not any(p in worker for p in PROBES)


@pytest.mark.parametrize("kind", ["process", "none"])
def test_process_and_none_render_no_probe(kind: str) -> None:
    # S10: `none` is an alias of `process`
    container = main_container(render_ok(make_app({"health-check-type": kind})))
    assert not any(p in container for p in PROBES)
    assert render_ok(make_app({"health-check-type": kind})).processes[0].health.type.value == "process"


def test_http_checks_the_endpoint_on_the_lowest_port() -> None:
    # S10
    app = make_app({"health-check-type": "http", "health-check-http-endpoint": "/healthz"})
    container = main_container(render_ok(app, make_facts((9090, 8081))))
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 8081}
        assert "tcpSocket" not in container[probe]


def test_http_endpoint_defaults_to_slash() -> None:
    # S10
    container = main_container(render_ok(make_app({"health-check-type": "http"})))
    assert container["livenessProbe"]["httpGet"] == {"path": "/", "port": 8080}


@pytest.mark.parametrize("timeout", [None, 1, 2, 3, 59, 60, 61, 179, 180])
def test_timeout_is_the_startup_allowance(timeout: int | None) -> None:
    # S10: default 60, max 180; the startup probe allows at least `timeout` seconds
    manifest = {} if timeout is None else {"timeout": timeout}
    startup = main_container(render_ok(make_app(manifest)))["startupProbe"]
    allowance = startup["failureThreshold"] * startup["periodSeconds"]
    wanted = 60 if timeout is None else timeout
    assert allowance >= wanted
    assert allowance < wanted + STARTUP_PERIOD + 1  # not much more than asked
    assert startup["failureThreshold"] >= 1


def test_interval_and_invocation_timeout_apply_after_start() -> None:
    # S10
    app = make_app({"health-check-interval": 7, "health-check-invocation-timeout": 3})
    container = main_container(render_ok(app))
    assert container["livenessProbe"]["periodSeconds"] == 7
    assert container["livenessProbe"]["timeoutSeconds"] == 3
    assert container["startupProbe"]["timeoutSeconds"] == 3
    # a probe's timeout must not exceed its period, or checks overlap
    assert container["livenessProbe"]["timeoutSeconds"] <= container["livenessProbe"]["periodSeconds"]


def test_readiness_keys_become_the_readiness_probe() -> None:
    # S10
    app = make_app(
        {
            "readiness-health-check-type": "http",
            "readiness-health-check-http-endpoint": "/ready",
            "readiness-health-check-interval": 5,
            "readiness-health-check-invocation-timeout": 2,
        }
    )
    readiness = main_container(render_ok(app, make_facts((3000,))))["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/ready", "port": 3000}
    assert readiness["periodSeconds"] == 5
    assert readiness["timeoutSeconds"] == 2


def test_readiness_port_and_process() -> None:
    # S10
    port = main_container(render_ok(make_app({"readiness-health-check-type": "port"})))
    assert port["readinessProbe"]["tcpSocket"] == {"port": 8080}
    process = main_container(render_ok(make_app({"readiness-health-check-type": "process"})))
    assert "readinessProbe" not in process


def test_processes_entry_sets_its_own_health_check() -> None:
    # S10: per process
    app = make_app(
        {
            "health-check-type": "http",
            "processes": [{"type": "worker", "instances": 1, "health-check-type": "port", "timeout": 120}],
        }
    )
    rendered = render_ok(app)
    assert "httpGet" in main_container(rendered)["livenessProbe"]
    worker = main_container(rendered, "worker")
    assert worker["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert worker["startupProbe"]["failureThreshold"] * worker["startupProbe"]["periodSeconds"] >= 120
