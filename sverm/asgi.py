"""ASGI entry point (Daphne for `make run`, Uvicorn workers in docker-compose.yml): HTTP through
Django, WebSockets through Channels."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")
django_asgi_app = get_asgi_application()

from sverm.api.ws_auth import websocket_stack  # noqa: E402  (needs the app registry)
from swarms.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
