"""Loopback ports for the servers the harness starts (etcd, kube-*, registries, the operator's endpoints).

A port picked with bind(("127.0.0.1", 0)) comes from the kernel's ephemeral range, the same range every outgoing
connection takes its source port from. Between picking it and the server binding it, a connection (the apiserver
talks to etcd over dozens of them) can take it and the server dies with "address already in use" (CI saw
kube-controller-manager do exactly that). So ports come from below the ephemeral range, where the kernel never
hands out source ports, are checked free with a plain bind, and are never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000  # above the well-known and most registered service ports
_handed_out: set[int] = set()
_lock = threading.Lock()


def _candidates() -> range:
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    if ephemeral_low - _LOWEST < 1000:  # a machine whose ephemeral range starts low: use what is above it
        return range(61000, 65536)
    return range(_LOWEST, ephemeral_low)


def _bound(port: int, reuse: bool) -> socket.socket | None:
    s = socket.socket()
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def _take(reuse: bool) -> socket.socket:
    candidates = _candidates()
    with _lock:
        for _ in range(200):
            port = random.choice(candidates)
            if port in _handed_out:
                continue
            s = _bound(port, reuse)
            if s is not None:
                _handed_out.add(port)
                return s
    raise RuntimeError(f"no free loopback port in {candidates.start}-{candidates.stop - 1} after 200 tries")


def free_port() -> int:
    """A loopback port nothing is bound to now, outside the ephemeral range, not handed out before by this process."""
    with _take(reuse=False) as s:
        return int(s.getsockname()[1])


def reserved_port() -> socket.socket:
    """Like free_port(), but kept bound (not listening) until closed, so no other process takes it meanwhile.
    A Go server can still bind it: Go sets SO_REUSEADDR, and Linux lets a socket bind next to one that is bound
    but not listening when both set it."""
    return _take(reuse=True)
