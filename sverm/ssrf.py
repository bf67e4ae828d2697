"""The SSRF guard every outbound request shares (webhooks, the `http_fetch` tool).

Loopback, private, link-local, multicast, reserved, unspecified and IPv4-mapped IPv6 addresses are
refused in every spelling, after DNS resolution, unless the host is in the caller's allowed
hosts. The request then connects to the very address that was checked (Host header and TLS SNI
carry the name), so DNS rebinding cannot slip through. Plain Python: callers read their own
settings and pass the allowed hosts in.
"""

import ipaddress
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(ValueError):
    """A URL the SSRF guard will not send to."""


def literal_ip(host: str) -> IPAddress | None:
    """The address a numeric host means, in any spelling (`127.1`, `0x7f000001`, `2130706433`,
    `0177.0.0.1`, `::ffff:127.0.0.1`); None for a name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why an address is not a public destination, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        for embedded in (ip.sixtofour, ip.teredo and ip.teredo[1]):
            if embedded is not None and address_refusal(embedded):
                return "an IPv6 address embedding a non-public IPv4 address"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, reason in checks:
        if getattr(ip, attribute):
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and the name for Host and SNI."""

    url: str  # the URL with the checked IP as its host
    host_header: str
    server_name: str
    ip: str


def _normalized(hosts: Iterable[str]) -> set[str]:
    return {h.strip().lower().strip("[]") for h in hosts if h}


def _split(url: str, what: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused(f"Only http and https {what} URLs are allowed.")
    if not parts.hostname:
        raise DestinationRefused(f"The {what} URL has no host.")
    if parts.username or parts.password:
        raise DestinationRefused(f"The {what} URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused(f"The {what} URL has an invalid port.") from None
    return parts, parts.hostname.lower().rstrip("."), port


def resolve_target(url: str, *, allowed_hosts: Collection[str], what: str) -> Target:
    """Check `url` (after DNS resolution) and pin the address to connect to. `allowed_hosts`
    (names or addresses) skip the address check; `what` names the URL in messages ("webhook").
    Raises DestinationRefused for a refused destination, OSError when the name does not
    resolve."""
    parts, host, port = _split(url, what)
    allowed_set = _normalized(allowed_hosts)
    ip = literal_ip(host)
    allowed = host in allowed_set or (ip is not None and str(ip) in allowed_set)
    if ip is not None:
        addresses = [ip]
    else:
        if not allowed and (host == "localhost" or host.endswith(".localhost")):
            raise DestinationRefused(f"The {what} host {host} is a loopback name.")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OSError(f"{host} did not resolve")
    if not allowed:
        # Every address the name has, not only the one used: the resolver may answer in any order.
        for candidate in addresses:
            reason = address_refusal(candidate)
            if reason:
                raise DestinationRefused(
                    f"The {what} host {host} points to {reason} ({candidate})."
                )
    chosen = addresses[0]
    ip_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    default_port = 443 if parts.scheme == "https" else 80
    netloc = ip_host if port == default_port else f"{ip_host}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default_port else f"{name}:{port}"
    return Target(url=pinned, host_header=host_header, server_name=host, ip=str(chosen))
