"""Outbound HTTP for webhooks: to public addresses only, at the address that was checked.

A webhook's URL is chosen by whoever registers it, and its host resolves to whatever its DNS
says at the moment. Sent blindly, a delivery makes our worker a proxy into what only we can
reach: the cloud's metadata service (169.254.169.254), the registry's own Redis and PostgreSQL
on loopback, hosts of the internal network (server-side request forgery). So:

* the host is resolved and every address it resolves to must be a global unicast address: not
  loopback, private, link-local, shared (100.64/10), documentation, reserved, unspecified or
  multicast; an IPv4 address carried inside an IPv6 one (6to4, NAT64) is judged as that IPv4
  address. Otherwise the URL is refused, before any connection;
* at registration (a 400 the registrant sees) and again at every delivery, since DNS may
  answer differently by then. A name that does not resolve at registration is accepted: it
  reaches nothing, and each delivery resolves it again;
* the connection goes to the address just checked (no second lookup, which a rebinding DNS
  server could answer with an internal address), with the URL's host in ``Host`` and in TLS
  (SNI and the certificate check);
* redirects are not followed (a redirect could point anywhere): a 3xx is a failed delivery;
* no proxy is taken from the environment.

Loopback is allowed only with ``WEBHOOK_ALLOW_LOOPBACK`` (tests and local development, whose
receivers listen on 127.0.0.1); no other non-public address ever is.

``resolve`` is the one place a name is looked up, ``connect`` the one place a socket is opened,
``tls_context`` where certificates are trusted: tests replace them.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from typing import TypeAlias
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Well-known and local-use NAT64 prefixes (RFC 6052 §2.1, RFC 8215): the IPv4 address is the
# last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class Refused(Exception):
    """Nothing may be sent to this URL (now)."""


class Unresolvable(Refused):
    """The URL's host does not resolve (now)."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to for TCP (an IP literal is itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve ({exc})") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def connect(address: IPAddress, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection((str(address), port), timeout=timeout)


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_allowed(address: IPAddress) -> bool:
    if address.is_loopback:
        return bool(settings.WEBHOOK_ALLOW_LOOPBACK)
    embedded = _embedded_ipv4(address)
    if embedded is not None and not is_allowed(embedded):
        return False
    return address.is_global and not address.is_multicast


def _target(url: str) -> tuple[SplitResult, str, int]:
    """The URL's parts, its host (IDNA, no brackets) and port; Refused if not an http(s) URL."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise Refused(f"{url!r} has an invalid host or port") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Refused(f"{url!r} is not an http(s) URL")
    return parts, host, port


def check(url: str) -> list[IPAddress]:
    """The addresses ``url``'s host resolves to, all of them allowed; Refused (Unresolvable if
    the host does not resolve) otherwise."""
    _, host, port = _target(url)
    addresses = resolve(host, port)
    if not addresses:
        raise Unresolvable(f"{host} does not resolve")
    refused = [a for a in addresses if not is_allowed(a)]
    if refused:
        raise Refused(f"{host} resolves to {refused[0]}, which is not a public address")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to ``address``, speaking to it as ``host`` (the Host header)."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = connect(self.address, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS, with ``host`` as SNI and as the name the certificate must carry."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        super().connect()
        self.sock = tls_context().wrap_socket(self.sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST ``body`` to ``url`` once (no redirect followed) and return the status. Raises
    Refused before connecting to an address that is not allowed; OSError or
    http.client.HTTPException when the exchange fails."""
    parts, host, port = _target(url)
    address = check(url)[0]
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = cls(host, port, address=address, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()
