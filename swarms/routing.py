"""WebSocket routes, served by the same Daphne process as HTTP."""

from django.urls import re_path

from swarms import consumers

# An id is anything up to the next slash but a NUL, which no database text holds: such a path
# falls through to NoRouteConsumer (4404) instead of failing a lookup.
ID = r"[^/\x00]+"

websocket_urlpatterns = [
    re_path(rf"^v1/swarms/(?P<run_id>{ID})/stream$", consumers.V1RunStreamConsumer.as_asgi()),
    re_path(rf"^api/runs/(?P<run_id>{ID})/stream$", consumers.RunStreamConsumer.as_asgi()),
    re_path(
        rf"^api/workspaces/(?P<workspace_id>{ID})/stream$",
        consumers.WorkspaceStreamConsumer.as_asgi(),
    ),
    re_path(r"^.*$", consumers.NoRouteConsumer.as_asgi()),
]
