"""Webhooks reach public addresses only (server-side request forgery): a URL whose host is, or
resolves to, a loopback, private, link-local or other internal address is refused at
registration and again at every delivery, before any connection; the connection goes to the
address that was checked, as the URL's host; redirects are not followed.

Names resolve through a resolver the test controls (``egress.resolve``), and
``egress.connect`` fails the test if a refused delivery tries to open a socket: nothing is
ever sent to the internal addresses named here."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger import egress, services, webhooks
from ledger.exceptions import InvalidInput
from ledger.models import WebhookDelivery, WebhookEndpoint
from tests.factories import World

PUBLIC = "93.184.216.34"  # a global unicast address: never connected to here

# What the test's DNS says. Names not listed do not resolve.
DNS: dict[str, list[str]] = {
    "hooks.example": [PUBLIC],
    "metadata.example": ["169.254.169.254"],
    "redis.example": ["127.0.0.1"],
    "intranet.example": ["10.0.0.5"],
    "carrier-nat.example": ["100.64.1.1"],
    "some-internal.example": [PUBLIC, "192.168.1.10"],  # one bad address is enough
    "ula.example": ["fd00::1"],
    "link-local6.example": ["fe80::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "sixtofour.example": ["2002:a00:5::1"],  # 6to4 of 10.0.0.5
    "nat64.example": ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
    "multicast.example": ["224.0.0.1"],
    "unspecified.example": ["0.0.0.0"],
}


@dataclass
class FakeDNS:
    table: dict[str, list[str]]
    lookups: list[str] = field(default_factory=list)


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    """Names under .example resolve from the table (which tests change, as DNS can change);
    anything else (IP literals in any notation, localhost) through the system's resolver,
    which needs no DNS query for them. Every lookup is recorded."""
    fake = FakeDNS({name: list(addresses) for name, addresses in DNS.items()})
    system = egress.resolve

    def resolve(host: str, port: int) -> list[egress.IPAddress]:
        fake.lookups.append(host)
        if not host.endswith(".example"):
            return system(host, port)
        if host not in fake.table:
            raise egress.Unresolvable(f"{host} does not resolve")
        return [ipaddress.ip_address(a) for a in fake.table[host]]

    monkeypatch.setattr(egress, "resolve", resolve)
    return fake


@pytest.fixture
def no_connections(monkeypatch) -> list[tuple[str, int]]:
    """Any socket a delivery opens fails the test."""
    opened: list[tuple[str, int]] = []

    def connect(address, port, timeout):
        opened.append((str(address), port))
        raise AssertionError(f"a connection to {address}:{port} was attempted")

    monkeypatch.setattr(egress, "connect", connect)
    return opened


def register(client, url: str):
    return client.post("/api/v1/webhooks", {"url": url}, format="json")


INTERNAL = [
    # The issue's three, as IP literals and the name every host resolves locally.
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://127.0.0.1:6379/",
    "http://localhost:5432/",
    "http://[::1]:8000/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",  # and in hex
    "http://0.0.0.0:8000/",
    *[f"http://{name}/hook" for name in DNS if name != "hooks.example"],
]


@pytest.mark.parametrize("url", INTERNAL)
def test_registration_refuses_a_url_that_resolves_to_an_internal_address(
    world, settings, dns, no_connections, url
):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(InvalidInput, match="not a public address") as refused:
        webhooks.webhook_endpoint_create(actor=world.buy, url=url)
    assert refused.value.detail == {"url": "not_public"}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://localhost:5432/",
    ],
)
def test_the_api_answers_a_refused_url_with_400(world, client_for, settings, dns, url):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    r = register(client_for(world.buyer, "read"), url)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_field" and r.json()["detail"] == {"url": "not_public"}
    assert not WebhookEndpoint.objects.exists()


def test_loopback_is_allowed_only_behind_the_setting_and_nothing_else_internal_is(
    world, client_for, settings, dns
):
    client = client_for(world.buyer, "read")
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    assert register(client, "http://127.0.0.1:8000/hook").status_code == 400
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert register(client, "http://127.0.0.1:8000/hook").status_code == 201
    assert register(client, "http://redis.example/hook").status_code == 201
    for name in ("metadata.example", "intranet.example", "mapped.example", "ula.example"):
        assert register(client, f"http://{name}/hook").status_code == 400, name


def test_a_public_address_and_a_name_that_does_not_resolve_yet_are_accepted(
    world, client_for, settings, dns
):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    client = client_for(world.buyer, "read")
    assert register(client, "https://hooks.example/bluecarbon").status_code == 201
    assert register(client, f"http://{PUBLIC}:8443/hook").status_code == 201
    # Reaches nothing now; each delivery resolves and checks it again.
    assert register(client, "https://not-yet.example/hook").status_code == 201


# ---- delivery ----------------------------------------------------------------------------------


def delivery_for(world: World, client, url: str) -> WebhookDelivery:
    r = register(client, url)
    assert r.status_code == 201, r.json()
    services.credit_transfer(
        actor=world.dev,
        batch=world.issue(5_000_000).pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1000,
    )
    (pk,) = webhooks.webhooks_dispatch()
    return WebhookDelivery.objects.get(pk=pk)


@pytest.mark.parametrize("now", ["169.254.169.254", "127.0.0.1", "10.0.0.5", "fd00::1"])
def test_a_delivery_to_a_name_that_now_resolves_inside_is_refused_before_connecting(
    world, client_for, settings, dns, no_connections, now
):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    delivery = delivery_for(world, client_for(world.buyer, "read"), "http://hooks.example/hook")
    dns.table["hooks.example"] = [now]  # DNS answers differently since the registration
    assert webhooks.webhook_deliver(delivery.pk) == webhooks.Sent.FAILED
    delivery.refresh_from_db()
    assert no_connections == []
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error.startswith("refused, nothing sent: hooks.example resolves to")


def test_a_senders_batch_checks_every_delivery_before_connecting(
    world, client_for, settings, dns, no_connections
):
    """The scheduler's sender (a batch per endpoint) goes through the same check."""
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    delivery = delivery_for(world, client_for(world.buyer, "read"), "http://hooks.example/hook")
    dns.table["hooks.example"] = ["10.0.0.5"]
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
        lease_token="mine", lease_until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    )
    assert webhooks.webhook_endpoint_send(endpoint=delivery.endpoint_id, token="mine") == 0
    delivery.refresh_from_db()
    assert no_connections == []
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("refused, nothing sent: hooks.example resolves to")


class Receiver:
    """A local HTTP(S) server recording each request's method, Host header and SNI name."""

    def __init__(self, *, redirect_to: str = "", tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                receiver.requests.append((method, self.headers["Host"]))
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self.handle_one("POST")

            def do_GET(self) -> None:
                self.handle_one("GET")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: receiver.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.close()


def test_the_connection_goes_to_the_checked_address_as_the_urls_host(
    world, client_for, settings, dns, receivers
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    receiver = Receiver()
    receivers.append(receiver)
    # A name only the test's DNS knows: the system's resolver could not have been asked again.
    dns.table["hooks.example"] = ["127.0.0.1"]
    url = f"http://hooks.example:{receiver.port}/hook?source=bluecarbon"
    delivery = delivery_for(world, client_for(world.buyer, "read"), url)
    dns.lookups.clear()
    assert webhooks.webhook_deliver(delivery.pk) == webhooks.Sent.DELIVERED
    assert receiver.requests == [("POST", f"hooks.example:{receiver.port}")]
    assert dns.lookups == ["hooks.example"]  # one lookup, the one that was checked


def _certificate(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _tls_receiver(tmp_path, name: str) -> tuple[Receiver, bytes]:
    cert, key = _certificate(name)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return Receiver(tls=server), cert


def test_https_goes_to_the_checked_address_with_the_urls_host_as_sni_and_certificate_name(
    world, client_for, settings, dns, receivers, monkeypatch, tmp_path
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    receiver, cert = _tls_receiver(tmp_path, "hooks.example")
    receivers.append(receiver)
    monkeypatch.setattr(
        egress, "tls_context", lambda: ssl.create_default_context(cadata=cert.decode())
    )
    dns.table["hooks.example"] = ["127.0.0.1"]
    url = f"https://hooks.example:{receiver.port}/hook"
    delivery = delivery_for(world, client_for(world.buyer, "read"), url)
    assert webhooks.webhook_deliver(delivery.pk) == webhooks.Sent.DELIVERED
    assert receiver.sni == ["hooks.example"]
    assert receiver.requests == [("POST", f"hooks.example:{receiver.port}")]


def test_https_refuses_a_certificate_for_another_name(
    world, client_for, settings, dns, receivers, monkeypatch, tmp_path
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    receiver, cert = _tls_receiver(tmp_path, "other.example")
    receivers.append(receiver)
    monkeypatch.setattr(
        egress, "tls_context", lambda: ssl.create_default_context(cadata=cert.decode())
    )
    dns.table["hooks.example"] = ["127.0.0.1"]
    url = f"https://hooks.example:{receiver.port}/hook"
    delivery = delivery_for(world, client_for(world.buyer, "read"), url)
    assert webhooks.webhook_deliver(delivery.pk) == webhooks.Sent.FAILED
    delivery.refresh_from_db()
    assert "certificate" in delivery.last_error.lower() and receiver.requests == []


def test_redirects_are_not_followed(world, client_for, settings, dns, receivers):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    inside = Receiver()  # where a redirect would lead: say, an internal service
    redirector = Receiver(redirect_to=f"http://127.0.0.1:{inside.port}/internal")
    receivers.extend([inside, redirector])
    url = f"http://127.0.0.1:{redirector.port}/hook"
    delivery = delivery_for(world, client_for(world.buyer, "read"), url)
    assert webhooks.webhook_deliver(delivery.pk) == webhooks.Sent.FAILED
    delivery.refresh_from_db()
    assert len(redirector.requests) == 1 and inside.requests == []
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert delivery.last_error == "HTTP 302: redirects are not followed"
