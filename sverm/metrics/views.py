"""`GET /metrics`: the Prometheus exposition, for a bearer of SVERM_METRICS_TOKEN or a client
address in SVERM_METRICS_ALLOW_IPS (by default this host only)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from sverm.api.errors import PROBLEM_CONTENT_TYPE, Forbidden, Unauthorized
from sverm.api.schema import ProblemSerializer
from sverm.api.throttling import client_ip
from sverm.metrics.exposition import scrape


def metrics_access_check(request) -> None:
    """Let the request through when it bears the metrics token or comes from an allowed
    address; else 401 (a token is configured: send it) or 403 (no token would do)."""
    token = settings.SVERM_METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    bearing = scheme.lower() == "bearer"
    if token and bearing and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return
    if _address_allowed(client_ip(request)):
        return
    if token:
        raise Unauthorized(
            "The metrics need `Authorization: Bearer <SVERM_METRICS_TOKEN>` from this address."
        )
    raise Forbidden(
        "The metrics are not served to this address (SVERM_METRICS_ALLOW_IPS), and no "
        "SVERM_METRICS_TOKEN is configured."
    )


def _address_allowed(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 on a dual stack
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network) for network in settings.SVERM_METRICS_ALLOW_IPS)


class ExpositionRenderer(BaseRenderer):
    """Names the exposition's media type for DRF; the view renders the body itself."""

    media_type = "text/plain"
    format = "txt"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class AnyAccept(BaseContentNegotiation):
    """Prometheus' Accept header picks the exposition format (the view does); DRF must not
    refuse it with 406 first."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


EXPOSITION = OpenApiResponse(
    OpenApiTypes.STR,
    description=(
        "Prometheus' text exposition format (OpenMetrics when the Accept header asks for "
        "`application/openmetrics-text`)."
    ),
)


class MetricsView(APIView):
    authentication_classes: list = []
    # Its own access rule (metrics_access_check), not a user's: no plan's limit counts it.
    permission_classes = [AllowAny]
    throttle_classes: list = []
    renderer_classes = [ExpositionRenderer]
    content_negotiation_class = AnyAccept

    @extend_schema(
        tags=["health"],
        summary="Prometheus metrics (bearer of SVERM_METRICS_TOKEN or an allowed address)",
        description=(
            "Runs by status and template, run duration and cost, LLM call latency, errors, "
            "tokens and USD, the queue, open WebSockets, webhook outcomes, 429s and the "
            'Celery workers\' heartbeat (README, "Metrics and monitoring"). Served with '
            "`Authorization: Bearer <SVERM_METRICS_TOKEN>`, or to a client address in "
            "`SVERM_METRICS_ALLOW_IPS` (default 127.0.0.1 and ::1); otherwise 401 when a "
            "token is configured, else 403."
        ),
        responses={
            (200, "text/plain"): EXPOSITION,
            (200, "application/openmetrics-text"): EXPOSITION,
            (401, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description="From an address not allowed, without the configured token (or "
                "with another).",
            ),
            (403, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description="From an address not allowed, and no token is configured.",
            ),
        },
    )
    def get(self, request):
        metrics_access_check(request)
        body, content_type = scrape(request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
