"""pytest plugin: real Registry V2 servers for the whole suite (loaded from tests/conftest.py).

Session-scoped, one per mode, sharing one CA (`registry_ca`) so a client needs a single CA bundle:
`registry_plain` (HTTP), `registry_tls`, `registry_basic` (htpasswd over TLS), `registry_token` (Bearer tokens
over TLS). They are started lazily, only for tests that ask, and stopped at session end even when tests fail
(plus an atexit safety net in registry.py). Tests must not stop the shared ones: use `stoppable_registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import images
from harness.certs import CA
from harness.registry import Mode, RegistryServer


@pytest.fixture(scope="session")
def registry_ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("registry-ca"), name="wharf-test-registry-ca")


def _serve(mode: Mode, ca: CA, workdir: Path) -> Iterator[RegistryServer]:
    # Work dirs live under pytest's tmp dirs (kept for the last runs): registry.log is there after a failure.
    with RegistryServer(mode, ca=ca, workdir=workdir) as server:
        yield server


@pytest.fixture(scope="session")
def registry_plain(registry_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve("plain", registry_ca, tmp_path_factory.mktemp("registry-plain"))


@pytest.fixture(scope="session")
def registry_tls(registry_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve("tls", registry_ca, tmp_path_factory.mktemp("registry-tls"))


@pytest.fixture(scope="session")
def registry_basic(registry_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve("basic", registry_ca, tmp_path_factory.mktemp("registry-basic"))


@pytest.fixture(scope="session")
def registry_token(registry_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve("token", registry_ca, tmp_path_factory.mktemp("registry-token"))


@pytest.fixture
def stoppable_registry(registry_ca: CA, tmp_path: Path) -> Iterator[RegistryServer]:
    """A plain-HTTP registry of this test's own, to stop()/start() (same port, same storage) for outages."""
    yield from _serve("plain", registry_ca, tmp_path / "stoppable-registry")


@pytest.fixture(scope="session")
def push_image() -> Callable[..., str]:
    """`push_image(registry, repository, tag, spec, *, platforms=None, fmt="oci") -> digest`."""
    return images.push_image
