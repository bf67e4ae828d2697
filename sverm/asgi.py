"""ASGI entry point (Daphne for `make run`, Uvicorn workers in docker-compose.yml): HTTP through
Django, WebSockets through Channels."""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

from sverm.api.ws_origin import BrowserOriginValidator

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")
django_asgi_app = get_asgi_application()

# These need the app registry.
from accounts.ws_auth import CallerMiddleware  # noqa: E402
from batches.routing import websocket_urlpatterns as batch_websocket_urlpatterns  # noqa: E402
from swarms.fast_reads import FastReads  # noqa: E402
from swarms.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # A run's status read with an API key in one thread hop, the rest through Django.
        "http": FastReads(django_asgi_app),
        # The Origin check, the session (the live page's sign-in), then the token's or the
        # session's caller.
        "websocket": BrowserOriginValidator(
            # Other apps' streams first: swarms' routes end with the catch-all (4404).
            AuthMiddlewareStack(
                CallerMiddleware(URLRouter([*batch_websocket_urlpatterns, *websocket_urlpatterns]))
            ),
            allowed_origins=[],
        ),
    }
)
