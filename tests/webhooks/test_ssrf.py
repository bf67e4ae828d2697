"""The SSRF guard: every non-public spelling refused at creation and at send time, names checked
after resolution, and the request pinned to the address that was checked."""

import socket

import httpx
import pytest
from django.core.exceptions import ValidationError

from swarms.models import Run, RunStatus, WebhookDelivery
from swarms.webhooks import delivery as webhook_delivery
from swarms.webhooks import ssrf

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://017700000001/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://[::ffff:8.8.8.8]/hook",  # mapped, even when the IPv4 address is public
    "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://[fc00::1]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://0/hook",
    "https://255.255.255.255/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 wrapping 127.0.0.1
    "http://localhost:8000/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://user:pw@93.184.216.34/hook",
    "ftp://93.184.216.34/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_in_every_spelling(url, settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(ssrf.WebhookRefused):
        ssrf.webhook_url_check(url)
    with pytest.raises(ValidationError):
        ssrf.webhook_url_validator(url)
    with pytest.raises(ssrf.WebhookRefused):
        ssrf.resolve_target(url)


def test_a_name_resolving_to_loopback_is_refused(settings, monkeypatch):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # the address, not the name
    fake = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", lambda *a, **k: fake)
    with pytest.raises(ssrf.WebhookRefused, match="loopback"):
        ssrf.webhook_url_check("http://evil.example/hook")


def test_localhost_really_resolves_and_is_refused(settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(ssrf.WebhookRefused):
        ssrf.resolve_target("http://localhost/hook")


def test_any_non_public_address_among_several_refuses(settings, monkeypatch):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    fake = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::1", 443, 0, 0)),
    ]
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", lambda *a, **k: fake)
    with pytest.raises(ssrf.WebhookRefused, match="private"):
        ssrf.resolve_target("https://hooks.example.com/x")


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://[2606:4700:4700::1111]:8080/x", "http://8.8.8.8"]
)
def test_public_addresses_pass(url, settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    ssrf.webhook_url_check(url)
    ssrf.webhook_url_validator(url)


def test_an_unresolvable_name_is_accepted_at_creation_and_checked_at_send(settings, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fail)
    ssrf.webhook_url_check("https://not-yet.example.com/hook")
    with pytest.raises(OSError):
        ssrf.resolve_target("https://not-yet.example.com/hook")


def test_allowed_hosts_let_an_operator_through(settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    assert ssrf.resolve_target("http://127.0.0.1:9000/a").url == "http://127.0.0.1:9000/a"
    assert ssrf.resolve_target("http://localhost/a").ip == "127.0.0.1"
    with pytest.raises(ssrf.WebhookRefused):
        ssrf.resolve_target("http://10.1.2.3/a")


def test_the_target_is_pinned_to_the_checked_address(settings, monkeypatch):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    fake = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 8443))]
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", lambda *a, **k: fake)
    target = ssrf.resolve_target("https://Hooks.Example.com:8443/in?x=1")
    assert target.url == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.server_name == "hooks.example.com"


def test_https_sends_sni_and_host_for_the_name_to_the_pinned_ip(settings, monkeypatch):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(
            host=request.url.host, header=request.headers["host"],
            sni=request.extensions.get("sni_hostname"),
        )  # fmt: skip
        return httpx.Response(301, headers={"location": "https://elsewhere.example/"})

    real = httpx.Client
    monkeypatch.setattr(
        httpx,
        "Client",
        lambda **kw: real(transport=httpx.MockTransport(handler), **kw),
    )
    target = ssrf.Target(
        url="https://93.184.216.34/in", host_header="hooks.example.com",
        server_name="hooks.example.com", ip="93.184.216.34",
    )  # fmt: skip
    response = webhook_delivery._post(target, {"webhook-id": "msg_1"}, b"{}")
    assert response.status_code == 301  # not followed
    assert seen == {"host": "93.184.216.34", "header": "hooks.example.com",
                    "sni": "hooks.example.com"}  # fmt: skip


@pytest.mark.django_db
def test_dns_rebinding_is_refused_at_send_time_and_recorded(workspace, settings, monkeypatch):
    """The name resolved to a public address at creation, then to loopback."""
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def flip(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", flip)
    url = "http://rebind.example.com/hook"
    ssrf.webhook_url_check(url)  # creation: public
    queued = []
    monkeypatch.setattr(webhook_delivery, "_enqueue", lambda *args, **kw: queued.append(args))
    run = Run.objects.create(
        workspace=workspace, swarm_type="custom", definition={}, task="t",
        max_budget_usd=1, estimated_cost_usd=0, status=RunStatus.COMPLETED, webhook_url=url,
    )  # fmt: skip
    webhook_delivery.webhook_attempt(run.pk, "msg_rebind", 1)
    delivery = WebhookDelivery.objects.get(run=run)
    assert delivery.status_code is None and not delivery.success
    assert delivery.error.startswith("Refused:") and "loopback" in delivery.error
    assert queued == []  # a refusal is final: not retried


def test_the_cloud_metadata_address_is_named_as_link_local(settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(ssrf.WebhookRefused, match="link-local"):
        ssrf.webhook_url_check("http://169.254.169.254/latest/meta-data")
