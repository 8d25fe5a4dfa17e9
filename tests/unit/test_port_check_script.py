"""S10: the several-port `port` health check is an `sh` script; here it runs under real shells against real sockets.

The `shell` fixture (tests/unit/conftest.py) runs each test under dash, BusyBox ash and bash. The script reads this
machine's /proc/net/tcp{,6}, as it reads the pod's inside the container (a pod is one network namespace).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from wharf.render.probes import listening_check


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _listen(opened: list[socket.socket], family: socket.AddressFamily, address: str, port: int = 0) -> int:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    sock.listen()
    opened.append(sock)
    return int(sock.getsockname()[1])


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _check(shell: list[str], ports: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell, "-c", listening_check(ports)], capture_output=True, text=True, timeout=10)


def test_passes_when_every_port_listens_on_a_wildcard_address(shell: list[str], sockets: list[socket.socket]) -> None:
    ports = (_listen(sockets, socket.AF_INET, "0.0.0.0"), _listen(sockets, socket.AF_INET6, "::"))
    result = _check(shell, ports)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_fails_naming_the_port_that_does_not_listen(shell: list[str], sockets: list[socket.socket]) -> None:
    listening = _listen(sockets, socket.AF_INET, "0.0.0.0")
    missing = _unused_port()
    result = _check(shell, (listening, missing))
    assert result.returncode == 1
    assert result.stdout.strip() == f"port {missing} is not listening on a non-loopback address"


@pytest.mark.parametrize(("family", "address"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_loopback_only_listener_fails_as_the_kubelets_connect_to_the_pod_ip_would(
    shell: list[str], sockets: list[socket.socket], family: socket.AddressFamily, address: str
) -> None:
    # An app bound to localhost is unreachable through its Service: CF's check fails it too.
    good = _listen(sockets, socket.AF_INET, "0.0.0.0")
    loopback = _listen(sockets, family, address)
    result = _check(shell, (good, loopback))
    assert result.returncode == 1
    assert f"port {loopback} is not" in result.stdout


def _non_loopback_ipv4() -> str:
    # The source address the kernel would use off this machine (a UDP connect sends nothing).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "this machine needs a non-loopback IPv4 address for this test"
    return address


def test_a_connection_is_not_a_listener(shell: list[str], sockets: list[socket.socket]) -> None:
    # Only LISTEN sockets count: once the listener closes, an established connection on that port does not pass.
    address = _non_loopback_ipv4()
    good = _listen(sockets, socket.AF_INET, "0.0.0.0")
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    client = socket.create_connection((address, port))
    accepted, _ = listener.accept()
    sockets += [client, accepted]
    assert _check(shell, (good, port)).returncode == 0  # listening on a non-loopback address: passes
    listener.close()
    result = _check(shell, (good, port))
    assert result.returncode == 1
    assert f"port {port} is not" in result.stdout


def test_listeners_opened_after_many_connections_are_found(shell: list[str], sockets: list[socket.socket]) -> None:
    # The script stops reading a table at its first non-listening row (the kernel prints listeners first): a
    # listener created after 200 connections (rows of the established table) must still be seen, on IPv4 and IPv6.
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(256)
    sockets.append(server)
    for _ in range(100):
        client = socket.create_connection(("127.0.0.1", server.getsockname()[1]))
        accepted, _ = server.accept()
        sockets += [client, accepted]
    late = (_listen(sockets, socket.AF_INET, "0.0.0.0"), _listen(sockets, socket.AF_INET6, "::"))
    result = _check(shell, late)
    assert result.returncode == 0, result.stdout + result.stderr
