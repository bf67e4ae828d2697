"""The Origin check every WebSocket passes first: browsers only from our own hosts."""

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.request import split_domain_port, validate_host


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin: it must be one of ALLOWED_HOSTS (the session cookie would
    otherwise let any site open a socket as the signed-in user). Non-browser clients send no
    Origin and authenticate with a token, which no other site can attach."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)

    def validate_origin(self, parsed_origin):
        host, _port = split_domain_port(parsed_origin.netloc)
        return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)
