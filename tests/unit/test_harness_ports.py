"""The harness's loopback ports stay out of the kernel's ephemeral range (where outgoing connections take their
source ports, which once made kube-controller-manager fail with "address already in use" in CI)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.ports import free_port, reserved_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_are_below_the_ephemeral_range_and_never_repeated() -> None:
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == len(ports)
    assert all(10000 <= p < _ephemeral_low() for p in ports)


def test_a_reserved_port_is_held_from_plain_binds_but_a_reuseaddr_server_can_take_it() -> None:
    reserved = reserved_port()
    port = reserved.getsockname()[1]
    try:
        assert port < _ephemeral_low()
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.bind(("127.0.0.1", port))
        with socket.socket() as server:  # what a Go server (SO_REUSEADDR) does
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
    finally:
        reserved.close()
