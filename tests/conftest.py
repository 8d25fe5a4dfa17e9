"""Shared pytest set-up: the harness fixtures are plugins so each part of the harness owns its own file."""

pytest_plugins = [
    "harness.fixtures_registry",
    "harness.fixtures_cluster",
    "harness.fixtures_operator",
    "harness.fixtures_kubelet",
    "harness.fixtures_node",
]
