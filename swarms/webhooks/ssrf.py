"""The webhooks' SSRF guard: `webhook_url_check` when a run is created, `resolve_target` when an
attempt is sent. Loopback, private, link-local, multicast, reserved, unspecified and IPv4-mapped
IPv6 addresses are refused in every spelling, after DNS resolution, unless the host is in
SVERM_WEBHOOK_ALLOWED_HOSTS. The request then connects to the very address that was checked
(Host header and TLS SNI carry the name), so DNS rebinding cannot slip through.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError


class WebhookRefused(ValueError):
    """A URL the SSRF guard will not send to."""


def _allowed_hosts() -> set[str]:
    return {h.strip().lower().strip("[]") for h in settings.SVERM_WEBHOOK_ALLOWED_HOSTS if h}


def literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
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


def _split(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("Only http and https webhook URLs are allowed.")
    if not parts.hostname:
        raise WebhookRefused("The webhook URL has no host.")
    if parts.username or parts.password:
        raise WebhookRefused("The webhook URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("The webhook URL has an invalid port.") from None
    return parts, parts.hostname.lower().rstrip("."), port


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and the name for Host and SNI."""

    url: str  # the URL with the checked IP as its host
    host_header: str
    server_name: str
    ip: str


def _check_addresses(host: str, addresses, allowed: bool) -> None:
    if allowed:
        return
    for ip in addresses:
        reason = address_refusal(ip)
        if reason:
            raise WebhookRefused(f"The webhook host {host} points to {reason} ({ip}).")


def resolve_target(url: str) -> Target:
    """Check `url` (after DNS resolution) and pin the address to connect to.
    Raises WebhookRefused for a refused destination, OSError when the name does not resolve."""
    parts, host, port = _split(url)
    allowed_hosts = _allowed_hosts()
    ip = literal_ip(host)
    allowed = host in allowed_hosts or (ip is not None and str(ip) in allowed_hosts)
    if ip is not None:
        addresses = [ip]
    else:
        if not allowed and (host == "localhost" or host.endswith(".localhost")):
            raise WebhookRefused(f"The webhook host {host} is a loopback name.")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OSError(f"{host} did not resolve")
    _check_addresses(host, addresses, allowed)
    chosen = addresses[0]
    ip_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    default_port = 443 if parts.scheme == "https" else 80
    netloc = ip_host if port == default_port else f"{ip_host}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default_port else f"{name}:{port}"
    return Target(url=pinned, host_header=host_header, server_name=host, ip=str(chosen))


def webhook_url_check(url: str) -> None:
    """Creation-time check (literal addresses in every spelling, and names that resolve now);
    a name that does not resolve yet is accepted: it is checked again at send time."""
    if not url:
        return
    try:
        resolve_target(url)
    except WebhookRefused:
        raise
    except (OSError, UnicodeError):
        return


def webhook_url_validator(value: str) -> None:
    """Serializer/model field validator: refuses non-public webhook destinations."""
    try:
        webhook_url_check(value)
    except WebhookRefused as exc:
        raise ValidationError(str(exc), code="webhook_url_refused") from None
