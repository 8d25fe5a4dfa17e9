"""The SSRF guard: which hosts wharf may contact on an App author's behalf.

An App names its registry, and the registry names its token realm and may redirect blob reads anywhere, so
every one of those hosts is checked before a request leaves: a host is refused when any address it resolves
to is not globally routable (loopback, link-local such as 169.254.169.254 and fe80::/10, private ranges,
CGNAT, unspecified, multicast, reserved; IPv4-mapped IPv6 is unwrapped first) or lies in one of
`settings.registry_deny`'s CIDRs - unless the cluster admin lists the host (`host` or `host:port`) or a CIDR
holding the address in `settings.registry_allow`. Plain HTTP is refused unless the host is listed in
`settings.registry_insecure`.

Resolution uses `loop.getaddrinfo`, so it never blocks the event loop; answers are cached briefly. The
connection goes to the addresses that were checked (`addresses()`, used by the transport), never to a second DNS
answer, so a DNS server that changes its answer between check and connect (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

from wharf.config import Settings
from wharf.registry._cache import TTLCache
from wharf.registry._errors import Blocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Short enough that a changed DNS answer is noticed soon; long enough to spare a lookup per request.
_DECISION_TTL = 30.0


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """All addresses `host` resolves to, via the event loop's non-blocking getaddrinfo."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _networks(entries: Iterable[str]) -> tuple[list[IPNetwork], set[str]]:
    """Split admin entries into CIDRs (a bare IP is a /32 or /128) and host names."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry)
    return networks, hosts


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_key(host: str, port: int | None) -> tuple[str, str]:
    """(`host`, `host:port`) lowercased, IPv6 literals bracketed in the second form as in references."""
    bare = host.lower().strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    return bare, f"{shown}:{port}" if port is not None else shown


class Guard:
    """Decides whether a host may be contacted; raises `Blocked` with the reason when not."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self._allow_networks, self._allow_hosts = _networks(settings.registry_allow)
        self._deny_networks, _ = _networks(settings.registry_deny)
        self._insecure = {entry.strip().lower() for entry in settings.registry_insecure if entry.strip()}
        self._resolve = resolver or system_resolver
        # (host, port) -> (why refused or "", the checked addresses to connect to)
        self._decisions: TTLCache[tuple[str, int], tuple[str, tuple[str, ...]]] = TTLCache(
            maxsize=1024, ttl=_DECISION_TTL
        )

    def is_insecure(self, host: str, port: int | None) -> bool:
        """True when the admin listed this registry as reached over plain HTTP."""
        bare, with_port = host_key(host, port)
        return with_port in self._insecure or bare in self._insecure

    def check_scheme(self, scheme: str, host: str, port: int | None) -> None:
        if scheme == "http" and not self.is_insecure(host, port):
            _, with_port = host_key(host, port)
            raise Blocked(
                f"refusing plain HTTP to {with_port}: only registries the cluster admin lists in "
                "WHARF_REGISTRY_INSECURE are reached without TLS"
            )

    async def check(self, host: str, port: int) -> None:
        """Raise `Blocked` unless `host` may be contacted."""
        bare, with_port = host_key(host, port)
        if bare in self._allow_hosts or with_port in self._allow_hosts:
            return
        reason, _ = await self._decision(bare, port)
        if reason:
            raise self._blocked(with_port, reason)

    async def addresses(self, host: str, port: int) -> tuple[str, ...] | None:
        """Where to connect for `host`: None to use the host as written (an IP literal, a host the admin allows by
        name), else the checked addresses in the resolver's order, empty when the name did not resolve. Raises
        `Blocked` when the host is refused now (its decision may have changed since `check`)."""
        bare, with_port = host_key(host, port)
        if bare in self._allow_hosts or with_port in self._allow_hosts or _literal(bare) is not None:
            return None
        reason, addresses = await self._decision(bare, port)
        if reason:
            raise self._blocked(with_port, reason)
        return addresses

    @staticmethod
    def _blocked(with_port: str, reason: str) -> Blocked:
        return Blocked(
            f"refusing to contact {with_port}: {reason}. If this registry is meant to be reachable, "
            "the cluster admin can add the host or its CIDR to WHARF_REGISTRY_ALLOW"
        )

    async def _decision(self, bare: str, port: int) -> tuple[str, tuple[str, ...]]:
        cached = self._decisions.get((bare, port))
        return cached if cached is not None else await self._decide(bare, port)

    async def _decide(self, bare: str, port: int) -> tuple[str, tuple[str, ...]]:
        """('' when allowed, else why not; the addresses checked), cached for a short while either way."""
        key = (bare, port)
        literal = _literal(bare)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                answers = await self._resolve(bare, port)
            except OSError:
                # Not a decision: the connection attempt will fail and report the name error itself.
                return "", ()
            addresses = []
            for answer in answers:
                try:
                    address = ipaddress.ip_address(answer.split("%", 1)[0])
                except ValueError:
                    continue
                if address not in addresses:
                    addresses.append(address)
        reason = ""
        for address in addresses:
            reason = self._address_reason(address)
            if reason:
                if literal is None:
                    reason = f"{bare} resolves to {address}, {reason}"
                else:
                    reason = f"{address} is {reason.removeprefix('an address ')}"
                break
        # A literal is connected to as written; a name only at the addresses just checked.
        pinned = () if literal is not None else tuple(str(address) for address in addresses)
        self._decisions.put(key, (reason, pinned))
        return reason, pinned

    def _address_reason(self, address: IPAddress) -> str:
        plain = _unwrap(address)
        if any(plain in net for net in self._allow_networks if net.version == plain.version):
            return ""
        if any(plain in net for net in self._deny_networks if net.version == plain.version):
            return "an address in a CIDR the cluster admin denies (WHARF_REGISTRY_DENY)"
        if plain.is_loopback:
            return "a loopback address"
        if plain.is_link_local:
            return "a link-local address (cloud metadata services live there)"
        if plain.is_unspecified or plain.is_multicast or plain.is_reserved:
            return "not a unicast internet address"
        if plain.is_private or not plain.is_global:
            return "a private or non-routable address"
        return ""
