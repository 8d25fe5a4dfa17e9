"""S5: the start command (`sh -c`), the image's ENTRYPOINT/CMD, NoStartCommand, and the working directory."""

from __future__ import annotations

import pytest
from render_support import main_container, make_app, make_facts, of_kind, render_ok

from wharf.api.conditions import Reason
from wharf.config import Settings
from wharf.render import RenderError, render


def test_command_runs_under_sh_c_and_discards_entrypoint_and_cmd() -> None:
    # S5
    facts = make_facts(entrypoint=("/docker-entrypoint.sh",), cmd=("nginx", "-g", "daemon off;"))
    container = main_container(render_ok(make_app({"command": "bundle exec rackup -p $PORT"}), facts))
    # As written: the kubelet leaves `$PORT` alone (test_render_expansion.py runs the kubelet's code on commands)
    assert container["command"] == ["sh", "-c", "bundle exec rackup -p $PORT"]
    assert "args" not in container


@pytest.mark.parametrize(
    ("entrypoint", "cmd"), [(("/entry",), None), (None, ("server", "--flag")), (("/entry",), ("arg",))]
)
def test_no_command_leaves_the_image_entrypoint_and_cmd(
    entrypoint: tuple[str, ...] | None, cmd: tuple[str, ...] | None
) -> None:
    # S5
    container = main_container(render_ok(make_app(), make_facts(entrypoint=entrypoint, cmd=cmd)))
    assert "command" not in container
    assert "args" not in container


@pytest.mark.parametrize(("entrypoint", "cmd"), [(None, None), ((), ()), ((), None)])
def test_no_command_and_no_entrypoint_or_cmd_is_a_clear_error(
    entrypoint: tuple[str, ...] | None, cmd: tuple[str, ...] | None
) -> None:
    # S5
    with pytest.raises(RenderError) as raised:
        render(make_app(), make_facts(entrypoint=entrypoint, cmd=cmd), Settings())
    assert raised.value.reason is Reason.NO_START_COMMAND
    assert "No start command found or specified" in raised.value.message


def test_a_command_makes_an_image_without_entrypoint_runnable() -> None:
    # S5
    container = main_container(render_ok(make_app({"command": "./run"}), make_facts(entrypoint=None, cmd=None)))
    assert container["command"] == ["sh", "-c", "./run"]


def test_process_without_command_fails_even_when_web_has_one() -> None:
    # S5: the check is per process type; a worker with no command and a bare image cannot start
    app = make_app({"command": "./web", "processes": [{"type": "worker"}]})
    with pytest.raises(RenderError) as raised:
        render(app, make_facts(entrypoint=None, cmd=None), Settings())
    assert raised.value.reason is Reason.NO_START_COMMAND
    assert "worker" in raised.value.message


def test_each_process_type_runs_its_own_command() -> None:
    # S5
    app = make_app({"command": "./web", "processes": [{"type": "worker", "command": "./work"}]})
    rendered = render_ok(app)
    assert main_container(rendered)["command"] == ["sh", "-c", "./web"]
    assert main_container(rendered, "worker")["command"] == ["sh", "-c", "./work"]
    assert len(of_kind(rendered, "Deployment")) == 2


@pytest.mark.parametrize(("workdir", "expected"), [("/srv/app", "/srv/app"), ("", "/")])
def test_working_directory_is_the_image_workdir_else_root(workdir: str, expected: str) -> None:
    # S5
    assert main_container(render_ok(make_app(), make_facts(workdir=workdir)))["workingDir"] == expected
