"""S20: whole CF manifests as the cf CLI reads them, turned into Apps (wharf convert, wharf push), no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from wharf.cli import views
from wharf.cli.commands import cli, log_line, log_prefix
from wharf.cli.manifests import ManifestError, Overrides, load_vars, plan, read_manifest, select, to_yaml
from wharf.render.names import app_resource_name

MANIFEST = """---
version: 1
defaults: &defaults
  memory: 256M
  instances: 2
applications:
- name: fortune_teller
  <<: *defaults
  docker:
    image: registry.example.com/fortune:((tag))
  routes:
  - route: fortune.((domain))
- name: MyApp
  <<: *defaults
  memory: 1G
  docker:
    image: registry.example.com/myapp:1
  env:
    WORKERS: ((workers))
"""
VARS = {"tag": "1.10", "domain": "example.com", "workers": 4}


def _entries(text: str = MANIFEST, variables: dict[str, object] | None = None) -> list[dict[str, object]]:
    entries, _ = read_manifest(text, VARS if variables is None else variables)
    return entries


def test_several_applications_anchors_merge_keys_and_vars() -> None:
    # S20
    fortune, myapp = _entries()
    assert fortune["memory"] == "256M"
    assert fortune["instances"] == 2
    assert fortune["docker"] == {"image": "registry.example.com/fortune:1.10"}
    assert fortune["routes"] == [{"route": "fortune.example.com"}]
    assert myapp["memory"] == "1G"  # the entry's own key wins over the merged one
    assert myapp["env"] == {"WORKERS": 4}  # a whole-value var keeps its type


def test_an_unfilled_var_is_an_error_naming_it() -> None:
    # S20: the cf CLI's words
    with pytest.raises(ManifestError, match=r"^Expected to find variables: domain, workers$"):
        _entries(variables={"tag": "1"})


def test_vars_files_then_var_flags_later_wins(tmp_path: Path) -> None:
    # S20: --vars-file then --var, as the cf CLI layers them; --var values splice in as typed (1.10 stays 1.10)
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    first.write_text("tag: '1'\ndomain: a.example.com\nworkers: 1\n")
    second.write_text("domain: b.example.com\n")
    variables = load_vars([first, second], ["tag=1.10", "workers=3"])
    fortune, myapp = _entries(variables=variables)
    assert fortune["docker"] == {"image": "registry.example.com/fortune:1.10"}
    assert fortune["routes"] == [{"route": "fortune.b.example.com"}]
    assert myapp["env"] == {"WORKERS": 3}


def test_version_other_than_1_is_refused() -> None:
    # S20
    with pytest.raises(ManifestError, match="version 2 is not supported"):
        read_manifest("version: 2\napplications: []\n", {})


def test_v6_top_level_keys_are_inherited_with_a_warning() -> None:
    # S20: cf v6 applied top-level keys to every application
    entries, warnings = read_manifest("memory: 512M\napplications:\n- name: a\n- name: b\n  memory: 1G\n", {})
    assert [e["memory"] for e in entries] == ["512M", "1G"]
    assert "top-level memory apply to every application as in cf CLI v6" in warnings[0]


def test_app_name_overrides_a_single_entry_and_selects_one_of_several() -> None:
    # S20: cf push APP
    (only,) = select([{"name": "a", "memory": "1G"}], "renamed", Overrides())
    assert only == {"name": "renamed", "memory": "1G"}
    (chosen,) = select(_entries(), "MyApp", Overrides(instances=5))
    assert chosen["name"] == "MyApp"
    assert chosen["instances"] == 5
    with pytest.raises(ManifestError, match="Could not find app named 'nope' in manifest"):
        select(_entries(), "nope", Overrides())
    with pytest.raises(ManifestError, match="cannot be applied when pushing multiple apps"):
        select(_entries(), None, Overrides(memory="1G"))


def test_flags_override_the_entry_as_cf_push_flags_do() -> None:
    # S20
    (entry,) = select(
        [{"name": "a", "routes": [{"route": "a.example.com"}], "docker": {"image": "old"}}],
        None,
        Overrides(docker_image="new", instances=3, memory="2G", disk_quota="1G", command="./run", no_route=True),
    )
    assert entry == {
        "name": "a",
        "no-route": True,
        "docker": {"image": "new"},
        "instances": 3,
        "memory": "2G",
        "disk_quota": "1G",
        "command": "./run",
    }


@pytest.mark.parametrize(
    ("cf_name", "expected"),
    [
        ("hello", "hello"),
        ("fortune_teller", "fortune-teller-159b35c9"),
        ("MyApp", "myapp-4de339ce"),
        ("my.app", "my-app-13d7e337"),
        ("9lives", "app-9lives-bc867356"),
    ],
)
def test_cf_names_kubernetes_cannot_carry_get_a_derived_name(cf_name: str, expected: str) -> None:
    # S20: deterministic, valid, and the CF name stays in the manifest
    assert app_resource_name(cf_name) == expected
    (app,) = plan([{"name": cf_name, "docker": {"image": "nginx"}}], "space")
    assert app.name == expected
    assert app.resource["spec"]["manifest"]["name"] == cf_name


def test_a_long_name_is_cut_to_63_characters_and_two_names_that_read_alike_differ() -> None:
    # S20
    long = app_resource_name("a" * 100)
    assert len(long) == 63
    assert long.startswith("a" * 54)
    assert app_resource_name("my_app") != app_resource_name("my.app")


def test_two_entries_with_one_kubernetes_name_are_refused() -> None:
    # S20: collision-checked
    entries = [{"name": "shop", "docker": {"image": "nginx"}}, {"name": "shop", "docker": {"image": "nginx"}}]
    with pytest.raises(ManifestError, match="would both be the App shop: rename one"):
        plan(entries, None)


def test_an_entry_is_checked_as_the_apiserver_checks_it_before_anything_is_applied() -> None:
    # S20: a bare number refused in the CF API's words, naming the app
    with pytest.raises(ManifestError, match=r"^a: manifest.memory: memory: '1024' must use a supported unit"):
        plan([{"name": "a", "memory": 1024, "docker": {"image": "nginx"}}], None)
    with pytest.raises(ManifestError, match="no image: give --docker-image IMAGE"):
        plan([{"name": "a"}], None)
    with pytest.raises(ManifestError, match="needs its password: set CF_DOCKER_PASSWORD"):
        plan([{"name": "a", "docker": {"image": "nginx", "username": "me"}}], None)


def test_the_password_is_referenced_never_inline() -> None:
    # S1: the password lives in a Secret the App names
    (app,) = plan([{"name": "a", "docker": {"image": "nginx", "username": "me"}}], None, with_password=True)
    assert app.resource["spec"]["dockerUsername"] == "me"
    assert app.resource["spec"]["dockerPasswordSecretRef"] == {"name": "a-docker-password", "key": "password"}
    assert "password" not in str(app.resource["spec"]["manifest"])


def test_convert_is_deterministic_yaml_with_no_cluster(tmp_path: Path) -> None:
    # S20: the same bytes every time, one App per entry
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(MANIFEST)
    args = ["-n", "space", "convert", "-f", str(manifest), "--var", "tag=1.10", "--var", "domain=example.com"]
    args += ["--var", "workers=4"]
    runner = CliRunner()
    first = runner.invoke(cli, args, env={"KUBECONFIG": str(tmp_path / "none")})
    second = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    apps = list(yaml.safe_load_all(first.stdout))
    assert [a["metadata"] for a in apps] == [
        {"name": "fortune-teller-159b35c9", "namespace": "space"},
        {"name": "myapp-4de339ce", "namespace": "space"},
    ]
    assert apps[0]["spec"]["dockerImage"] == "registry.example.com/fortune:1.10"
    entries = [{**e, "name": e["name"]} for e in _entries()]
    assert first.stdout == to_yaml(plan(select(entries, None, Overrides()), "space"))


def test_convert_failure_says_what_to_change_and_exits_non_zero(tmp_path: Path) -> None:
    # S20
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(MANIFEST)
    result = CliRunner().invoke(cli, ["convert", "-f", str(manifest), "--var", "tag=1"])
    assert result.exit_code == 1
    assert "Expected to find variables: domain, workers" in result.stderr


def test_instances_are_numbered_oldest_first_and_states_read_as_cf_states() -> None:
    # S20: cf app's #0, #1 and states
    def pod(name: str, created: str, **status: object) -> dict[str, object]:
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}

    running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    pulling = {
        "phase": "Pending",
        "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}],
    }
    rows = views.instances([pod("b", "2026-01-01T00:00:02Z", **pulling), pod("a", "2026-01-01T00:00:01Z", **running)])
    assert [(r["index"], r["pod"], r["state"]) for r in rows] == [(0, "a", "running"), (1, "b", "down")]
    assert rows[1]["details"] == "ImagePullBackOff: not found"


def test_log_lines_carry_the_instance_as_cf_logs_does() -> None:
    # S20
    assert log_prefix("web", 0) == "[APP/PROC/WEB/0]"
    _stamp, line = log_line("2026-01-01T00:00:00.000000001Z hello world", log_prefix("worker", 2))
    assert line == "2026-01-01T00:00:00.000000001Z [APP/PROC/WORKER/2] OUT hello world"
